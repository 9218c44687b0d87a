//! `df -P` (POSIX output, GNU coreutils and BusyBox).

use crate::{ParseError, excerpt};

/// One filesystem from `df -P`, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfRow {
    pub device: String,
    pub mount: String,
    pub total: u64,
    pub used: u64,
    pub available: u64,
}

const CMD: &str = "df -P";

/// Parses `df -P`. The header gives the block size (`1024-blocks`, or
/// `512-blocks` under `POSIXLY_CORRECT`); a mount point may hold spaces (it
/// is everything after the capacity column). A line that does not parse is
/// an error: a truncated output must not look like a smaller machine.
pub fn df_p(text: &str) -> Result<Vec<DfRow>, ParseError> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let block = header
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|w| w.strip_suffix("-blocks"))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ParseError::new(CMD, format!("no `N-blocks` header in {}", excerpt(header)))
        })?;
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            ParseError::new(
                CMD,
                format!("line {}: cannot read {}", i + 2, excerpt(line)),
            )
        };
        // The device may hold spaces too (`//nas/media with space`): find
        // the first run of four numbers followed by a percentage.
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let at = (1..words.len().saturating_sub(4))
            .find(|&k| {
                words[k..k + 3].iter().all(|w| w.parse::<u64>().is_ok())
                    && words[k + 3].ends_with('%')
            })
            .ok_or_else(bad)?;
        let num = |w: &str| w.parse::<u64>().map_err(|_| bad());
        let mount_start = {
            // Everything after the capacity word, spaces kept as printed.
            let cap = words[at + 3];
            let pos = find_word(line, &words, at + 3).ok_or_else(bad)?;
            pos + cap.len()
        };
        let mount = line[mount_start..].trim();
        if !mount.starts_with('/') {
            return Err(bad());
        }
        rows.push(DfRow {
            device: words[..at].join(" "),
            mount: mount.to_string(),
            total: num(words[at])?.saturating_mul(block),
            used: num(words[at + 1])?.saturating_mul(block),
            available: num(words[at + 2])?.saturating_mul(block),
        });
    }
    Ok(rows)
}

/// Byte offset of the `n`th whitespace-separated word of `line`.
fn find_word(line: &str, words: &[&str], n: usize) -> Option<usize> {
    let mut from = 0;
    for (i, w) in words.iter().enumerate() {
        let pos = from + line[from..].find(w)?;
        if i == n {
            return Some(pos);
        }
        from = pos + w.len();
    }
    None
}

/// Pseudo filesystems not worth a row (what the agent skips by type, told
/// here by device name since `df -P` has no type column).
pub fn is_pseudo(row: &DfRow) -> bool {
    matches!(
        row.device.as_str(),
        "tmpfs"
            | "devtmpfs"
            | "udev"
            | "none"
            | "shm"
            | "overlay"
            | "run"
            | "dev"
            | "cgroup"
            | "cgroup2"
            | "proc"
            | "sysfs"
    ) || row.mount.starts_with("/proc")
        || row.mount.starts_with("/sys")
        || row.mount.starts_with("/dev")
        || row.mount.starts_with("/run")
        || row.total == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_busybox_and_openwrt() {
        let d = df_p(include_str!("../testdata/debian/df_p")).unwrap();
        let root = d.iter().find(|r| r.mount == "/").unwrap();
        assert_eq!(root.device, "/dev/vda");
        assert_eq!(root.total, 264212084 * 1024);
        let share = d.iter().find(|r| r.mount == "/mnt/media share").unwrap();
        assert_eq!(share.device, "//nas/media with space");
        let kept: Vec<_> = d
            .iter()
            .filter(|r| !is_pseudo(r))
            .map(|r| r.mount.as_str())
            .collect();
        assert_eq!(kept, ["/", "/boot/efi", "/mnt/media share"]);

        let b = df_p(include_str!("../testdata/busybox/df_p")).unwrap();
        assert!(b.iter().any(|r| r.mount == "/" && r.used > 0));

        let o = df_p(include_str!("../testdata/openwrt/df_p")).unwrap();
        let over = o.iter().find(|r| r.mount == "/").unwrap();
        assert_eq!(over.device, "overlayfs:/overlay");
        assert_eq!((over.total, over.used), (8448 * 1024, 1012 * 1024));
        let rom = o.iter().find(|r| r.mount == "/rom").unwrap();
        assert_eq!(rom.available, 0);
    }

    #[test]
    fn block_size_from_the_header() {
        let t = "Filesystem 512-blocks Used Available Capacity Mounted on\n/dev/sda1 2000 1000 1000 50% /\n";
        assert_eq!(df_p(t).unwrap()[0].total, 1_024_000);
    }

    #[test]
    fn garbage_and_truncated() {
        let e = df_p("").unwrap_err();
        assert_eq!(e.command, "df -P");
        assert!(e.reason.contains("N-blocks"), "{e}");
        let full = include_str!("../testdata/debian/df_p");
        let cut = &full[..full.len() - 20];
        assert!(
            df_p(cut).unwrap_err().reason.starts_with("line "),
            "a cut last line"
        );
        assert!(df_p("df: invalid option -- 'P'\n").is_err());
    }
}
