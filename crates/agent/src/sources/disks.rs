//! Mounted filesystems: usage (statvfs) and I/O rates (`/proc/diskstats`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use twinbay_proto::model::{DiskSample, Mount};

/// One line of `/proc/self/mountinfo`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub device_id: (u32, u32),
    pub root: String,
    pub path: String,
    pub fs_type: String,
    pub source: String,
}

/// Pseudo and virtual filesystems: nothing a user thinks of as a disk.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "securityfs",
    "pstore",
    "bpf",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
    "ramfs",
    "squashfs",
    "overlay",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.gvfsd-fuse",
    "nfsd",
];

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let (_id, _parent, dev, root, path) = (l.next()?, l.next()?, l.next()?, l.next()?, l.next()?);
    let (major, minor) = dev.split_once(':')?;
    let mut r = right.split(' ');
    let (fs_type, source) = (r.next()?, r.next().unwrap_or(""));
    Some(MountEntry {
        device_id: (major.parse().ok()?, minor.parse().ok()?),
        root: unescape(root),
        path: unescape(path),
        fs_type: fs_type.to_string(),
        source: unescape(source),
    })
}

/// Undoes the kernel's octal escapes (`\040` is a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = |j: usize| bytes.get(j).is_some_and(|b| (b'0'..=b'7').contains(b));
        if bytes[i] == b'\\' && octal(i + 1) && octal(i + 2) && octal(i + 3) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts worth showing: real filesystems, each device once (bind
/// mounts and container views of the same filesystem are skipped).
pub fn interesting(entries: Vec<MountEntry>) -> Vec<MountEntry> {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|m| m.path == "/" || !PSEUDO.contains(&m.fs_type.as_str()))
        .filter(|m| {
            m.path == "/"
                || m.source.starts_with("/dev/")
                || matches!(
                    m.fs_type.as_str(),
                    "zfs"
                        | "btrfs"
                        | "nfs"
                        | "nfs4"
                        | "cifs"
                        | "smb3"
                        | "fuseblk"
                        | "9p"
                        | "virtiofs"
                )
        })
        .filter(|m| m.root == "/" || m.path == "/")
        .filter(|m| seen.insert((m.device_id, m.fs_type.clone(), m.source.clone())))
        .collect()
}

/// Sectors read and written per device, from `/proc/diskstats`.
pub fn parse_diskstats(text: &str) -> HashMap<(u32, u32), (u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            // major minor name reads merged sectors_read ms writes merged sectors_written …
            if f.len() < 10 {
                return None;
            }
            let id = (f[0].parse().ok()?, f[1].parse().ok()?);
            Some((id, (f[5].parse().ok()?, f[9].parse().ok()?)))
        })
        .collect()
}

/// Usage of the filesystem at `path`: (total, used) bytes, as `df` counts them.
pub fn usage(path: &Path) -> Result<(u64, u64), String> {
    let st = rustix::fs::statvfs(path).map_err(|e| e.to_string())?;
    let frsize = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    let total = st.f_blocks.saturating_mul(frsize);
    let used = st
        .f_blocks
        .saturating_sub(st.f_bfree)
        .saturating_mul(frsize);
    Ok((total, used))
}

/// Tracks mounts and turns diskstats counters into rates.
#[derive(Debug)]
pub struct DiskSource {
    root: PathBuf,
    prev: HashMap<(u32, u32), (u64, u64)>,
    prev_ms: i64,
}

impl DiskSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DiskSource {
            root: root.into(),
            prev: HashMap::new(),
            prev_ms: 0,
        }
    }

    /// The mounts (for the twin) and their usage and I/O (for the sample).
    pub fn sample(&mut self, now_ms: i64) -> std::io::Result<(Vec<Mount>, Vec<DiskSample>)> {
        let mountinfo = std::fs::read_to_string(self.root.join("proc/self/mountinfo"))?;
        let stats = std::fs::read_to_string(self.root.join("proc/diskstats"))
            .map(|t| parse_diskstats(&t))
            .unwrap_or_default();
        let secs = (now_ms - self.prev_ms) as f64 / 1000.0;
        let mut mounts = Vec::new();
        let mut samples = Vec::new();
        for entry in interesting(parse_mountinfo(&mountinfo)) {
            let usage = usage(&self.root.join(entry.path.trim_start_matches('/')));
            let rates = match (stats.get(&entry.device_id), self.prev.get(&entry.device_id)) {
                (Some(now), Some(prev)) if secs > 0.0 => (
                    now.0.saturating_sub(prev.0) as f64 * 512.0 / secs,
                    now.1.saturating_sub(prev.1) as f64 * 512.0 / secs,
                ),
                _ => (0.0, 0.0),
            };
            if let Ok((total, used)) = usage {
                samples.push(DiskSample {
                    mount: entry.path.clone(),
                    total,
                    used,
                    read_bps: rates.0,
                    write_bps: rates.1,
                });
            }
            mounts.push(Mount {
                device: entry.source.as_str().into(),
                fs_type: entry.fs_type.as_str().into(),
                error: usage.err(),
                path: entry.path,
            });
        }
        self.prev = stats;
        self.prev_ms = now_ms;
        Ok((mounts, samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = include_str!("testdata/mountinfo");

    #[test]
    fn picks_real_filesystems_once_and_unescapes_paths() {
        let all = parse_mountinfo(MOUNTINFO);
        assert_eq!(all.len(), 14);
        let picked = interesting(all);
        let paths: Vec<_> = picked.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/", "/boot/efi", "/mnt/media disk", "/tank", "/srv/nfs"]
        );
        assert_eq!(picked[0].device_id, (259, 2));
        assert_eq!(picked[2].source, "/dev/sdb1");
    }

    #[test]
    fn parses_diskstats_sectors() {
        let text = "   8       0 sda 4521 1234 361554 3370 2048 1543 70840 6093 0 5028 9463 0 0 0 0\n 259       2 nvme0n1p2 100 0 2000 10 50 0 800 5 0 0 0\nbroken line\n";
        let stats = parse_diskstats(text);
        assert_eq!(stats[&(8, 0)], (361554, 70840));
        assert_eq!(stats[&(259, 2)], (2000, 800));
        assert_eq!(stats.len(), 2);
    }

    #[test]
    fn a_mount_without_permission_reports_its_error() {
        let err = usage(Path::new("/nonexistent/twinbay")).unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn samples_this_machine() {
        let mut source = DiskSource::new("/");
        let (mounts, samples) = source.sample(1_000).unwrap();
        assert!(mounts.iter().any(|m| m.path == "/"), "{mounts:?}");
        let root = samples.iter().find(|d| d.mount == "/").unwrap();
        assert!(root.total > 0 && root.used <= root.total);
        let (_, again) = source.sample(2_000).unwrap();
        assert!(
            again
                .iter()
                .all(|d| d.read_bps >= 0.0 && d.write_bps >= 0.0)
        );
    }
}
