//! Podman's events log file, read as it grows: the fast path for container
//! changes.
//!
//! Podman's Engine API serves events from its `file` events backend by
//! polling that file, so they arrive 60–250 ms after they happen. Podman
//! appends each event to the file the moment it happens, so the source also
//! puts inotify on the file's directory (a watch on the file itself would go
//! silent when Podman rotates it by renaming a new file over it) and reads
//! the new bytes from the last offset on each change. Each container event
//! found there is handled like one from the API, which stays on as the
//! fallback and the truth.
//!
//! What the file holds was written by someone else: a line that does not
//! parse is skipped, a partial line is kept only up to [`MAX_LINE`] bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::models::{EventActor, EventMessage, EventMessageTypeEnum};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use serde::Deserialize;
use tokio::sync::Notify;

/// A line longer than this is dropped (and the rest of it up to its newline).
pub const MAX_LINE: usize = 64 * 1024;
/// At most this much is read per wake-up; more is read on the next one.
const MAX_READ: usize = 1024 * 1024;

/// One line of Podman's events log (`libpod/events.Event` as JSON); fields
/// the source does not use are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LogEvent {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Type", default)]
    pub typ: String,
    #[serde(rename = "Time", default)]
    pub time: String,
    #[serde(rename = "ContainerExitCode", default)]
    pub exit_code: Option<i64>,
}

impl LogEvent {
    /// Podman's own record of rotating the file.
    pub fn is_rotation(&self) -> bool {
        self.typ == "system" && self.status == "log-rotation"
    }

    /// The same event as the Engine API would deliver it, if it is about a
    /// container (`died` is `die` there, the exit code an attribute).
    pub fn to_message(&self) -> Option<EventMessage> {
        if self.typ != "container" || self.id.is_empty() || self.status.is_empty() {
            return None;
        }
        let action = match self.status.as_str() {
            "died" => "die",
            s => s,
        };
        let mut attributes = HashMap::new();
        if !self.name.is_empty() {
            attributes.insert("name".to_string(), self.name.clone());
        }
        if let Some(code) = self.exit_code {
            attributes.insert("containerExitCode".to_string(), code.to_string());
        }
        let time_nano = unix_nanos(&self.time);
        Some(EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(self.id.clone()),
                attributes: Some(attributes),
            }),
            time: time_nano.map(|n| n.div_euclid(1_000_000_000)),
            time_nano,
            ..Default::default()
        })
    }
}

/// Nanoseconds since the Unix epoch of an RFC 3339 time as Podman writes it
/// (`2026-12-02T21:05:45.405915351Z`, or with an offset such as `+01:00`);
/// the API's `timeNano` of the same event is the same number.
pub fn unix_nanos(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(t.get(0..4)?)?, num(t.get(5..7)?)?, num(t.get(8..10)?)?);
    let (h, mi, s) = (
        num(t.get(11..13)?)?,
        num(t.get(14..16)?)?,
        num(t.get(17..19)?)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = t.get(19..)?;
    let mut nanos = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(&frac[..digits])? * 10i64.pow(9 - digits as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (num(&rest[1..3])?, num(&rest[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Parses one line; `None` (with a debug log) for anything that is not an
/// event.
pub fn parse_line(line: &[u8]) -> Option<LogEvent> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    match serde_json::from_slice::<LogEvent>(line) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::debug!(error = %e, len = line.len(), "skipping a malformed events log line");
            None
        }
    }
}

/// Splits bytes as they come into complete lines, keeping at most
/// [`MAX_LINE`] bytes of an unfinished one.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// In the middle of a line that was too long: drop up to its newline.
    skipping: bool,
}

impl Lines {
    /// The lines `bytes` completes, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&bytes[..nl], &bytes[nl + 1..]);
            if std::mem::take(&mut self.skipping) || self.partial.len() + head.len() > MAX_LINE {
                tracing::debug!("skipping an events log line over {MAX_LINE} bytes");
                self.partial.clear();
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                out.push(line);
            }
            bytes = rest;
        }
        if !self.skipping {
            if self.partial.len() + bytes.len() > MAX_LINE {
                self.partial = Vec::new();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(bytes);
            }
        }
        out
    }

    pub fn reset(&mut self) {
        self.partial = Vec::new();
        self.skipping = false;
    }
}

/// Where Podman writes its events log: `events_logfile_path` if a
/// containers.conf sets it, else `events/events.log` in its `tmp_dir`
/// (`/run/libpod` as root, `$XDG_RUNTIME_DIR/libpod/tmp` rootless).
/// `confs` are the files' texts, later ones overriding earlier ones.
pub fn log_path(confs: &[String], rootless: bool, runtime_dir: Option<&str>) -> Option<PathBuf> {
    let mut path = None;
    let mut tmp_dir = None;
    for text in confs {
        path = engine_value(text, "events_logfile_path").or(path);
        tmp_dir = engine_value(text, "tmp_dir").or(tmp_dir);
    }
    if let Some(p) = path.filter(|p: &String| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let tmp = match tmp_dir.filter(|t| !t.is_empty()) {
        Some(t) => PathBuf::from(t),
        None if rootless => PathBuf::from(runtime_dir?).join("libpod/tmp"),
        None => PathBuf::from("/run/libpod"),
    };
    Some(tmp.join("events/events.log"))
}

/// A string value in the `[engine]` table of a containers.conf (TOML, read
/// just enough for `key = "value"` lines).
fn engine_value(text: &str, key: &str) -> Option<String> {
    let mut in_engine = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_engine = line.trim_start_matches('[').trim_end_matches(']').trim() == "engine";
            continue;
        }
        if !in_engine || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.split_once('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.split_once('\'')))
            .map(|(v, _)| v.to_string());
        found = v.or(found);
    }
    found
}

/// The containers.conf files Podman reads, in order (`CONTAINERS_CONF`
/// alone when set).
pub fn conf_files(rootless: bool) -> Vec<PathBuf> {
    if let Some(c) = std::env::var_os("CONTAINERS_CONF") {
        return vec![PathBuf::from(c)];
    }
    let mut dirs = vec![
        PathBuf::from("/usr/share/containers"),
        PathBuf::from("/etc/containers"),
    ];
    if rootless {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(c) = config {
            dirs.push(c.join("containers"));
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        out.push(dir.join("containers.conf"));
        if let Ok(entries) = std::fs::read_dir(dir.join("containers.conf.d")) {
            let mut d: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            d.sort();
            out.extend(d);
        }
    }
    out
}

/// The events log of the Podman behind `socket`, if it logs to a file this
/// agent can read: asks libpod's `info` for the logger and whether it runs
/// rootless, then finds the file as Podman would.
pub async fn find(socket: &Path) -> Result<PathBuf, String> {
    let info = libpod_info(socket).await?;
    let host = &info["host"];
    match host["eventLogger"].as_str() {
        Some("file") => {}
        Some(other) => return Err(format!("Podman's event logger is {other}")),
        None => return Err("not Podman, or no event logger in its info".into()),
    }
    let rootless = host["security"]["rootless"].as_bool().unwrap_or(false);
    let confs: Vec<String> = conf_files(rootless)
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR").ok();
    let path = log_path(&confs, rootless, runtime_dir.as_deref())
        .ok_or("no XDG_RUNTIME_DIR for a rootless Podman's events log")?;
    File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `GET /libpod/info` over the socket, by hand (bollard speaks only the
/// Docker API): HTTP/1.0, so the body simply ends with the connection.
async fn libpod_info(socket: &Path) -> Result<serde_json::Value, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        s.write_all(b"GET /v4.0.0/libpod/info HTTP/1.0\r\nHost: podman\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.take(4 * 1024 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(10), ask)
        .await
        .map_err(|_| "libpod info: timed out".to_string())?
        .map_err(|e| format!("libpod info: {e}"))?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("libpod info: no HTTP response")?;
    let (head, body) = (&buf[..split], &buf[split + 4..]);
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err("libpod info: not answered (not Podman?)".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("libpod info: {e}"))
}

/// The log file, followed from where it ended when opened.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: File,
    /// `(dev, inode)` of `file`: a new one at `path` means a rotation.
    identity: (u64, u64),
    offset: u64,
    lines: Lines,
}

impl Tail {
    /// Opens `path` at its end: what is already there is history.
    pub fn open(path: &Path) -> std::io::Result<Tail> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let offset = file.seek(SeekFrom::End(0))?;
        Ok(Tail {
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
            offset,
            lines: Lines::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The events appended since the last call, and whether there is more
    /// to read. A file replaced (Podman's rotation) or truncated is read from
    /// its start, skipping what Podman carried over from the old one (up to
    /// its `log-rotation` event).
    pub fn read(&mut self) -> std::io::Result<(Vec<LogEvent>, bool)> {
        let mut events = Vec::new();
        // What the old file still held, then the new one.
        let (more, _) = self.read_lines(&mut events)?;
        if more {
            return Ok((events, true));
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            // Between Podman's rename and the next write: nothing yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((events, false)),
            Err(e) => return Err(e),
        };
        let identity = (meta.dev(), meta.ino());
        if identity == self.identity && meta.len() >= self.offset {
            return Ok((events, false));
        }
        tracing::debug!(path = %self.path.display(), "events log rotated");
        if identity != self.identity {
            self.file = File::open(&self.path)?;
            self.identity = identity;
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.offset = 0;
        self.lines.reset();
        let mut fresh = Vec::new();
        let (more, _) = self.read_lines(&mut fresh)?;
        let after = fresh
            .iter()
            .rposition(LogEvent::is_rotation)
            .map_or(0, |i| i + 1);
        events.extend(fresh.drain(after..));
        Ok((events, more))
    }

    /// Reads to the end of the current file (or [`MAX_READ`]).
    fn read_lines(&mut self, out: &mut Vec<LogEvent>) -> std::io::Result<(bool, usize)> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok((false, total));
            }
            self.offset += n as u64;
            total += n;
            out.extend(
                self.lines
                    .feed(&buf[..n])
                    .iter()
                    .filter_map(|l| parse_line(l)),
            );
            if total >= MAX_READ {
                return Ok((true, total));
            }
        }
    }
}

/// inotify on the log's directory, waking `wake` when the log changes.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl Watch {
    pub fn new(path: &Path, wake: Arc<Notify>) -> notify::Result<Watch> {
        let name = path.file_name().map(|n| n.to_os_string());
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |e: notify::Result<notify::Event>| match e {
                Ok(e) if e.need_rescan() => wake.notify_one(),
                Ok(e)
                    if counts(&e.kind)
                        && e.paths.iter().any(|p| p.file_name() == name.as_deref()) =>
                {
                    wake.notify_one()
                }
                Ok(_) => {}
                Err(_) => wake.notify_one(),
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Watch { _watcher: watcher })
    }
}

/// Whether an event can mean new bytes or a new file (opens and reads,
/// including the agent's own, do not).
fn counts(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
#[path = "eventlog_tests.rs"]
mod tests;
