//! Bringing up an agent on a host over SSH, step by step.
//!
//! `connect` (done by the API before the job starts: host key checked and
//! pinned, key accepted) → `arch` (`uname -m`, the home directory, no agent
//! there yet) → `copy` (the release for that arch, else the running binary
//! when the arch matches, streamed into a temporary file whose size and
//! SHA-256 the host checks before renaming it; a copy cut short removes its
//! own partial file) → `token` (a one-time join token) → `install` (the copy
//! runs `twinbay agent install` with the join string on its standard input,
//! which writes the user unit and starts it with `systemctl --user`) →
//! `start` (only when no user manager is reachable: the agent is started
//! detached with `setsid`, its pid in the state dir) → `enroll` (until the
//! node enrolled with that token is connected).
//!
//! A failure undoes what was done on the host (unit stopped and removed,
//! agent stopped, binaries, state dir and temporary files removed) and
//! names the failed step.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::hosts::{Install, Step, StepState};
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::store::Principal;
use crate::store::now_ms;

/// How long the enrolled agent has to connect.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(90);
const SHORT: Duration = Duration::from_secs(30);
const OUT: usize = 64 * 1024;

/// Where things go on the host (all under the login's home).
#[derive(Debug, Clone)]
struct Paths {
    part: String,
    staged: String,
    join_file: String,
    state_dir: String,
    bin_dir: String,
    unit_dir: String,
}

impl Paths {
    fn under(home: &str, job: &str) -> Paths {
        let home = home.trim_end_matches('/');
        Paths {
            part: format!("{home}/.twinbay-{job}.part"),
            staged: format!("{home}/.twinbay-{job}"),
            join_file: format!("{home}/.twinbay-{job}.join"),
            state_dir: format!("{home}/.local/state/twinbay-agent"),
            bin_dir: format!("{home}/.local/share/twinbay/bin"),
            unit_dir: format!("{home}/.config/systemd/user"),
        }
    }
}

/// The copy: the part file filled from standard input, checked, renamed.
const COPY_SCRIPT: &str = r#"umask 077
trap 'rm -f "$1"; exit 1' HUP INT TERM PIPE
head -c "$2" > "$1" &&
[ "$(wc -c < "$1" | tr -d ' ')" = "$2" ] &&
[ "$(sha256sum "$1" | cut -d ' ' -f 1)" = "$3" ] &&
chmod 700 "$1" && mv -f "$1" "$4" || { rm -f "$1"; exit 1; }"#;

/// The install: join string from standard input into a 0600 file for
/// `--join-file`, removed whatever happens.
const INSTALL_SCRIPT: &str = r#"umask 077
cat > "$1" || exit 1
"$2" agent install --join-file "$1" --state-dir "$3" --bin-dir "$4" --unit-dir "$5"
rc=$?
rm -f "$1" "$2"
exit $rc"#;

/// The fallback start: detached, in its own session, its pid kept.
const START_SCRIPT: &str = r#"cd / || exit 1
setsid "$1" agent --state-dir "$2" < /dev/null >> "$2/agent.log" 2>&1 &
echo $! > "$2/agent.pid"
echo $!"#;

/// Undo: everything an install may have left.
const UNDO_SCRIPT: &str = r#"systemctl --user disable --now twinbay-agent.service > /dev/null 2>&1
if [ -f "$1/agent.pid" ]; then kill "$(cat "$1/agent.pid")" 2> /dev/null; fi
rm -f "$3/twinbay-agent.service" "$2/twinbay" "$2/twinbay-agent" "$4" "$5" "$6"
rm -rf "$1"
systemctl --user daemon-reload > /dev/null 2>&1
true"#;

fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    argv.push("twinbay".into());
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// The arch names of `uname -m` that releases call otherwise.
pub fn release_arch(uname: &str) -> String {
    match uname.trim() {
        "amd64" => "x86_64".into(),
        "arm64" | "armv8l" => "aarch64".into(),
        other => other.to_string(),
    }
}

struct Job<'a> {
    hub: &'a Arc<HubState>,
    host_id: String,
    actor: Principal,
}

impl Job<'_> {
    async fn progress(&self, f: impl FnOnce(&mut Install)) {
        let r = self
            .hub
            .ssh
            .update(&self.hub.store, &self.host_id, |h| {
                f(h.install.get_or_insert_with(Install::new))
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(host = self.host_id, error = %crate::report(&e), "cannot record install progress");
        }
    }

    async fn begin(&self, name: &str, detail: &str) {
        let step = Step {
            name: name.into(),
            state: StepState::Running,
            detail: detail.into(),
            started_ms: now_ms(),
            ended_ms: None,
        };
        self.progress(|i| i.steps.push(step)).await;
    }

    async fn end(&self, state: StepState, detail: &str) {
        self.progress(|i| {
            if let Some(s) = i.steps.last_mut() {
                s.state = state;
                s.detail = detail.into();
                s.ended_ms = Some(now_ms());
            }
        })
        .await;
    }

    async fn exec(
        &self,
        argv: Vec<String>,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<super::ExecOutput, String> {
        let out = self
            .hub
            .ssh
            .pool
            .exec_with_input(&self.host_id, &argv, input, timeout, OUT)
            .await
            .map_err(|e| e.to_string())?;
        if out.success() {
            Ok(out)
        } else {
            Err(out.error_line())
        }
    }
}

/// Runs the installation on host `host_id` (its record exists and its key
/// is pinned; `connect` is recorded already). Ends with the record's
/// install `done` or `failed`, audited either way.
pub async fn run(hub: Arc<HubState>, host_id: String, actor: Principal, cancel: CancellationToken) {
    let job = Job {
        hub: &hub,
        host_id: host_id.clone(),
        actor,
    };
    let mut paths = None;
    let result = tokio::select! {
        r = steps(&job, &mut paths) => r,
        () = cancel.cancelled() => Err("the hub is stopping".to_string()),
    };
    let (outcome, detail) = match result {
        Ok(node) => {
            job.progress(|i| i.state = StepState::Done).await;
            let _ = hub
                .ssh
                .update(&hub.store, &host_id, |h| h.node_id = Some(node.clone()))
                .await;
            (Outcome::Ok, format!("agent enrolled as node {node}"))
        }
        Err(why) => {
            job.end(StepState::Failed, &why).await;
            let step = hub
                .ssh
                .host(&hub.store, &host_id)
                .await
                .ok()
                .flatten()
                .and_then(|h| h.install)
                .and_then(|i| i.steps.last().map(|s| s.name.clone()))
                .unwrap_or_default();
            let undo = match &paths {
                None => "nothing to undo".to_string(),
                Some(p) => undo(&job, p).await,
            };
            let error = format!("{step} failed: {why}");
            let (e2, u2) = (error.clone(), undo.clone());
            job.progress(move |i| {
                i.state = StepState::Failed;
                i.error = Some(e2);
                i.undo = Some(u2);
            })
            .await;
            (Outcome::Failed, format!("{error}; undo: {undo}"))
        }
    };
    if let Err(e) = hub
        .store
        .audit(
            Record::by(&job.actor, "ssh_host.install", outcome)
                .target(&format!("ssh:{host_id}"))
                .detail(&detail),
        )
        .await
    {
        tracing::error!(error = %crate::report(&e), "cannot audit an SSH install");
    }
}

async fn undo(job: &Job<'_>, p: &Paths) -> String {
    // A fresh connection: the old one may be what failed.
    job.hub.ssh.pool.disconnect(&job.host_id).await;
    let argv = sh(
        UNDO_SCRIPT,
        &[
            &p.state_dir,
            &p.bin_dir,
            &p.unit_dir,
            &p.part,
            &p.staged,
            &p.join_file,
        ],
    );
    match job.exec(argv, None, SHORT).await {
        Ok(_) => "unit, agent, binaries and state dir removed".into(),
        Err(e) => {
            format!("could not reach the host ({e}); a copy cut short removes its own partial file")
        }
    }
}

async fn steps(job: &Job<'_>, paths: &mut Option<Paths>) -> Result<String, String> {
    let hub = job.hub;
    let id: String = {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| e.to_string())?;
        hex::encode(b)
    };

    job.begin("arch", "uname -m").await;
    let uname = job
        .exec(vec!["uname".into(), "-m".into()], None, SHORT)
        .await?;
    let arch = release_arch(&String::from_utf8_lossy(&uname.stdout));
    let home = job
        .exec(vec!["printenv".into(), "HOME".into()], None, SHORT)
        .await?;
    let home = String::from_utf8_lossy(&home.stdout).trim().to_string();
    if !home.starts_with('/') {
        return Err(format!("the login has no usable HOME ({home:?})"));
    }
    let p = Paths::under(&home, &id);
    let exists = job
        .hub
        .ssh
        .pool
        .exec(
            &job.host_id,
            &["test".into(), "-e".into(), p.state_dir.clone()],
            SHORT,
            OUT,
        )
        .await
        .map_err(|e| e.to_string())?;
    if exists.success() {
        return Err(format!(
            "an agent is installed already ({} exists); remove it first",
            p.state_dir
        ));
    }
    job.end(StepState::Done, &format!("{arch}, home {home}"))
        .await;
    *paths = Some(p.clone());

    job.begin("copy", "choosing the agent binary").await;
    let (file, sha, size, from) = binary_for(hub, &arch).await?;
    job.end(
        StepState::Running,
        &format!("copying {from} ({size} bytes) to {}", p.staged),
    )
    .await;
    let reader = tokio::fs::File::open(&file)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let timeout = Duration::from_secs(60 + size / (4 << 20));
    let argv = sh(COPY_SCRIPT, &[&p.part, &size.to_string(), &sha, &p.staged]);
    let started = std::time::Instant::now();
    let out = hub
        .ssh
        .pool
        .exec_with_input(&job.host_id, &argv, Some(reader), timeout, OUT)
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "the copy did not arrive whole ({})",
            out.error_line()
        ));
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    job.end(
        StepState::Done,
        &format!(
            "{from}: {size} bytes in {secs:.1}s ({:.0} MB/s), SHA-256 checked on the host",
            size as f64 / secs / 1e6
        ),
    )
    .await;

    job.begin("token", "a one-time join token").await;
    let token = hub
        .store
        .create_join_token(Duration::from_secs(15 * 60))
        .await
        .map_err(|e| crate::report(&e))?;
    let join = join_string(hub, &token).await?;
    job.end(StepState::Done, "valid for 15 minutes, for this host only")
        .await;

    job.begin("install", "twinbay agent install").await;
    let argv = sh(
        INSTALL_SCRIPT,
        &[
            &p.join_file,
            &p.staged,
            &p.state_dir,
            &p.bin_dir,
            &p.unit_dir,
        ],
    );
    let out = job
        .exec(argv, Some(join.as_bytes()), Duration::from_secs(120))
        .await?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let started_by_systemd = said.contains("enabled and started");
    job.end(
        StepState::Done,
        &if started_by_systemd {
            format!(
                "unit {}/twinbay-agent.service enabled and started",
                p.unit_dir
            )
        } else {
            format!("unit written to {}/twinbay-agent.service", p.unit_dir)
        },
    )
    .await;

    if !started_by_systemd {
        job.begin(
            "start",
            "no systemd user manager reachable: starting the agent with setsid",
        )
        .await;
        let argv = sh(
            START_SCRIPT,
            &[&format!("{}/twinbay", p.bin_dir), &p.state_dir],
        );
        let out = job.exec(argv, None, SHORT).await?;
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        job.end(
            StepState::Done,
            &format!(
                "no systemd user manager reachable: agent started detached (setsid, pid {pid}); it will not start again at boot until the user unit is enabled"
            ),
        )
        .await;
    }

    job.begin("enroll", "waiting for the agent to enroll and connect")
        .await;
    let deadline = tokio::time::Instant::now() + ENROLL_TIMEOUT;
    loop {
        if let Some(node) = hub
            .store
            .node_by_join_token(&token)
            .await
            .map_err(|e| crate::report(&e))?
        {
            let connected = hub.twin.read(&node, |n| n.connected).unwrap_or(false);
            if connected {
                job.end(
                    StepState::Done,
                    &format!("enrolled as node {node}, connected"),
                )
                .await;
                return Ok(node);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the agent did not enroll and connect within {}s (its log: {}/agent.log or journalctl --user -u twinbay-agent)",
                ENROLL_TIMEOUT.as_secs(),
                p.state_dir
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The agent binary for `arch`: the newest release for it, else the
/// running binary when it is built for that arch. (path, sha256, size, what)
async fn binary_for(hub: &HubState, arch: &str) -> Result<(PathBuf, String, u64, String), String> {
    if let Ok(list) = hub.releases.list().await
        && let Some(m) = list.iter().find(|m| m.arch == arch)
        && let Some((path, m)) = hub.releases.binary(&m.version, arch).await
    {
        return Ok((
            path,
            m.sha256,
            m.size,
            format!("release {} ({arch})", m.version),
        ));
    }
    if arch != std::env::consts::ARCH {
        return Err(format!(
            "no agent binary for {arch}: publish a release for it (`twinbay ctl release publish --arch {arch}`)"
        ));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the running binary: {e}"))?;
    let path = exe.clone();
    let (sha, size) = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        Ok((hex::encode(h.finalize()), size))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{}: {e}", exe.display()))?;
    Ok((exe, sha, size, format!("the hub's own binary ({arch})")))
}

async fn join_string(hub: &HubState, token: &str) -> Result<String, String> {
    use crate::store::settings;
    let get = |k| async move { hub.store.setting(k).await.map_err(|e| crate::report(&e)) };
    // This replica's own URL first (the shared setting is the last
    // replica to start's).
    let own = hub.replicas.as_ref().map(|r| r.public_url());
    let url = match own.filter(|u| !u.is_empty()) {
        Some(url) => url,
        None => get(settings::PUBLIC_URL)
            .await?
            .ok_or("the hub has no public URL")?,
    };
    let fp = get(settings::TLS_FINGERPRINT)
        .await?
        .ok_or("the hub has no certificate fingerprint")?;
    let more = get(settings::HUB_URLS).await?.unwrap_or_default();
    Ok(twinbay_proto::join::JoinString {
        more_hubs: crate::admin::other_hubs(&more, &url),
        hub: url,
        token: token.to_string(),
        fp,
        update_keys: hub.releases.keys().names().map(String::from).collect(),
    }
    .encode())
}
