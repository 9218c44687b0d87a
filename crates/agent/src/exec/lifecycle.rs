//! The lifecycle verbs: containers over the Engine API, units over systemd's
//! D-Bus API (and `journalctl` for their logs), and the agent itself.

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    LogsOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::{Status, Stream, Target, TargetKind, Verb};
use zbus::OwnedObjectPath;

use super::output::{Gone, Sink};
use super::process::{self, Ended};
use crate::sources::{containers, units};

/// Seconds a container gets to stop before it is killed.
const STOP_GRACE_SECS: i32 = 10;
const API_TIMEOUT_SECS: u64 = 60;
/// How long a systemd job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);
pub const DEFAULT_LOG_LINES: u32 = 100;

pub struct Request<'a> {
    pub target: &'a Target,
    pub verb: Verb,
    pub lines: Option<u32>,
    pub follow: bool,
}

fn ok() -> Ended {
    Ended {
        status: Status::Ok,
        exit_code: Some(0),
        error: None,
    }
}

fn failed(error: String) -> Ended {
    Ended {
        status: Status::Failed,
        exit_code: None,
        error: Some(error),
    }
}

/// Turns "the sink is gone" into a cancelled ending.
fn settle(result: Result<Ended, Gone>) -> Ended {
    result.unwrap_or(Ended {
        status: Status::Cancelled,
        exit_code: None,
        error: None,
    })
}

/// A client for the host's Docker or Podman Engine API (the socket the
/// agent was given, else the usual places).
pub(super) fn engine(socket: Option<&str>) -> Result<Docker, String> {
    let candidates = containers::candidate_sockets(
        socket,
        std::env::var("DOCKER_HOST").ok().as_deref(),
        std::env::var("XDG_RUNTIME_DIR").ok().as_deref(),
    );
    let Some(path) = candidates.iter().find(|p| p.exists()) else {
        return Err("no Docker or Podman socket on this host".into());
    };
    Docker::connect_with_unix(
        &path.to_string_lossy(),
        API_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

pub async fn container(
    socket: Option<&str>,
    req: Request<'_>,
    sink: &mut Sink,
    cancel: &CancellationToken,
) -> Ended {
    let docker = match engine(socket) {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let name = req.target.name.as_str();
    let api_err = |e: bollard::errors::Error| match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => failed(format!("no container {name:?} on this host")),
        bollard::errors::Error::DockerResponseServerError { message, .. } => failed(message),
        e => failed(e.to_string()),
    };
    let result = async {
        Ok(match req.verb {
            Verb::Update => failed("update is only for the agent".into()),
            Verb::Status | Verb::Version => match docker.inspect_container(name, None).await {
                Ok(inspect) => {
                    let Some(c) = containers::from_inspect(&inspect) else {
                        return Ok(failed("the engine returned no id".into()));
                    };
                    let text = if req.verb == Verb::Status {
                        let mut t = format!("{}: {}", c.name, c.state);
                        if let Some(h) = &c.health {
                            t.push_str(&format!(" ({h})"));
                        }
                        if let Some(code) = c.exit_code.filter(|_| c.state != "running") {
                            t.push_str(&format!(", exit code {code}"));
                        }
                        t.push_str(&format!("\nid: {}\nimage: {}\n", c.id, c.image));
                        if let Some(s) = &c.started_at {
                            t.push_str(&format!("started: {s}\n"));
                        }
                        t.push_str(&format!("restarts: {}\n", c.restart_count));
                        t
                    } else {
                        format!(
                            "image: {}\nimage id: {}\n",
                            c.image,
                            inspect.image.as_deref().unwrap_or("-")
                        )
                    };
                    sink.text(Stream::Stdout, &text).await?;
                    ok()
                }
                Err(e) => api_err(e),
            },
            Verb::Start => match docker.start_container(name, None).await {
                Ok(()) => {
                    sink.text(Stream::Stdout, &format!("started {name}\n"))
                        .await?;
                    ok()
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => {
                    sink.text(Stream::Stdout, &format!("{name} is already running\n"))
                        .await?;
                    ok()
                }
                Err(e) => api_err(e),
            },
            Verb::Stop => {
                let options = StopContainerOptionsBuilder::default()
                    .t(STOP_GRACE_SECS)
                    .build();
                match docker.stop_container(name, Some(options)).await {
                    Ok(()) => {
                        sink.text(Stream::Stdout, &format!("stopped {name}\n"))
                            .await?;
                        ok()
                    }
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 304,
                        ..
                    }) => {
                        sink.text(Stream::Stdout, &format!("{name} was not running\n"))
                            .await?;
                        ok()
                    }
                    Err(e) => api_err(e),
                }
            }
            Verb::Restart => {
                let options = RestartContainerOptionsBuilder::default()
                    .t(STOP_GRACE_SECS)
                    .build();
                match docker.restart_container(name, Some(options)).await {
                    Ok(()) => {
                        sink.text(Stream::Stdout, &format!("restarted {name}\n"))
                            .await?;
                        ok()
                    }
                    Err(e) => api_err(e),
                }
            }
            Verb::Logs => {
                let lines = req.lines.unwrap_or(DEFAULT_LOG_LINES).to_string();
                let options = LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .follow(req.follow)
                    .tail(&lines)
                    .build();
                let mut logs = docker.logs(name, Some(options));
                loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => return Err(Gone),
                        next = logs.next() => next,
                    };
                    match next {
                        None => break ok(),
                        Some(Ok(LogOutput::StdErr { message })) => {
                            sink.bytes(Stream::Stderr, &message).await?
                        }
                        Some(Ok(
                            LogOutput::StdOut { message } | LogOutput::Console { message },
                        )) => sink.bytes(Stream::Stdout, &message).await?,
                        Some(Ok(LogOutput::StdIn { .. })) => {}
                        Some(Err(e)) => break api_err(e),
                    }
                }
            }
        })
    }
    .await;
    settle(result)
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Control {
    fn subscribe(&self) -> zbus::Result<()>;
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

pub async fn unit(req: Request<'_>, sink: &mut Sink, cancel: &CancellationToken) -> Ended {
    let user = req.target.kind == TargetKind::UserUnit;
    let name = req.target.name.as_str();
    if req.verb == Verb::Logs {
        let lines = req.lines.unwrap_or(DEFAULT_LOG_LINES).to_string();
        let mut argv: Vec<String> = ["journalctl", "--no-pager", "-o", "short-iso", "-n"]
            .map(String::from)
            .to_vec();
        argv.push(lines);
        argv.push(if user { "--user-unit" } else { "--unit" }.into());
        argv.push(name.to_string());
        if req.follow {
            argv.push("--follow".into());
        }
        let spec = process::Spec {
            argv: &argv,
            cwd: std::path::Path::new("/"),
            env: &Default::default(),
            timeout: (!req.follow).then_some(Duration::from_secs(60)),
        };
        return process::run(spec, sink, cancel).await;
    }
    let bus = if user {
        units::Bus::User
    } else {
        units::Bus::System
    };
    let result = async {
        let conn = bus
            .connect()
            .await
            .map_err(|e| format!("cannot reach systemd: {e}"))?;
        let manager = ControlProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        let text = match req.verb {
            Verb::Version => format!(
                "systemd {}\n",
                manager.version().await.map_err(|e| e.to_string())?
            ),
            Verb::Status => {
                let path = manager
                    .get_unit(name)
                    .await
                    .map_err(|e| format!("{name}: {}", dbus_reason(&e)))?;
                let u = units::read_unit(&conn, &path, user)
                    .await
                    .ok_or_else(|| format!("{name} vanished"))?;
                let mut t = format!(
                    "{}: {} ({}), {}\n",
                    u.name, u.active_state, u.sub_state, u.load_state
                );
                if !u.description.is_empty() {
                    t.push_str(&format!("description: {}\n", u.description));
                }
                if let Some(pid) = u.main_pid {
                    t.push_str(&format!("main pid: {pid}\n"));
                }
                if let Some(m) = u.memory_bytes {
                    t.push_str(&format!("memory: {m} bytes\n"));
                }
                t
            }
            Verb::Start | Verb::Stop | Verb::Restart => {
                manager.subscribe().await.map_err(|e| e.to_string())?;
                let mut removed = manager
                    .receive_job_removed()
                    .await
                    .map_err(|e| e.to_string())?;
                let job = match req.verb {
                    Verb::Start => manager.start_unit(name, "replace").await,
                    Verb::Stop => manager.stop_unit(name, "replace").await,
                    _ => manager.restart_unit(name, "replace").await,
                }
                .map_err(|e| format!("{name}: {}", dbus_reason(&e)))?;
                let wait = async {
                    while let Some(signal) = removed.next().await {
                        let Ok(args) = signal.args() else { continue };
                        if args.job == job {
                            return Ok(args.result.clone());
                        }
                    }
                    Err("systemd went away".to_string())
                };
                let result = tokio::select! {
                    _ = cancel.cancelled() => return Ok(None),
                    r = tokio::time::timeout(JOB_TIMEOUT, wait) => r.map_err(|_| format!("the job did not finish in {}s", JOB_TIMEOUT.as_secs()))??,
                };
                if result != "done" {
                    return Err(format!("{} {name}: the job ended with {result:?}", req.verb.as_str()));
                }
                let past = match req.verb {
                    Verb::Start => "started",
                    Verb::Stop => "stopped",
                    _ => "restarted",
                };
                format!("{past} {name}\n")
            }
            Verb::Logs => unreachable!("handled above"),
            Verb::Update => return Err("update is only for the agent".into()),
        };
        Ok::<_, String>(Some(text))
    }
    .await;
    match result {
        Ok(Some(text)) => settle(sink.text(Stream::Stdout, &text).await.map(|()| ok())),
        Ok(None) => settle(Err(Gone)),
        Err(e) => failed(e),
    }
}

/// systemd's own words for a D-Bus error, without zbus's wrapping.
fn dbus_reason(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(text), _) => format!("{text} ({})", name.as_str()),
        e => e.to_string(),
    }
}
