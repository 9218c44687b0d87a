//! Where a running command's output goes: UTF-8 chunks, capped, to the link.
//!
//! Pipes deliver bytes in arbitrary pieces; a multi-byte character cut in
//! two is held back until its rest arrives, so every chunk is valid UTF-8.
//! Past the cap, output is dropped (the process keeps running and its pipes
//! keep draining, so it never blocks) and one marker line says so.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::{CommandResult, OutputChunk, Stream};

/// What the executor tells the link.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Output(OutputChunk),
    Result(CommandResult),
}

/// The command was cancelled (or the link went away) while output waited.
#[derive(Debug)]
pub struct Gone;

pub struct Sink {
    id: String,
    tx: mpsc::Sender<Event>,
    cancel: CancellationToken,
    cap: u64,
    used: u64,
    truncated: bool,
    /// An incomplete UTF-8 sequence at the end of the last read, per stream.
    carry: [Vec<u8>; 2],
}

impl Sink {
    pub fn new(id: &str, tx: mpsc::Sender<Event>, cancel: CancellationToken, cap: u64) -> Sink {
        Sink {
            id: id.to_string(),
            tx,
            cancel,
            cap,
            used: 0,
            truncated: false,
            carry: [Vec::new(), Vec::new()],
        }
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Text, e.g. from an API that already decoded it.
    pub async fn text(&mut self, stream: Stream, text: &str) -> Result<(), Gone> {
        self.bytes(stream, text.as_bytes()).await
    }

    /// Bytes as read from a pipe.
    pub async fn bytes(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Gone> {
        let carry = &mut self.carry[stream as usize];
        let joined;
        let buf: &[u8] = if carry.is_empty() {
            bytes
        } else {
            carry.extend_from_slice(bytes);
            joined = std::mem::take(carry);
            &joined
        };
        let text = match std::str::from_utf8(buf) {
            Ok(s) => s.to_string(),
            Err(e) if e.error_len().is_none() => {
                let (valid, rest) = buf.split_at(e.valid_up_to());
                self.carry[stream as usize] = rest.to_vec();
                // `valid` is valid UTF-8 by construction.
                String::from_utf8_lossy(valid).into_owned()
            }
            Err(_) => String::from_utf8_lossy(buf).into_owned(),
        };
        self.emit(stream, text).await
    }

    /// Whatever is held back at the end (an incomplete character).
    pub async fn finish(&mut self) -> Result<(), Gone> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.carry[stream as usize]);
            if !rest.is_empty() {
                self.emit(stream, String::from_utf8_lossy(&rest).into_owned())
                    .await?;
            }
        }
        Ok(())
    }

    async fn emit(&mut self, stream: Stream, mut text: String) -> Result<(), Gone> {
        if self.truncated || text.is_empty() {
            return Ok(());
        }
        let room = self.cap.saturating_sub(self.used);
        if text.len() as u64 > room {
            let mut cut = room as usize;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(&format!(
                "\n[twinbay: output truncated at {} bytes; the rest was dropped]\n",
                self.cap
            ));
            self.truncated = true;
        }
        self.used += text.len() as u64;
        let chunk = OutputChunk {
            id: self.id.clone(),
            stream,
            data: text,
        };
        self.send(Event::Output(chunk)).await
    }

    pub async fn send(&self, event: Event) -> Result<(), Gone> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Gone),
            sent = self.tx.send(event) => sent.map_err(|_| Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(mut rx: mpsc::Receiver<Event>) -> String {
        let mut out = String::new();
        while let Some(Event::Output(c)) = rx.recv().await {
            out.push_str(&c.data);
        }
        out
    }

    #[tokio::test]
    async fn keeps_characters_whole_across_reads() {
        let (tx, rx) = mpsc::channel(16);
        let mut sink = Sink::new("c", tx, CancellationToken::new(), 1 << 20);
        let euro = "€".as_bytes();
        sink.bytes(Stream::Stdout, &[b'a', euro[0]]).await.unwrap();
        sink.bytes(Stream::Stdout, &euro[1..]).await.unwrap();
        sink.finish().await.unwrap();
        drop(sink);
        assert_eq!(collect(rx).await, "a€");
    }

    #[tokio::test]
    async fn cuts_at_the_cap_with_one_marker() {
        let (tx, rx) = mpsc::channel(16);
        let mut sink = Sink::new("c", tx, CancellationToken::new(), 10);
        sink.text(Stream::Stdout, "12345678").await.unwrap();
        sink.text(Stream::Stderr, "abcdef").await.unwrap();
        sink.text(Stream::Stdout, "more").await.unwrap();
        assert!(sink.truncated());
        drop(sink);
        let out = collect(rx).await;
        assert!(
            out.starts_with("12345678ab\n[twinbay: output truncated at 10 bytes"),
            "{out}"
        );
        assert_eq!(out.matches("truncated").count(), 1);
    }
}
