//! How a command reaches a host: the [`Runner`] trait (the SSH pool in
//! production; [`LocalRunner`] runs argv on this machine, for tests and
//! the bench).

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; `None` when it ended by a signal.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub duration: Duration,
}

/// Why a command did not run to an exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The host cannot be reached (connection refused, authentication, DNS…).
    #[error("host unreachable: {0}")]
    Unreachable(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("printed more than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Failed(String),
}

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<ExecOutput, RunError>> + Send + 'a>>;

/// Runs one argv on one host. Implementations quote each element for the
/// remote shell; none may join them into a script.
pub trait Runner: Send + Sync + 'static {
    fn run<'a>(&'a self, argv: &'a [String], timeout: Duration, max_output: usize)
    -> RunFuture<'a>;
}

/// Runs argv as a local process (no shell). A missing program answers as
/// a shell would: status 127.
#[derive(Debug, Default, Clone)]
pub struct LocalRunner;

impl Runner for LocalRunner {
    fn run<'a>(
        &'a self,
        argv: &'a [String],
        timeout: Duration,
        max_output: usize,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| RunError::Failed("empty argv".into()))?;
            let mut child = match tokio::process::Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(ExecOutput {
                        status: Some(127),
                        stdout: Vec::new(),
                        stderr: format!("{program}: not found").into_bytes(),
                        duration: started.elapsed(),
                    });
                }
                Err(e) => return Err(RunError::Failed(format!("cannot start {program}: {e}"))),
            };
            let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
                return Err(RunError::Failed("no pipes".into()));
            };
            let work = async {
                let (out, err) =
                    tokio::join!(capped(stdout, max_output), capped(stderr, max_output));
                let status = child
                    .wait()
                    .await
                    .map_err(|e| RunError::Failed(e.to_string()))?;
                Ok::<_, RunError>((out?, err?, status))
            };
            // On a timeout the child is dropped, and killed with it.
            let (stdout, stderr, status) = tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| RunError::Timeout(timeout))??;
            Ok(ExecOutput {
                status: status.code().map(|c| c as u32),
                stdout,
                stderr,
                duration: started.elapsed(),
            })
        })
    }
}

/// Reads all of `r`, failing past `max` bytes.
async fn capped(r: impl AsyncRead + Unpin, max: usize) -> Result<Vec<u8>, RunError> {
    let mut buf = Vec::new();
    r.take(max as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| RunError::Failed(e.to_string()))?;
    if buf.len() > max {
        return Err(RunError::TooLarge(max));
    }
    Ok(buf)
}
