//! Real directories and real symlinks in a temporary directory, resolved
//! both by the kernel (`openat2`) and by the walk, which must agree.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;
use crate::exec::tests::TempDir;

/// `base/outside/` (a secret), and `base/under/` with:
/// ```text
/// sub/file  sub/deeper/
/// etclink -> /etc              abs-inside -> BASE/under/sub
/// up -> ../outside             sub/sneaky -> ../../outside
/// inside -> sub                sub/up-in -> ../sub/deeper
/// c1 -> c2 -> c3 -> ../outside k1 -> k2 -> sub
/// loop1 -> loop2 -> loop1      dangle -> nothere
/// ```
fn layout(name: &str) -> (TempDir, String) {
    let tmp = TempDir::new(&format!("paths-{name}"));
    let base = &tmp.0;
    let under = base.join("under");
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/secret"), "x").unwrap();
    std::fs::create_dir_all(under.join("sub/deeper")).unwrap();
    std::fs::write(under.join("sub/file"), "x").unwrap();
    let link = |target: &str, at: &str| symlink(target, under.join(at)).unwrap();
    link("/etc", "etclink");
    link(under.join("sub").to_str().unwrap(), "abs-inside");
    link("../outside", "up");
    link("../../outside", "sub/sneaky");
    link("sub", "inside");
    link("../sub/deeper", "sub/up-in");
    link("c2", "c1");
    link("c3", "c2");
    link("../outside", "c3");
    link("k2", "k1");
    link("sub", "k2");
    link("loop2", "loop1");
    link("loop1", "loop2");
    link("nothere", "dangle");
    let under = under.to_str().unwrap().to_string();
    (tmp, under)
}

/// Both ways, which must agree. The kernel's answer is missing only where
/// openat2 is (see `the_kernel_way_is_taken_where_openat2_exists`).
fn both(under: &str, rel: &str) -> Vec<(How, Result<String, Refused>)> {
    let value = format!("{under}{rel}");
    [How::Kernel, How::Walk]
        .into_iter()
        .filter_map(|how| Some((how, resolve_with(under, &value, how)?)))
        .collect()
}

fn resolves_to(under: &str, rel: &str, expected: &str) {
    for (how, got) in both(under, rel) {
        match got {
            Ok(path) => assert_eq!(path, format!("{under}{expected}"), "{how:?} {rel}"),
            Err(e) => panic!("{how:?} {rel}: refused: {e}"),
        }
    }
    assert_eq!(
        resolve(under, &format!("{under}{rel}")).unwrap(),
        format!("{under}{expected}")
    );
}

fn refused(under: &str, rel: &str, says: &str) {
    for (how, got) in both(under, rel) {
        match got {
            Ok(path) => panic!("{how:?} {rel}: allowed as {path}"),
            Err(e) => assert!(e.to_string().contains(says), "{how:?} {rel}: {e}"),
        }
    }
    assert!(resolve(under, &format!("{under}{rel}")).is_err());
}

#[test]
fn symlinks_that_leave_under_are_refused() {
    let (_tmp, u) = layout("leave");
    // The issue's case: an absolute symlink to /etc, with and without a slash.
    refused(&u, "/etclink/", "leads outside");
    refused(&u, "/etclink", "leads outside");
    refused(&u, "/etclink/passwd", "leads outside");
    // `..` through a symlink, directly and from a subdirectory.
    refused(&u, "/up", "leads outside");
    refused(&u, "/up/secret", "leads outside");
    refused(&u, "/sub/sneaky/secret", "leads outside");
    // A chain whose last link leaves.
    refused(&u, "/c1/secret", "leads outside");
    // An absolute symlink is refused even when it points inside (as
    // RESOLVE_BENEATH does): use relative links inside `under`.
    refused(&u, "/abs-inside", "leads outside");
    // Something to create below a symlink that leaves.
    refused(&u, "/etclink/new-file", "leads outside");
    refused(&u, "/up/new-dir/new-file", "leads outside");
    let message = resolve(&u, &format!("{u}/etclink/"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!("\"{u}/etclink/\" leads outside {u} through a symlink")
    );
}

#[test]
fn symlinks_that_stay_inside_resolve_to_the_real_path() {
    let (_tmp, u) = layout("inside");
    resolves_to(&u, "", "");
    resolves_to(&u, "/", "/");
    resolves_to(&u, "/sub/file", "/sub/file");
    resolves_to(&u, "/inside", "/sub");
    // The trailing slash is kept (it means something to rsync).
    resolves_to(&u, "/inside/", "/sub/");
    resolves_to(&u, "/inside/file", "/sub/file");
    // `..` through a symlink that stays inside.
    resolves_to(&u, "/sub/up-in", "/sub/deeper");
    // A chain that stays inside.
    resolves_to(&u, "/k1/file", "/sub/file");
}

#[test]
fn paths_to_create_need_an_ancestor_inside() {
    let (_tmp, u) = layout("create");
    resolves_to(&u, "/sub/new-file", "/sub/new-file");
    resolves_to(&u, "/new-dir/new-file", "/new-dir/new-file");
    resolves_to(&u, "/inside/new-dir/new-file", "/sub/new-dir/new-file");
    // A symlink that points at nothing is not "to be created".
    refused(&u, "/dangle", "points at nothing");
    refused(&u, "/dangle/x", "points at nothing");
}

#[test]
fn loops_and_files_on_the_way_are_refused() {
    let (_tmp, u) = layout("loops");
    refused(&u, "/loop1", "too many symlinks");
    refused(&u, "/loop1/x", "too many symlinks");
    refused(&u, "/sub/file/x", "not a directory");
}

#[test]
fn under_itself_may_be_a_symlink_and_stays_the_limit() {
    let (tmp, u) = layout("underlink");
    let link = tmp.0.join("underlink");
    symlink(&u, &link).unwrap();
    let l = link.to_str().unwrap();
    for how in [How::Kernel, How::Walk] {
        let Some(got) = resolve_with(l, &format!("{l}/inside/file"), how) else {
            continue;
        };
        assert_eq!(got.unwrap(), format!("{u}/sub/file"), "{how:?}");
        let err = resolve_with(l, &format!("{l}/etclink"), how)
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Refused::Escapes { .. }), "{how:?}: {err}");
    }
    let err = resolve("/nonexistent-twinbay", "/nonexistent-twinbay/x").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot be checked: the policy's directory /nonexistent-twinbay: "),
        "{err}"
    );
}

#[test]
fn the_kernel_way_is_taken_where_openat2_exists() {
    // Where openat2 answers, so must the kernel way (else the tests above
    // would compare the walk with itself).
    let (_tmp, u) = layout("kernel");
    let root = rustix::fs::open(Path::new("/"), OFlags::PATH, Mode::empty()).unwrap();
    match rustix::fs::openat2(
        &root,
        ".",
        OFlags::PATH,
        Mode::empty(),
        ResolveFlags::BENEATH,
    ) {
        Err(Errno::NOSYS | Errno::PERM) => {
            eprintln!("no openat2 here: only the walk was tested");
            assert!(resolve_with(&u, &format!("{u}/inside"), How::Kernel).is_none());
        }
        opened => {
            opened.unwrap();
            assert!(resolve_with(&u, &format!("{u}/inside"), How::Kernel).is_some());
        }
    }
}
