//! A unified diff of two versions of a file, for people to read.

use std::time::Duration;

use similar::TextDiff;

/// How long a diff may search for the smallest edit before it settles for a
/// larger (still correct) one.
const TIMEOUT: Duration = Duration::from_millis(200);

/// The unified diff (3 lines of context) from `old` to `new` of the file at
/// `path`, with a header naming both versions as `path@version` (`version`:
/// e.g. a short hash). Empty when the texts are equal. A missing version is
/// an empty text (`/dev/null` in the header).
pub fn unified(
    path: &str,
    old: Option<&str>,
    new: Option<&str>,
    old_version: &str,
    new_version: &str,
) -> String {
    let (a, b) = (old.unwrap_or(""), new.unwrap_or(""));
    if a == b && old.is_some() == new.is_some() {
        return String::new();
    }
    let name = |present: bool, version: &str| {
        if present {
            format!("{path}@{version}")
        } else {
            "/dev/null".to_string()
        }
    };
    let diff = TextDiff::configure().timeout(TIMEOUT).diff_lines(a, b);
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &name(old.is_some(), old_version),
            &name(new.is_some(), new_version),
        )
        .to_string();
    if out.is_empty() {
        // Created or deleted empty: say so with the header alone.
        out = format!(
            "--- {}\n+++ {}\n",
            name(old.is_some(), old_version),
            name(new.is_some(), new_version)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_both_versions() {
        let d = unified(
            "/etc/a.conf",
            Some("a\nb\nc\n"),
            Some("a\nB\nc\n"),
            "1a2b3c4d",
            "5e6f7a8b",
        );
        assert!(
            d.starts_with("--- /etc/a.conf@1a2b3c4d\n+++ /etc/a.conf@5e6f7a8b\n"),
            "{d}"
        );
        assert!(d.contains("-b\n+B\n"), "{d}");
        assert!(d.contains("@@ -1,3 +1,3 @@"), "{d}");
    }

    #[test]
    fn equal_texts_have_no_diff_and_creation_diffs_from_nothing() {
        assert_eq!(unified("/x", Some("a\n"), Some("a\n"), "1", "1"), "");
        let d = unified("/x", None, Some("a\n"), "", "new");
        assert!(d.starts_with("--- /dev/null\n+++ /x@new\n"), "{d}");
        assert!(d.contains("+a\n"), "{d}");
        let d = unified("/x", Some(""), None, "old", "");
        assert_eq!(d, "--- /x@old\n+++ /dev/null\n");
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let d = unified("/x", Some("a"), Some("b"), "1", "2");
        assert!(d.contains("No newline at end of file"), "{d}");
    }
}
