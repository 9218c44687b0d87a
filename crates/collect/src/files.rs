//! Watched files on an agentless host: `stat -c STAT_FORMAT -- PATH…` and
//! `sha256sum -- PATH…` (GNU and BusyBox print the same).

use std::collections::BTreeMap;

use twinbay_proto::model::{FileContent, FileState, WatchedFile};

use crate::{ParseError, excerpt};

/// The `stat -c` format the parser reads: size, mtime, octal mode, uid,
/// gid, then the name (last, so it may hold spaces).
pub const STAT_FORMAT: &str = "%s %Y %a %u %g %n";

/// One line of `stat -c STAT_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub path: String,
    pub size: u64,
    pub mtime_secs: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Parses `stat -c STAT_FORMAT` (stdout; missing files are on stderr).
pub fn stat(text: &str) -> Result<Vec<FileStat>, ParseError> {
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bad = || {
                ParseError::new(
                    "stat",
                    format!("line {}: cannot read {}", i + 1, excerpt(line)),
                )
            };
            let mut f = line.splitn(6, ' ');
            let mut next = || f.next().ok_or_else(bad);
            Ok(FileStat {
                size: next()?.parse().map_err(|_| bad())?,
                mtime_secs: next()?.parse().map_err(|_| bad())?,
                mode: u32::from_str_radix(next()?, 8).map_err(|_| bad())?,
                uid: next()?.parse().map_err(|_| bad())?,
                gid: next()?.parse().map_err(|_| bad())?,
                path: next()?.to_string(),
            })
        })
        .collect()
}

/// Parses `sha256sum` (`HASH  PATH`; `HASH *PATH` in binary mode):
/// path → hex digest.
pub fn sha256sum(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bad = || {
                ParseError::new(
                    "sha256sum",
                    format!("line {}: cannot read {}", i + 1, excerpt(line)),
                )
            };
            let (hash, path) = line.split_once(' ').ok_or_else(bad)?;
            let path = path.strip_prefix([' ', '*']).ok_or_else(bad)?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || path.is_empty() {
                return Err(bad());
            }
            Ok((path.to_string(), hash.to_ascii_lowercase()))
        })
        .collect()
}

/// The twin's view of each `watched` path from the two outputs: present
/// (with hash when `sha256sum` could read it), or missing. Content never
/// travels from an agentless host.
pub fn watched(
    watched: &[String],
    stats: &[FileStat],
    sums: &BTreeMap<String, String>,
) -> Vec<WatchedFile> {
    watched
        .iter()
        .map(|path| match stats.iter().find(|s| &s.path == path) {
            Some(s) => {
                let sha = sums.get(path).cloned();
                WatchedFile {
                    path: path.clone(),
                    state: if sha.is_some() {
                        FileState::Present
                    } else {
                        FileState::Unreadable
                    },
                    sha256: sha.clone(),
                    size: Some(s.size),
                    mtime_ms: Some(s.mtime_secs.saturating_mul(1000)),
                    mode: Some(s.mode & 0o7777),
                    uid: Some(s.uid),
                    gid: Some(s.gid),
                    content: FileContent::None,
                    origin: "watch".into(),
                    error: sha.is_none().then(|| "sha256sum could not read it".into()),
                    ..Default::default()
                }
            }
            None => WatchedFile {
                path: path.clone(),
                state: FileState::Missing,
                content: FileContent::None,
                origin: "watch".into(),
                ..Default::default()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_gnu_and_busybox() {
        let gnu = stat(include_str!("../testdata/debian/stat_files")).unwrap();
        let bb = stat(include_str!("../testdata/busybox/stat_files")).unwrap();
        assert_eq!(gnu, bb);
        assert_eq!(gnu[1].path, "/etc/passwd");
        assert_eq!(gnu[1].mode, 0o644);
        let sums = sha256sum(include_str!("../testdata/debian/sha256sum")).unwrap();
        assert_eq!(
            sums,
            sha256sum(include_str!("../testdata/busybox/sha256sum")).unwrap()
        );
        let paths = ["/etc/passwd".to_string(), "/nonexistent".to_string()];
        let w = watched(&paths, &gnu, &sums);
        assert_eq!(w[0].state, FileState::Present);
        assert_eq!(w[0].sha256.as_deref().map(str::len), Some(64));
        assert_eq!(w[0].size, Some(1815));
        assert_eq!(w[1].state, FileState::Missing);
        assert_eq!(w[1].sha256, None);
    }

    #[test]
    fn names_with_spaces_and_garbage() {
        let s = stat("12 1700000000 600 0 0 /etc/my file.conf\n").unwrap();
        assert_eq!(s[0].path, "/etc/my file.conf");
        assert!(stat("stat: cannot statx '/x': No such file").is_err());
        assert!(stat("12 1700000000").is_err(), "truncated");
        assert!(stat("12 1700000000 999 0 0 /x").is_err(), "not octal");
        let h = "a".repeat(64);
        assert_eq!(sha256sum(&format!("{h} */bin/x\n")).unwrap()["/bin/x"], h);
        assert!(sha256sum("abc  /x").is_err());
        assert!(sha256sum(&h).is_err());
    }
}
