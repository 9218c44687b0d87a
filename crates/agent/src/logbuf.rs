//! The agent's own recent log lines, for `logs` on the agent itself.
//!
//! The binary's log writer is [`Tee`]: every line goes to stderr as before
//! and into a ring of the last [`KEEP`] lines, which `logs` reads (and
//! `logs -f` follows through a broadcast channel).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tokio::sync::broadcast;

/// Lines kept.
pub const KEEP: usize = 1000;

struct Ring {
    lines: Mutex<VecDeque<String>>,
    live: broadcast::Sender<String>,
}

fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(|| Ring {
        lines: Mutex::new(VecDeque::with_capacity(64)),
        live: broadcast::channel(256).0,
    })
}

/// Records one or more lines of log output (without terminal colours).
pub fn record(text: &str) {
    let text = strip_ansi(text);
    let ring = ring();
    let mut lines = ring.lines.lock().unwrap_or_else(|e| e.into_inner());
    for line in text.lines().filter(|l| !l.is_empty()) {
        if lines.len() == KEEP {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
        let _ = ring.live.send(line.to_string());
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\x1b') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out.into()
}

/// The last `n` lines, and a receiver of lines logged from now on.
pub fn tail(n: usize) -> (Vec<String>, broadcast::Receiver<String>) {
    let ring = ring();
    let lines = ring.lines.lock().unwrap_or_else(|e| e.into_inner());
    let live = ring.live.subscribe();
    let skip = lines.len().saturating_sub(n);
    (lines.iter().skip(skip).cloned().collect(), live)
}

/// A log writer: stderr, and the ring.
pub struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        record(&String::from_utf8_lossy(buf));
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_streams_new_ones() {
        record("first marker-logbuf\nsecond marker-logbuf\n");
        let (last, mut live) = tail(1);
        assert_eq!(last, ["second marker-logbuf"]);
        record("\x1b[2mthird\x1b[0m marker-logbuf");
        assert_eq!(live.try_recv().unwrap(), "third marker-logbuf");
    }
}
