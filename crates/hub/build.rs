//! Builds the web UI (`web/`, TypeScript + Vite) and generates the code that
//! embeds it: `$OUT_DIR/web_assets.rs`, a table of `include_bytes!` entries.
//!
//! - Needs node and npm; without npm the build stops with one clear line.
//! - `npm ci` runs only when `web/package-lock.json` differs from the copy
//!   kept in `web/node_modules/` after the last install.
//! - Cargo reruns this only when a file the UI is built from changes, so
//!   ordinary builds, clippy and tests do not pay for it.
//! - `TWINBAY_WEB_DIST=DIR` embeds an already built UI instead (no npm).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the UI is built from, relative to `web/`.
const INPUTS: &[&str] = &[
    "package.json",
    "package-lock.json",
    "index.html",
    "vite.config.ts",
    "tsconfig.json",
    "src",
    "public",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    for input in INPUTS {
        println!("cargo::rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo::rerun-if-env-changed=TWINBAY_WEB_DIST");
    println!("cargo::rerun-if-env-changed=TWINBAY_NPM");

    let dist = match std::env::var_os("TWINBAY_WEB_DIST") {
        Some(dir) => {
            println!("cargo::rerun-if-changed={}", PathBuf::from(&dir).display());
            PathBuf::from(dir)
        }
        None => {
            let dist = out.join("web-dist");
            if let Err(message) = build_ui(&web, &dist) {
                // One clear line; cargo prints it as `error: …` and stops.
                println!("cargo::error={message}");
                return;
            }
            dist
        }
    };
    match embed(&dist) {
        Ok(code) => fs::write(out.join("web_assets.rs"), code).expect("OUT_DIR is writable"),
        Err(message) => println!("cargo::error={message}"),
    }
}

fn build_ui(web: &Path, dist: &Path) -> Result<(), String> {
    let npm = std::env::var("TWINBAY_NPM").unwrap_or_else(|_| "npm".into());
    match Command::new(&npm).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(format!(
                "building the web UI needs node and npm, and `{npm}` was not found on PATH \
                 (install Node.js 20 or newer with npm, e.g. `apt-get install nodejs npm`)"
            ));
        }
    }
    // Two builds (say, debug and release in different target dirs) must not
    // run `npm ci` in the same folder at once.
    let lock = fs::File::create(web.join(".build.lock"))
        .map_err(|e| format!("cannot create web/.build.lock: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot lock web/.build.lock: {e}"))?;

    let lockfile = web.join("package-lock.json");
    let installed = web.join("node_modules/.twinbay-package-lock.json");
    let wanted =
        fs::read(&lockfile).map_err(|e| format!("cannot read web/package-lock.json: {e}"))?;
    if fs::read(&installed).ok().as_deref() != Some(&wanted[..]) {
        run(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(web),
            "npm ci",
        )?;
        fs::write(&installed, &wanted)
            .map_err(|e| format!("cannot write {}: {e}", installed.display()))?;
    }
    run(
        Command::new(&npm)
            .args(["run", "build"])
            .env("TWINBAY_WEB_OUT", dist)
            .current_dir(web),
        "npm run build",
    )
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let output = cmd
        .output()
        .map_err(|e| format!("web UI: cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    // The tool's own output goes to stderr (cargo shows it under the error);
    // the error itself stays one line.
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let last = String::from_utf8_lossy(&output.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&output.stdout).lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("npm warn"))
        .find(|l| l.contains("error") || l.contains("Error"))
        .unwrap_or("see the output above")
        .to_string();
    Err(format!("web UI: `{what}` failed in web/: {last}"))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `pub static ASSETS: &[Asset]`, one entry per built file.
fn embed(dist: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    collect(dist, dist, &mut files)
        .map_err(|e| format!("web UI: cannot read {}: {e}", dist.display()))?;
    files.sort();
    if !files.iter().any(|(url, _)| url == "/index.html") {
        return Err(format!("web UI: no index.html in {}", dist.display()));
    }
    let mut code = String::from(
        "// Generated by crates/hub/build.rs from the built web UI.\npub static ASSETS: &[Asset] = &[\n",
    );
    for (url, path) in &files {
        // Vite puts content-hashed names under /assets/: cache them for ever.
        let immutable = url.starts_with("/assets/");
        writeln!(
            code,
            "    Asset {{ path: {url:?}, content_type: {:?}, immutable: {immutable}, body: include_bytes!({:?}) }},",
            content_type(url),
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    Ok(code)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            out.push((url, path.canonicalize()?));
        }
    }
    Ok(())
}
