//! Backups on the host: run the producer, compress its stdout with zstd and
//! stream it to the hub over an upload socket of its own.
//!
//! The producer is a process either way: for `dir`, the system `tar` over
//! the directory (resolved beneath its policy root like any path argument,
//! symlinks inside stored as symlinks, never followed), with `--exclude`
//! patterns; for `volume`, the same over the volume's directory, which the
//! Engine API names; for an action marked `producer`, its argv. Its stdout is read
//! in 64 KiB pieces and fed to a zstd encoder; every 256 KiB of compressed
//! bytes go out as one binary frame, and the next read waits until the
//! frame is sent, so a slow hub slows the producer (its pipe fills) and the
//! agent holds at most one frame and the encoder's window. Its stderr goes
//! to the command's output, and its tail to the hub with the end frame.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use twinbay_proto::backup::{CHUNK_BYTES, STDERR_TAIL_BYTES, TransferEnd, TransferReply};
use twinbay_proto::codec::decode_hub_frame;
use twinbay_proto::command::{Status, Stream};
use twinbay_proto::message::{AgentMessage, Hello, HubMessage};
use twinbay_proto::{PROTOCOL_VERSION, link_proof_message};

use super::output::Sink;
use super::process::{Ended, PATH};

/// zstd's default level: fast, and most of the gain.
const LEVEL: i32 = 3;
/// Bytes read from the producer at a time.
const READ_BYTES: usize = 64 * 1024;
/// How long the hub may take to answer the end frame (it syncs the file
/// and prunes the job first).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// How to reach the hub's upload endpoint: what the link used, and the
/// agent's key to prove who it is.
#[derive(Clone)]
pub struct Uploader {
    pub hub: String,
    pub fingerprint: String,
    pub node_id: String,
    pub key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("hub", &self.hub)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The producer to run.
pub struct Producer<'a> {
    pub argv: Vec<String>,
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub timeout: Duration,
}

/// The argv of a `dir` backup of `resolved` (already resolved beneath its root).
pub fn tar_argv(resolved: &str, exclude: &[String]) -> Vec<String> {
    let mut argv = vec![
        "tar".to_string(),
        "--create".into(),
        "--file=-".into(),
        format!("--directory={resolved}"),
    ];
    argv.extend(exclude.iter().map(|e| format!("--exclude={e}")));
    argv.push(".".into());
    argv
}

/// The argv that restores a `dir` backup into `resolved`: GNU tar strips
/// leading `/` and refuses `..` members; ownership is the agent's.
pub fn untar_argv(resolved: &str) -> Vec<String> {
    vec![
        "tar".to_string(),
        "--extract".into(),
        "--file=-".into(),
        "--no-same-owner".into(),
        format!("--directory={resolved}"),
    ]
}

/// The directory that holds container volume `name` (its `Mountpoint`), as
/// the Engine API reports it; it must be an existing directory.
pub async fn volume_dir(socket: Option<&str>, name: &str) -> Result<String, String> {
    let docker = super::lifecycle::engine(socket)?;
    let volume = docker.inspect_volume(name).await.map_err(|e| match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => format!("no volume {name:?} on this host"),
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        e => e.to_string(),
    })?;
    let dir = volume.mountpoint;
    match tokio::fs::metadata(&dir).await {
        Ok(m) if m.is_dir() && dir.starts_with('/') => Ok(dir),
        Ok(_) => Err(format!("volume {name:?}: {dir:?} is not a directory")),
        Err(e) => Err(format!("volume {name:?}: {dir}: {e}")),
    }
}

/// The `tar` producer of a `dir` or `volume` backup of `resolved`, or its
/// `untar` consumer on a restore.
pub fn tar_producer<'a>(
    restore: bool,
    resolved: &str,
    exclude: &[String],
    cwd: &'a Path,
    env: &'a BTreeMap<String, String>,
) -> Producer<'a> {
    Producer {
        argv: match restore {
            true => untar_argv(resolved),
            false => tar_argv(resolved, exclude),
        },
        cwd,
        env,
        timeout: Duration::from_secs(twinbay_proto::command::MAX_TIMEOUT_SECS),
    }
}

type Socket = crate::link::HubSocket;

fn failed(error: String) -> Ended {
    Ended {
        status: Status::Failed,
        exit_code: None,
        error: Some(error),
    }
}

/// Opens an agent socket at `path` (an upload or a restore) and proves the agent's key.
pub(crate) async fn open(up: &Uploader, path: &str) -> Result<Socket, String> {
    let mut ws = crate::link::connect_path(&up.hub, &up.fingerprint, path)
        .await
        .map_err(|e| {
            format!(
                "cannot reach the hub's upload endpoint: {}",
                crate::error::report(&e)
            )
        })?;
    let nonce = match recv_hub(&mut ws).await? {
        HubMessage::Challenge { nonce, .. } => nonce,
        other => return Err(format!("the hub said {other:?} instead of a challenge")),
    };
    let signature = up.key.sign_b64(&link_proof_message(&nonce));
    let hello = AgentMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: crate::VERSION.to_string(),
        public_key: base64_key(&up.key),
        signature,
        node_id: Some(up.node_id.clone()),
        join_token: None,
        capabilities: vec!["backup".into()],
        simulated: false,
        policy: None,
    });
    let text = serde_json::to_string(&hello).expect("serializes");
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| format!("the upload socket broke: {e}"))?;
    match recv_hub(&mut ws).await? {
        HubMessage::Welcome { .. } => Ok(ws),
        HubMessage::Error { message, .. } => Err(format!("the hub refused the upload: {message}")),
        other => Err(format!("the hub said {other:?} instead of welcome")),
    }
}

trait SignB64 {
    fn sign_b64(&self, msg: &[u8]) -> String;
}

impl SignB64 for ed25519_dalek::SigningKey {
    fn sign_b64(&self, msg: &[u8]) -> String {
        use base64::Engine;
        use ed25519_dalek::Signer;
        base64::engine::general_purpose::STANDARD.encode(self.sign(msg).to_bytes())
    }
}

fn base64_key(key: &ed25519_dalek::SigningKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
}

async fn recv_hub(ws: &mut Socket) -> Result<HubMessage, String> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| "the hub did not answer on the upload socket".to_string())?;
        match frame {
            Some(Ok(Message::Text(t))) => {
                return decode_hub_frame(t.as_bytes())
                    .map_err(|e| format!("a bad frame from the hub: {e}"));
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err("the hub closed the upload socket".into());
            }
            Some(Err(e)) => return Err(format!("the upload socket broke: {e}")),
            Some(Ok(_)) => {}
        }
    }
}

/// Runs the backup: producer → zstd → hub. The result says whether the hub
/// stored a complete artifact.
pub async fn run(
    up: Option<Uploader>,
    command_id: &str,
    producer: Producer<'_>,
    sink: &mut Sink,
    cancel: &CancellationToken,
) -> Ended {
    let Some(up) = up else {
        return failed("the agent is not connected to a hub to upload to".into());
    };
    let path = twinbay_proto::backup::transfer_path(command_id);
    let mut ws = match open(&up, &path).await {
        Ok(ws) => ws,
        Err(e) => return failed(e),
    };
    let Some((program, args)) = producer.argv.split_first() else {
        return failed("empty argv".into());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(producer.cwd)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .envs(producer.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut end = TransferEnd {
        exit_code: None,
        error: None,
        stderr_tail: String::new(),
        sha256: String::new(),
        size: 0,
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            end.error = Some(format!("cannot start {program}: {e}"));
            return finish(ws, end, sink).await;
        }
    };
    let group = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32));
    let kill_group = || {
        if let Some(pgid) = group {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut encoder =
        match zstd::stream::write::Encoder::new(Vec::with_capacity(CHUNK_BYTES), LEVEL) {
            Ok(e) => e,
            Err(e) => {
                kill_group();
                end.error = Some(format!("zstd: {e}"));
                return finish(ws, end, sink).await;
            }
        };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    let mut out_buf = vec![0u8; READ_BYTES];
    let mut err_buf = vec![0u8; 8192];
    let deadline = tokio::time::sleep(producer.timeout);
    tokio::pin!(deadline);
    let mut exit: Option<std::io::Result<std::process::ExitStatus>> = None;
    let mut stop: Option<String> = None;
    let mut hub_gave_up: Option<String> = None;
    loop {
        if stdout.is_none() && stderr.is_none() && exit.is_some() {
            break;
        }
        if stop.is_some() {
            kill_group();
            break;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => stop = Some("cancelled".into()),
            _ = &mut deadline => stop = Some(format!(
                "killed with its process group after {}",
                humantime::format_duration(producer.timeout)
            )),
            status = child.wait(), if exit.is_none() => {
                exit = Some(status);
                // Leftovers in its group go with the producer.
                kill_group();
            }
            n = read(&mut stdout, &mut out_buf) => match n {
                Some(n) => {
                    if let Err(e) = encoder.write_all(&out_buf[..n]) {
                        stop = Some(format!("zstd: {e}"));
                        continue;
                    }
                    if encoder.get_ref().len() >= CHUNK_BYTES {
                        let chunk = std::mem::take(encoder.get_mut());
                        if let Err(e) = send_chunk(&mut ws, chunk, &mut hasher, &mut size).await {
                            stop = Some(e);
                        }
                        // The hub answers early only when it gives up (storage failed).
                        if let Some(reason) = early_failure(&mut ws) {
                            hub_gave_up = Some(reason.clone());
                            stop = Some(reason);
                        }
                    }
                }
                None => stdout = None,
            },
            n = read(&mut stderr, &mut err_buf) => match n {
                Some(n) => {
                    tail.extend_from_slice(&err_buf[..n]);
                    if tail.len() > STDERR_TAIL_BYTES * 2 {
                        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                    }
                    let _ = sink.bytes(Stream::Stderr, &err_buf[..n]).await;
                }
                None => stderr = None,
            },
        }
    }
    let _ = sink.finish().await;
    if tail.len() > STDERR_TAIL_BYTES {
        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
    }
    end.stderr_tail = String::from_utf8_lossy(&tail).into_owned();
    if let Some(why) = stop {
        let _ = child.wait().await;
        if why == "cancelled" {
            let _ = ws.close(None).await;
            return Ended {
                status: Status::Cancelled,
                exit_code: None,
                error: None,
            };
        }
        if let Some(reason) = hub_gave_up {
            let _ = ws.close(None).await;
            return failed(reason);
        }
        end.error = Some(why);
        return finish(ws, end, sink).await;
    }
    let exit = match exit {
        Some(e) => e,
        None => child.wait().await,
    };
    kill_group();
    end.exit_code = exit.as_ref().ok().and_then(|s| s.code());
    if end.exit_code == Some(0) {
        match encoder.finish() {
            Ok(rest) if !rest.is_empty() => {
                if let Err(e) = send_chunk(&mut ws, rest, &mut hasher, &mut size).await {
                    return failed(e);
                }
            }
            Ok(_) => {}
            Err(e) => end.error = Some(format!("zstd: {e}")),
        }
    }
    end.sha256 = hex::encode(hasher.finalize());
    end.size = size;
    finish(ws, end, sink).await
}

/// A `failed` answer the hub already sent (it gave up on the upload), if
/// one is waiting; never waits.
fn early_failure(ws: &mut Socket) -> Option<String> {
    use futures_util::FutureExt;
    match ws.next().now_or_never() {
        Some(Some(Ok(Message::Text(t)))) => match serde_json::from_str(t.as_str()) {
            Ok(TransferReply::Failed { reason }) => Some(reason),
            _ => None,
        },
        Some(None) | Some(Some(Ok(Message::Close(_)))) | Some(Some(Err(_))) => {
            Some("the hub closed the upload".into())
        }
        _ => None,
    }
}

async fn send_chunk(
    ws: &mut Socket,
    chunk: Vec<u8>,
    hasher: &mut Sha256,
    size: &mut u64,
) -> Result<(), String> {
    hasher.update(&chunk);
    *size += chunk.len() as u64;
    ws.send(Message::Binary(chunk.into()))
        .await
        .map_err(|e| format!("the upload to the hub broke: {e}"))
}

/// Sends the end frame and turns the hub's answer into the command's end.
async fn finish(mut ws: Socket, end: TransferEnd, sink: &mut Sink) -> Ended {
    let exit_code = end.exit_code;
    let text = serde_json::to_string(&end).expect("serializes");
    if let Err(e) = ws.send(Message::Text(text.into())).await {
        return Ended {
            status: Status::Failed,
            exit_code,
            error: Some(format!("the upload to the hub broke: {e}")),
        };
    }
    let reply = loop {
        let frame = match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
            Ok(f) => f,
            Err(_) => break Err("the hub did not confirm the upload".to_string()),
        };
        match frame {
            Some(Ok(Message::Text(t))) => {
                break serde_json::from_str::<TransferReply>(t.as_str())
                    .map_err(|e| format!("a bad answer from the hub: {e}"));
            }
            Some(Ok(Message::Close(_))) | None => {
                break Err("the hub closed the upload socket without an answer".into());
            }
            Some(Err(e)) => break Err(format!("the upload socket broke: {e}")),
            Some(Ok(_)) => {}
        }
    };
    let _ = ws.close(None).await;
    match reply {
        Ok(TransferReply::Stored {
            backup_id,
            sha256,
            size,
        }) => {
            let _ = sink
                .text(
                    Stream::Stdout,
                    &format!("stored backup {backup_id}: {size} bytes, sha256 {sha256}\n"),
                )
                .await;
            Ended {
                status: Status::Ok,
                exit_code,
                error: None,
            }
        }
        Ok(TransferReply::Failed { reason }) => Ended {
            status: Status::Failed,
            exit_code,
            error: Some(reason),
        },
        Err(e) => Ended {
            status: Status::Failed,
            exit_code,
            error: Some(e),
        },
    }
}

/// Restores: downloads the artifact from the hub, decompresses it and
/// writes it into the consumer's stdin (a full pipe holds the download back).
pub async fn restore(
    up: Option<Uploader>,
    command_id: &str,
    consumer: Producer<'_>,
    sink: &mut Sink,
    cancel: &CancellationToken,
) -> Ended {
    let Some(up) = up else {
        return failed("the agent is not connected to a hub to restore from".into());
    };
    let path = twinbay_proto::backup::restore_path(command_id);
    let mut ws = match open(&up, &path).await {
        Ok(ws) => ws,
        Err(e) => return failed(e),
    };
    let Some((program, args)) = consumer.argv.split_first() else {
        return failed("empty argv".into());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(consumer.cwd)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .envs(consumer.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start {program}: {e}")),
    };
    let group = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32));
    let kill_group = || {
        if let Some(pgid) = group {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    };
    let tail_of = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            let mut tail = Vec::new();
            if let Some(mut p) = pipe {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = p.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > STDERR_TAIL_BYTES * 2 {
                        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                    }
                }
            }
            if tail.len() > STDERR_TAIL_BYTES {
                tail.drain(..tail.len() - STDERR_TAIL_BYTES);
            }
            String::from_utf8_lossy(&tail).into_owned()
        })
    };
    let out_tail = tail_of(child.stdout.take().map(|p| Box::new(p) as _));
    let err_tail = tail_of(child.stderr.take().map(|p| Box::new(p) as _));
    let mut stdin = child.stdin.take();
    let mut decoder = match zstd::stream::write::Decoder::new(Vec::new()) {
        Ok(d) => d,
        Err(e) => {
            kill_group();
            return failed(format!("zstd: {e}"));
        }
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let deadline = tokio::time::sleep(consumer.timeout);
    tokio::pin!(deadline);
    let outcome: Result<twinbay_proto::backup::RestoreEnd, String> = loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => {
                kill_group();
                let _ = ws.close(None).await;
                return Ended { status: Status::Cancelled, exit_code: None, error: None };
            }
            _ = &mut deadline => break Err(format!(
                "killed with its process group after {}",
                humantime::format_duration(consumer.timeout)
            )),
            f = tokio::time::timeout(Duration::from_secs(300), ws.next()) => f,
        };
        match frame {
            Err(_) => break Err("the hub's download stalled".into()),
            Ok(Some(Ok(Message::Binary(data)))) => {
                hasher.update(&data);
                size += data.len() as u64;
                if let Err(e) = decoder.write_all(&data) {
                    break Err(format!("the artifact does not decompress: {e}"));
                }
                let out = std::mem::take(decoder.get_mut());
                if let Some(pipe) = stdin.as_mut()
                    && let Err(e) = tokio::io::AsyncWriteExt::write_all(pipe, &out).await
                {
                    break Err(format!("the consumer stopped reading: {e}"));
                }
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                break serde_json::from_str(t.as_str())
                    .map_err(|e| format!("a bad end frame from the hub: {e}"));
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                break Err("the hub closed the download before its end".into());
            }
            Ok(Some(Err(e))) => break Err(format!("the download broke: {e}")),
            Ok(Some(Ok(_))) => {}
        }
    };
    let _ = ws.close(None).await;
    let mut error = outcome.as_ref().err().cloned();
    if error.is_none() {
        match decoder.flush() {
            Ok(()) => {
                let out = std::mem::take(decoder.get_mut());
                if let Some(pipe) = stdin.as_mut()
                    && let Err(e) = tokio::io::AsyncWriteExt::write_all(pipe, &out).await
                {
                    error = Some(format!("the consumer stopped reading: {e}"));
                }
            }
            Err(e) => error = Some(format!("the artifact does not decompress: {e}")),
        }
    }
    drop(stdin);
    if error.is_some() {
        kill_group();
    }
    let exit = tokio::select! {
        e = child.wait() => e.ok(),
        _ = &mut deadline => {
            kill_group();
            error.get_or_insert_with(|| "the consumer did not finish in time".into());
            child.wait().await.ok()
        }
    };
    kill_group();
    let exit_code = exit.and_then(|s| s.code());
    let out = out_tail.await.unwrap_or_default();
    let err = err_tail.await.unwrap_or_default();
    let _ = sink.text(Stream::Stdout, &out).await;
    let _ = sink.text(Stream::Stderr, &err).await;
    let _ = sink.finish().await;
    let sha256 = hex::encode(hasher.finalize());
    if error.is_none()
        && let Ok(end) = &outcome
        && (end.sha256 != sha256 || end.size != size)
    {
        error = Some(format!(
            "the download was damaged: {size} bytes (sha256 {sha256}), the hub sent {} (sha256 {})",
            end.size, end.sha256
        ));
    }
    let tail = err.trim();
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
    match (error, exit_code) {
        (Some(e), code) => Ended {
            status: Status::Failed,
            exit_code: code,
            error: Some(format!("{e}{tail}")),
        },
        (None, Some(0)) => Ended {
            status: Status::Ok,
            exit_code: Some(0),
            error: None,
        },
        (None, Some(code)) => Ended {
            status: Status::Failed,
            exit_code: Some(code),
            error: Some(format!("the consumer exited with code {code}{tail}")),
        },
        (None, None) => Ended {
            status: Status::Failed,
            exit_code: None,
            error: Some(format!("the consumer was killed{tail}")),
        },
    }
}

async fn read(
    pipe: &mut Option<impl tokio::io::AsyncRead + Unpin>,
    buf: &mut [u8],
) -> Option<usize> {
    match pipe {
        Some(p) => match p.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_takes_the_resolved_directory_and_excludes() {
        assert_eq!(
            tar_argv("/srv/data", &["*.tmp".into(), "cache".into()]),
            [
                "tar",
                "--create",
                "--file=-",
                "--directory=/srv/data",
                "--exclude=*.tmp",
                "--exclude=cache",
                "."
            ]
        );
    }
}
