//! Path arguments, resolved on this host before an action runs.
//!
//! The schema check both sides run (`proto::command`) works on text: an
//! absolute path inside `under`, without `..`. A symlink inside `under` can
//! still lead anywhere (`under/etclink/` listed `/etc`), and only the agent
//! can see it. So the agent resolves every path argument here: each symlink
//! on the way must stay beneath `under`, and the action gets the resolved
//! path, which holds no symlink at all.
//!
//! The rules are the kernel's `RESOLVE_BENEATH` (`openat2`, Linux 5.6+), and
//! where the kernel lacks it (or a seccomp filter hides it) the same walk is
//! done here one component at a time with `O_NOFOLLOW`:
//! - a relative symlink is followed, as long as it stays beneath `under`;
//! - an absolute symlink is refused, even one pointing inside `under`;
//! - a path that does not exist yet (a file to create) is fine when its
//!   nearest existing ancestor resolves beneath `under` and the rest does not
//!   exist at all (a dangling symlink is refused).
//!
//! `under` itself comes from the policy and is trusted: it is resolved as it
//! is, symlinks and all, and the result is the directory paths must stay in.
//!
//! What remains: the program opens the path itself, later. Someone who can
//! write inside `under` could, in between, replace a directory on the
//! resolved path with a symlink. Passing the resolved path (no symlinks to
//! re-point) narrows that window to such a replacement; it does not close it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The kernel's limit on symlinks in one lookup (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// How to resolve: the kernel's `openat2`, or the walk done here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// `openat2` with `RESOLVE_BENEATH`.
    Kernel,
    /// The walk (what a kernel before 5.6 gets).
    Walk,
}

/// Why a path argument is refused. The message finishes the sentence
/// "argument X …"; it goes to the hub as text, so it carries the file
/// system's error itself.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A symlink on the way leaves `under` (or is absolute).
    #[error("{path:?} leads outside {} through a symlink", under.display())]
    Escapes { path: String, under: PathBuf },
    #[error("{path:?} goes through a symlink that points at nothing")]
    Dangling { path: String },
    /// Too many symlinks, or a loop.
    #[error("{path:?} goes through too many symlinks")]
    Loop { path: String },
    #[error("{path:?} goes through something that is not a directory")]
    NotDir { path: String },
    /// The policy's own directory cannot be resolved.
    #[error("cannot be checked: the policy's directory {under}: {error}")]
    Under {
        under: String,
        error: std::io::Error,
    },
    /// Anything else the file system said (no permission, …).
    #[error("{path:?} cannot be resolved: {error}")]
    Io { path: String, error: std::io::Error },
    /// The resolved path cannot go into an argv.
    #[error("{path:?} resolves to a name that is not UTF-8")]
    NotUtf8 { path: String },
}

/// Resolves `value` (already checked as text to be inside `under`) on this
/// host; returns the path to pass on, with its trailing `/` kept.
pub fn resolve(under: &str, value: &str) -> Result<String, Refused> {
    resolve_with(under, value, How::Kernel)
        .or_else(|| resolve_with(under, value, How::Walk))
        .expect("the walk always answers")
}

/// [`resolve`] one way; `None` when `how` is [`How::Kernel`] and this
/// kernel (or its /proc) cannot.
pub(crate) fn resolve_with(under: &str, value: &str, how: How) -> Option<Result<String, Refused>> {
    let refused_under = |error: std::io::Error| {
        Some(Err(Refused::Under {
            under: under.to_string(),
            error,
        }))
    };
    let root = match std::fs::canonicalize(under) {
        Ok(root) => root,
        Err(e) => return refused_under(e),
    };
    let root_fd = match rustix::fs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return refused_under(e.into()),
    };
    // The text check made `value` `under` plus plain components.
    let rest = value
        .strip_prefix(under.trim_end_matches('/'))
        .unwrap_or(value);
    let names: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    let at = Walk {
        value,
        root: &root,
        root_fd: &root_fd,
    };
    let resolved = match how {
        How::Kernel => at.kernel(&names)?,
        How::Walk => at.walk(&names),
    };
    Some(resolved.and_then(|path| {
        let mut out = path
            .into_os_string()
            .into_string()
            .map_err(|_| Refused::NotUtf8 {
                path: value.to_string(),
            })?;
        if value.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        }
        Ok(out)
    }))
}

struct Walk<'a> {
    value: &'a str,
    root: &'a Path,
    root_fd: &'a OwnedFd,
}

impl Walk<'_> {
    fn escapes(&self) -> Refused {
        Refused::Escapes {
            path: self.value.to_string(),
            under: self.root.to_path_buf(),
        }
    }

    fn refused(&self, errno: Errno) -> Refused {
        let path = self.value.to_string();
        match errno {
            Errno::XDEV => self.escapes(),
            Errno::LOOP => Refused::Loop { path },
            Errno::NOTDIR => Refused::NotDir { path },
            e => Refused::Io {
                path,
                error: e.into(),
            },
        }
    }

    /// `openat2(RESOLVE_BENEATH)` on the longest existing prefix of
    /// `names`; `None` where the kernel (or /proc) cannot, so the caller walks.
    fn kernel(&self, names: &[&str]) -> Option<Result<PathBuf, Refused>> {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let mut existing = names.len();
        let fd = loop {
            let prefix = if existing == 0 {
                ".".to_string()
            } else {
                names[..existing].join("/")
            };
            // EAGAIN: a rename raced the lookup; the kernel asks to retry.
            let mut tries = 0;
            let opened = loop {
                match rustix::fs::openat2(
                    self.root_fd,
                    prefix.as_str(),
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    how,
                ) {
                    Err(Errno::AGAIN) if tries < 3 => tries += 1,
                    other => break other,
                }
            };
            match opened {
                Ok(fd) => break fd,
                Err(Errno::NOSYS | Errno::PERM) => return None,
                Err(Errno::NOENT) if existing > 0 => existing -= 1,
                Err(e) => return Some(Err(self.refused(e))),
            }
        };
        // The first missing name must not exist at all: if it does, it is a
        // symlink that points at nothing.
        if existing < names.len() {
            match rustix::fs::statat(&fd, names[existing], AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => {}
                Ok(_) => {
                    return Some(Err(Refused::Dangling {
                        path: self.value.to_string(),
                    }));
                }
                Err(e) => return Some(Err(self.refused(e))),
            }
        }
        // Where the kernel opened: the path it found, as /proc tells it.
        let found = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        if !found.starts_with(self.root) {
            return Some(Err(self.escapes()));
        }
        Some(Ok(names[existing..]
            .iter()
            .fold(found, |path, name| path.join(name))))
    }

    /// The same rules, one component at a time: each opened with
    /// `O_NOFOLLOW` relative to the directory before it, symlinks read and
    /// their targets walked in their place, `..` taken back off the stack of
    /// directories opened (never looked up), and refused past `under`.
    fn walk(&self, names: &[&str]) -> Result<PathBuf, Refused> {
        // The directories opened so far below `under`, with their names.
        let mut dirs: Vec<(OwnedFd, OsString)> = Vec::new();
        // Names still to go; `true` for those read from a symlink.
        let mut todo: VecDeque<(OsString, bool)> =
            names.iter().map(|n| (OsString::from(n), false)).collect();
        let mut links = 0;
        let mut tail: Vec<OsString> = Vec::new();
        while let Some((name, from_link)) = todo.pop_front() {
            if name.is_empty() || name == "." {
                continue;
            }
            if name == ".." {
                if dirs.pop().is_none() {
                    return Err(self.escapes());
                }
                continue;
            }
            let dir = dirs.last().map_or(self.root_fd, |(fd, _)| fd);
            let fd = match rustix::fs::openat(
                dir,
                name.as_os_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                // A name of the value itself that is not there yet: it and
                // the rest are to be created. One read from a symlink: the
                // symlink points at nothing.
                Err(Errno::NOENT) if !from_link => {
                    tail.push(name);
                    tail.extend(todo.drain(..).map(|(n, _)| n));
                    break;
                }
                Err(Errno::NOENT) => {
                    return Err(Refused::Dangling {
                        path: self.value.to_string(),
                    });
                }
                Err(e) => return Err(self.refused(e)),
            };
            let stat = rustix::fs::fstat(&fd).map_err(|e| self.refused(e))?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(self.refused(Errno::LOOP));
                    }
                    let target =
                        rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| self.refused(e))?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        return Err(self.escapes());
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        todo.push_front((OsStr::from_bytes(part).to_os_string(), true));
                    }
                }
                FileType::Directory => dirs.push((fd, name)),
                // A file (or a device, …) ends the path; anything after it
                // would need it to be a directory.
                _ if todo.is_empty() => {
                    tail.push(name);
                    break;
                }
                _ => return Err(self.refused(Errno::NOTDIR)),
            }
        }
        let mut path = self.root.to_path_buf();
        path.extend(dirs.iter().map(|(_, name)| name));
        path.extend(tail);
        Ok(path)
    }
}

#[cfg(test)]
mod tests;
