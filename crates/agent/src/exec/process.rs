//! Running an argv: no shell, its own process group, a deadline, and output
//! streamed through a [`Sink`].
//!
//! The child leads a new process group, so a timeout or a cancel kills it
//! and everything it started (`kill(-pgid, SIGKILL)`). When the child itself
//! exits, whatever it left behind in its group is killed too, as systemd's
//! `KillMode=control-group` does, so nothing outlives its command.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::{Status, Stream};

use super::output::Sink;

/// The PATH a command sees; the rest of the agent's environment is not passed on.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

pub struct Spec<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    /// `None`: until cancelled (`logs -f`).
    pub timeout: Option<Duration>,
}

pub async fn run(spec: Spec<'_>, sink: &mut Sink, cancel: &CancellationToken) -> Ended {
    let failed = |error: String| Ended {
        status: Status::Failed,
        exit_code: None,
        error: Some(error),
    };
    let Some((program, args)) = spec.argv.split_first() else {
        return failed("empty argv".into());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(spec.cwd)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start {program}: {e}")),
    };
    let group = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32));
    let kill_group = || {
        if let Some(pgid) = group {
            // ESRCH (the group is already gone) is fine.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; 8192];
    let mut err_buf = vec![0u8; 8192];
    let deadline = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut exit: Option<std::io::Result<std::process::ExitStatus>> = None;
    let mut ending: Option<Status> = None;
    // After the child exits, its pipes get a moment to drain.
    let drain = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(drain);
    loop {
        if stdout.is_none() && stderr.is_none() && (exit.is_some() || ending.is_some()) {
            break;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled(), if ending.is_none() => {
                kill_group();
                ending = Some(Status::Cancelled);
            }
            _ = &mut deadline, if ending.is_none() => {
                kill_group();
                ending = Some(Status::TimedOut);
            }
            status = child.wait(), if exit.is_none() => {
                exit = Some(status);
                // Leftovers in the group go with their parent.
                kill_group();
                drain.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(1));
            }
            _ = &mut drain => break,
            n = read(&mut stdout, &mut out_buf) => match n {
                Some(n) => if sink.bytes(Stream::Stdout, &out_buf[..n]).await.is_err() {
                    kill_group();
                    ending.get_or_insert(Status::Cancelled);
                    stdout = None;
                    stderr = None;
                },
                None => stdout = None,
            },
            n = read(&mut stderr, &mut err_buf) => match n {
                Some(n) => if sink.bytes(Stream::Stderr, &err_buf[..n]).await.is_err() {
                    kill_group();
                    ending.get_or_insert(Status::Cancelled);
                    stdout = None;
                    stderr = None;
                },
                None => stderr = None,
            },
        }
    }
    let _ = sink.finish().await;
    let exit = match exit {
        Some(e) => e,
        None => child.wait().await,
    };
    let exit_code = exit.as_ref().ok().and_then(|s| s.code());
    match ending {
        Some(Status::TimedOut) => Ended {
            status: Status::TimedOut,
            exit_code,
            error: Some(format!(
                "killed with its process group after {}",
                humantime::format_duration(spec.timeout.unwrap_or_default())
            )),
        },
        Some(status) => Ended {
            status,
            exit_code,
            error: None,
        },
        None => match exit {
            Ok(s) if s.success() => Ended {
                status: Status::Ok,
                exit_code: Some(0),
                error: None,
            },
            Ok(s) => Ended {
                status: Status::Failed,
                exit_code: s.code(),
                error: s.code().is_none().then(|| {
                    use std::os::unix::process::ExitStatusExt;
                    format!("killed by signal {}", s.signal().unwrap_or(0))
                }),
            },
            Err(e) => failed(format!("waiting for {program}: {e}")),
        },
    }
}

/// The next read from a pipe, or `None` at its end; pends forever for a closed pipe.
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
    use crate::exec::output::Event;
    use tokio::sync::mpsc;

    async fn run_sh(script: &str, timeout: Duration, cap: u64) -> (Ended, String, bool) {
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let mut sink = Sink::new("t", tx, cancel.clone(), cap);
        let argv = ["sh".to_string(), "-c".into(), script.into()];
        let collector = tokio::spawn(async move {
            let mut out = String::new();
            while let Some(Event::Output(c)) = rx.recv().await {
                out.push_str(&c.data);
            }
            out
        });
        let ended = run(
            Spec {
                argv: &argv,
                cwd: Path::new("/"),
                env: &BTreeMap::new(),
                timeout: Some(timeout),
            },
            &mut sink,
            &cancel,
        )
        .await;
        let truncated = sink.truncated();
        drop(sink);
        (ended, collector.await.unwrap(), truncated)
    }

    #[tokio::test]
    async fn reports_output_and_exit_code() {
        let (ended, out, _) = run_sh(
            "echo hi; echo oops >&2; exit 3",
            Duration::from_secs(10),
            1 << 20,
        )
        .await;
        assert_eq!(ended.status, Status::Failed);
        assert_eq!(ended.exit_code, Some(3));
        assert!(out.contains("hi\n") && out.contains("oops\n"), "{out}");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let marker = std::env::temp_dir().join(format!("twinbay-pg-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        // The grandchild would write the marker after 3 s if it survived.
        let script = format!("(sleep 3; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let (ended, _, _) = run_sh(&script, Duration::from_millis(500), 1 << 20).await;
        assert_eq!(ended.status, Status::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            !marker.exists(),
            "a process of the group outlived the timeout"
        );
    }

    #[tokio::test]
    async fn output_past_the_cap_is_cut_and_the_process_still_finishes() {
        let (ended, out, truncated) = run_sh(
            "yes | head -c 100000; echo done >&2",
            Duration::from_secs(10),
            1000,
        )
        .await;
        assert_eq!(ended.status, Status::Ok);
        assert!(truncated);
        assert!(out.len() < 1200, "{}", out.len());
        assert!(out.contains("[twinbay: output truncated at 1000 bytes"));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_failure() {
        let (tx, _rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let mut sink = Sink::new("t", tx, cancel.clone(), 100);
        let argv = ["/nonexistent/tool".to_string()];
        let ended = run(
            Spec {
                argv: &argv,
                cwd: Path::new("/"),
                env: &BTreeMap::new(),
                timeout: None,
            },
            &mut sink,
            &cancel,
        )
        .await;
        assert_eq!(ended.status, Status::Failed);
        assert!(
            ended
                .error
                .unwrap()
                .contains("cannot start /nonexistent/tool")
        );
    }
}
