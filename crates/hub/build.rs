fn main() {
    // sqlx::migrate! embeds the files; rebuild when one is added or changed.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=../../web");
}
