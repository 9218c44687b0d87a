//! The hub's own lifecycle (docs/updates.md, "The hub's update"): what it
//! runs as, its recent log lines, `restart`, and `update` to a signed
//! release from its own releases dir with a trial and a rollback.
//!
//! An update is checked and swapped in while the hub still serves (so a bad
//! release is refused with nothing changed): the release's bytes are read
//! once, hashed and verified against the hub's trusted keys as they are
//! copied beside the executable, the running binary is kept as `NAME.prev`
//! and the copy is renamed over `NAME`. A trial record goes into
//! `DATA_DIR/hub-update.json`, then the hub stops serving. The binary's
//! `main` (`twinbay hub`) takes the [`Action`] and calls [`run_trial`]: the
//! new binary runs as a child with the same arguments and [`TRIAL_ENV`]
//! until it serves `/healthz` on the same address, within the health
//! window. Healthy: the child is stopped and this process execs the new
//! binary (same pid). Not: the child is killed, `NAME.prev` is renamed
//! back, and the old binary is exec'd. Either way the outcome waits in the
//! record until the next hub's start audits it ([`report_outcome`]).
//!
//! A hub killed during its trial (SIGKILL, power) leaves the record
//! unfinished: the next start finds it with no process behind it, rolls
//! back ([`recover_interrupted`]) and reports "interrupted".

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use twinbay_proto::release::{self, MAX_RELEASE_BYTES, TrustedKeys};

/// Set in the trial child's environment (to the parent's pid).
pub const TRIAL_ENV: &str = "TWINBAY_HUB_UPDATE_TRIAL";
pub const DEFAULT_HEALTH_WINDOW: Duration = Duration::from_secs(60);
const STATE_FILE: &str = "hub-update.json";
/// How long a healthy trial child gets to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Overrides what the hub finds it runs as (`systemd`, `container`,
/// `plain`): for a container whose binary lives on a volume it may write,
/// say, where an in-place update is wanted after all.
pub const INSTALL_KIND_ENV: &str = "TWINBAY_INSTALL_KIND";

/// How the hub was installed, as far as it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstallKind {
    /// Started by systemd (`INVOCATION_ID` is set).
    Systemd,
    /// In a container (`/run/.containerenv` or `/.dockerenv`).
    Container,
    /// Anything else.
    Plain,
}

impl InstallKind {
    /// From what the process can see: the container marker files, and
    /// systemd's `INVOCATION_ID`.
    pub fn classify(container_marker: bool, invocation_id: bool) -> InstallKind {
        if container_marker {
            InstallKind::Container
        } else if invocation_id {
            InstallKind::Systemd
        } else {
            InstallKind::Plain
        }
    }

    /// [`INSTALL_KIND_ENV`] when set, else [`InstallKind::classify`].
    pub fn detect() -> InstallKind {
        match std::env::var(INSTALL_KIND_ENV).as_deref() {
            Ok("systemd") => return InstallKind::Systemd,
            Ok("container") => return InstallKind::Container,
            Ok("plain") => return InstallKind::Plain,
            Ok(other) => tracing::warn!(
                value = other,
                "{INSTALL_KIND_ENV} is not systemd, container or plain; ignored"
            ),
            Err(_) => {}
        }
        let marker = ["/run/.containerenv", "/.dockerenv"]
            .iter()
            .any(|p| Path::new(p).exists());
        InstallKind::classify(marker, std::env::var_os("INVOCATION_ID").is_some())
    }
}

/// Why an in-place update cannot happen here, or `None` when it can.
pub fn update_refusal(kind: InstallKind, exe: Option<&Path>, dir_writable: bool) -> Option<String> {
    if kind == InstallKind::Container {
        return Some(
            "the hub runs in a container: the image is the update unit, pull a new image".into(),
        );
    }
    let Some(exe) = exe else {
        return Some("cannot tell which executable the hub runs from".into());
    };
    if !dir_writable {
        let dir = exe.parent().unwrap_or(Path::new("/"));
        return Some(format!(
            "the hub cannot write its own binary's directory {} (install it where it can, or update it with the package manager)",
            dir.display()
        ));
    }
    None
}

/// Whether this process may create files in `dir`.
fn writable(dir: &Path) -> bool {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
}

/// The executable this process was started from (read once, at start:
/// after a swap `/proc/self/exe` names a deleted file).
pub fn exe() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| {
        let p = std::env::current_exe().ok()?;
        let s = p.to_string_lossy();
        Some(match s.strip_suffix(" (deleted)") {
            Some(rest) => PathBuf::from(rest),
            None => p,
        })
    })
    .as_deref()
}

/// What `hub-update.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The release last installed: the hub reports its version while the
    /// executable's SHA-256 is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Installed>,
    /// A trial under way (or interrupted, if its process is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialRecord>,
    /// How the last update ended, until a hub has audited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<UpdateOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    pub version: String,
    pub sha256: String,
}

/// A release swapped in and on trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub version: String,
    pub from_version: String,
    pub sha256: String,
    pub exe: PathBuf,
    pub prev: PathBuf,
    /// The process that runs the trial.
    pub pid: u32,
    /// Who asked for it (for the audit).
    pub by: String,
    pub started_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateOutcome {
    pub version: String,
    pub from_version: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: String,
    pub finished_ms: i64,
}

pub fn load_state(data_dir: &Path) -> UpdateState {
    std::fs::read(data_dir.join(STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_state(data_dir: &Path, state: &UpdateState) -> Result<(), crate::HubError> {
    let bytes = serde_json::to_vec_pretty(state).expect("serializes");
    crate::fsutil::write_private(&data_dir.join(STATE_FILE), &bytes)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The version this hub reports: the installed release's while the
/// executable is that release's bytes, else the version it was built as.
pub fn running_version(data_dir: &Path) -> String {
    let Some(installed) = load_state(data_dir).installed else {
        return crate::VERSION.to_string();
    };
    match exe().map(sha256_file) {
        Some(Ok(sha)) if sha == installed.sha256 => installed.version,
        _ => crate::VERSION.to_string(),
    }
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// What a trial record found at start means.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No record, or this is the trial child (its parent owns the record).
    Nothing,
    /// Another live process runs the trial: leave it.
    Owned,
    /// The process that ran the trial is gone: roll back.
    Interrupted,
}

/// Pure: what a trial record means to a process with pid `me`.
pub fn classify_trial(
    record: Option<&TrialRecord>,
    me: u32,
    in_trial: bool,
    alive: impl Fn(u32) -> bool,
) -> Found {
    match record {
        None => Found::Nothing,
        Some(_) if in_trial => Found::Nothing,
        Some(r) if r.pid != me && alive(r.pid) => Found::Owned,
        Some(_) => Found::Interrupted,
    }
}

/// At start, before anything else: a trial whose process is gone (killed
/// during it) is rolled back. Returns the executable to exec when the
/// binary this process runs from was the one put back.
pub fn recover_interrupted(data_dir: &Path) -> Option<PathBuf> {
    let mut state = load_state(data_dir);
    let found = classify_trial(
        state.trial.as_ref(),
        std::process::id(),
        std::env::var_os(TRIAL_ENV).is_some(),
        alive,
    );
    if found != Found::Interrupted {
        return None;
    }
    let trial = state.trial.take()?;
    tracing::warn!(
        version = trial.version,
        "the hub stopped during the trial of an update: rolling back"
    );
    let reason = format!(
        "interrupted: the hub stopped during the trial of {}",
        trial.version
    );
    let (reason, rolled_back) = put_back(&trial, &reason);
    state.outcome = Some(UpdateOutcome {
        version: trial.version.clone(),
        from_version: trial.from_version.clone(),
        ok: false,
        reason: Some(reason),
        by: trial.by.clone(),
        finished_ms: crate::store::now_ms(),
    });
    if let Err(e) = save_state(data_dir, &state) {
        tracing::error!(error = %e, "could not record the interrupted update");
    }
    (rolled_back && exe() == Some(trial.exe.as_path())).then_some(trial.exe)
}

/// Renames `.prev` back over the executable; the reason with what happened.
fn put_back(trial: &TrialRecord, reason: &str) -> (String, bool) {
    match std::fs::rename(&trial.prev, &trial.exe) {
        Ok(()) => {
            if let Some(d) = trial.exe.parent().and_then(|d| std::fs::File::open(d).ok()) {
                let _ = d.sync_all();
            }
            (
                format!("{reason}; rolled back to {}", trial.from_version),
                true,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "could not put the previous binary back");
            (
                format!(
                    "{reason}; putting back {} failed: {e}",
                    trial.prev.display()
                ),
                false,
            )
        }
    }
}

/// What the hub is asked to do once it has stopped serving.
#[derive(Debug, Clone)]
pub enum Action {
    Restart,
    Update(TrialRecord),
}

/// The hub's view of itself, for `GET /api/v1/hub` and the lifecycle verbs.
pub struct Lifecycle {
    pub started_ms: i64,
    pub pid: u32,
    pub data_dir: PathBuf,
    pub kind: InstallKind,
    pub version: String,
    /// The hub's own recent log lines (the binary's log writer keeps them).
    pub log_tail: Option<LogTail>,
    /// How long an update's new binary has to serve `/healthz`.
    pub health_window: Duration,
    /// Whether the process that runs the hub acts on [`Lifecycle::take`]
    /// after it stops (the `twinbay` binary does; an embedding may not).
    pub managed: bool,
    requested: Mutex<Option<Action>>,
}

/// What the binary that runs the hub offers for its lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    pub log_tail: Option<LogTail>,
    pub health_window: Duration,
    /// The binary re-execs itself for `restart` and runs update trials.
    pub managed: bool,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            log_tail: None,
            health_window: DEFAULT_HEALTH_WINDOW,
            managed: false,
        }
    }
}

/// Why a hub inside another program can neither restart nor update.
pub const NOT_MANAGED: &str =
    "this hub runs inside a program that does not restart it (run it with `twinbay hub`)";

/// Reads the last `n` log lines.
pub type LogTail = fn(usize) -> Vec<String>;

impl Lifecycle {
    pub fn new(data_dir: &Path, config: LifecycleConfig) -> Lifecycle {
        Lifecycle {
            started_ms: crate::store::now_ms(),
            pid: std::process::id(),
            data_dir: data_dir.to_path_buf(),
            kind: InstallKind::detect(),
            version: running_version(data_dir),
            log_tail: config.log_tail,
            health_window: config.health_window,
            managed: config.managed,
            requested: Mutex::new(None),
        }
    }

    /// Why an update cannot happen now, or `None`.
    pub fn update_refusal(&self) -> Option<String> {
        if !self.managed {
            return Some(NOT_MANAGED.into());
        }
        let exe = exe();
        let dir_ok = exe.and_then(Path::parent).is_some_and(writable);
        update_refusal(self.kind, exe, dir_ok)
    }

    /// Asks for `action` once the hub has stopped; `false` if one is asked already.
    pub fn request(&self, action: Action) -> bool {
        let mut slot = crate::lock(&self.requested);
        if slot.is_some() {
            return false;
        }
        *slot = Some(action);
        true
    }

    pub fn busy(&self) -> bool {
        crate::lock(&self.requested).is_some()
    }

    /// What was asked, for the binary's main after the hub stopped.
    pub fn take(&self) -> Option<Action> {
        crate::lock(&self.requested).take()
    }
}

/// Why an update was not started.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Not possible here (container, read-only, no key…): nothing changed.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// The release does not verify: nothing changed.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// A temporary file, removed unless kept.
struct Temp(Option<PathBuf>);

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Verifies release `binary` (its manifest, its `.minisig`) against `keys`
/// while copying it beside `exe`, then keeps `exe` as `NAME.prev` and
/// renames the copy over it. Blocking I/O.
pub fn install(
    keys: &TrustedKeys,
    binary: &Path,
    manifest: &release::Manifest,
    exe: &Path,
) -> Result<(String, PathBuf), UpdateError> {
    let invalid = |s: String| UpdateError::Invalid(s);
    let version = &manifest.version;
    let arch = &manifest.arch;
    if manifest.size > MAX_RELEASE_BYTES {
        return Err(invalid("the release is too large".into()));
    }
    let sig_path = binary.with_file_name("twinbay.minisig");
    let sig_text = std::fs::read_to_string(&sig_path)
        .map_err(|e| invalid(format!("{}: {e}", sig_path.display())))?;
    let sig = release::parse_signature(&sig_text).map_err(|e| invalid(e.to_string()))?;
    release::check_comment_names(sig.trusted_comment(), version, arch)
        .map_err(|e| invalid(e.to_string()))?;
    let mut check = keys.verifier(&sig).map_err(|e| invalid(e.to_string()))?;
    let dir = exe
        .parent()
        .ok_or_else(|| UpdateError::Refused(format!("{} has no directory", exe.display())))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp_path = dir.join(format!(".{name}.update-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_path);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| {
            UpdateError::Refused(format!(
                "the hub cannot write its own binary's directory {}: {e}",
                dir.display()
            ))
        })?;
    let tmp = Temp(Some(tmp_path.clone()));
    let mut input = std::fs::File::open(binary)
        .map_err(|e| UpdateError::Failed(format!("{}: {e}", binary.display())))?;
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| UpdateError::Failed(format!("reading the release: {e}")))?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > manifest.size {
            return Err(invalid(format!(
                "the release is larger than the {} bytes its manifest says",
                manifest.size
            )));
        }
        hasher.update(&buf[..n]);
        check.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| UpdateError::Failed(format!("writing {}: {e}", tmp_path.display())))?;
    }
    if got < manifest.size {
        return Err(invalid(format!(
            "truncated: {got} of {} bytes",
            manifest.size
        )));
    }
    let sha256 = hex::encode(hasher.finalize());
    if !sha256.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(invalid(format!(
            "wrong hash: the bytes have SHA-256 {sha256}, the manifest says {}",
            manifest.sha256
        )));
    }
    check
        .finish()
        .map_err(|e| invalid(format!("bad signature: {e}")))?;
    use std::os::unix::fs::PermissionsExt;
    out.sync_all()
        .map_err(|e| UpdateError::Failed(e.to_string()))?;
    drop(out);
    let mode = std::fs::metadata(exe)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o755)
        | 0o100;
    std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| UpdateError::Failed(e.to_string()))?;
    let prev = dir.join(format!("{name}.prev"));
    let _ = std::fs::remove_file(&prev);
    if std::fs::hard_link(exe, &prev).is_err() {
        std::fs::copy(exe, &prev)
            .map_err(|e| UpdateError::Failed(format!("keeping {}: {e}", prev.display())))?;
    }
    std::fs::rename(&tmp_path, exe).map_err(|e| UpdateError::Failed(format!("swapping: {e}")))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let mut tmp = tmp;
    tmp.0 = None;
    Ok((sha256, prev))
}

/// Where a local client reaches a hub listening on `addr`.
fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Whether a hub on `addr` answers `GET /healthz` with 200 (plain HTTP,
/// which the hub serves on its one port beside TLS).
pub async fn serves_healthz(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(local(addr)).await.ok()?;
        s.write_all(
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                local(addr)
            )
            .as_bytes(),
        )
        .await
        .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The command line this process was started with (argv0, the rest).
fn command_line(exe: &Path) -> (OsString, Vec<OsString>) {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = if args.is_empty() {
        exe.as_os_str().to_owned()
    } else {
        args.remove(0)
    };
    (argv0, args)
}

/// Replaces this process with `exe` and this process's arguments; returns
/// only if that failed.
pub fn exec_self(exe: &Path) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let (argv0, args) = command_line(exe);
    std::process::Command::new(exe)
        .arg0(argv0)
        .args(args)
        .env_remove(TRIAL_ENV)
        .exec()
}

/// Runs the trial of a swapped-in release after the hub stopped serving on
/// `addr`, records the outcome and execs the binary to keep (the new one,
/// or the old one put back). Returns only if no exec worked.
pub async fn run_trial(
    data_dir: &Path,
    addr: SocketAddr,
    window: Duration,
    trial: TrialRecord,
) -> std::io::Error {
    tracing::info!(version = trial.version, window = ?window, "trying the new hub binary");
    let verdict = try_child(&trial, addr, window).await;
    let mut state = load_state(data_dir);
    state.trial = None;
    let outcome = |ok: bool, reason: Option<String>| UpdateOutcome {
        version: trial.version.clone(),
        from_version: trial.from_version.clone(),
        ok,
        reason,
        by: trial.by.clone(),
        finished_ms: crate::store::now_ms(),
    };
    match verdict {
        Ok(()) => {
            let was_installed = state.installed.clone();
            state.installed = Some(Installed {
                version: trial.version.clone(),
                sha256: trial.sha256.clone(),
            });
            state.outcome = Some(outcome(true, None));
            if let Err(e) = save_state(data_dir, &state) {
                tracing::error!(error = %e, "could not record the update");
            }
            tracing::info!(
                version = trial.version,
                "the new hub binary serves: running it"
            );
            let err = exec_self(&trial.exe);
            let (reason, _) = put_back(
                &trial,
                &format!("the new binary passed its trial but could not be run: {err}"),
            );
            state.installed = was_installed;
            state.outcome = Some(outcome(false, Some(reason)));
        }
        Err(reason) => {
            tracing::warn!(
                version = trial.version,
                reason,
                "rolling back the hub's update"
            );
            let (reason, _) = put_back(&trial, &reason);
            state.outcome = Some(outcome(false, Some(reason)));
        }
    }
    if let Err(e) = save_state(data_dir, &state) {
        tracing::error!(error = %e, "could not record the failed update");
    }
    exec_self(&trial.exe)
}

/// The new binary as a child until it serves `/healthz` (`Ok`, after
/// stopping it) or fails to within `window`.
async fn try_child(trial: &TrialRecord, addr: SocketAddr, window: Duration) -> Result<(), String> {
    let (argv0, args) = command_line(&trial.exe);
    let mut child = tokio::process::Command::new(&trial.exe)
        .arg0(argv0)
        .args(args)
        .env(TRIAL_ENV, std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("the new binary could not start: {e}"))?;
    let started = Instant::now();
    loop {
        if serves_healthz(addr).await {
            stop(&mut child).await;
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(match status.code() {
                    Some(code) => {
                        format!("the new binary exited with code {code} during its trial")
                    }
                    None => format!("the new binary died during its trial ({status})"),
                });
            }
            Ok(None) => {}
            Err(e) => return Err(format!("cannot watch the new binary: {e}")),
        }
        if started.elapsed() >= window {
            let _ = child.kill().await;
            return Err(format!(
                "the new binary did not serve /healthz within {}",
                humantime::format_duration(window)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM, then SIGKILL after a grace.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// At start, with the store open: audits how the last update ended and puts
/// it on the timeline, once.
pub async fn report_outcome(hub: &crate::HubState, data_dir: &Path) {
    if std::env::var_os(TRIAL_ENV).is_some() {
        return;
    }
    let mut state = load_state(data_dir);
    let Some(o) = state.outcome.take() else {
        return;
    };
    let mut detail = format!("{} → {} (asked by {})", o.from_version, o.version, o.by);
    if let Some(reason) = &o.reason {
        detail.push_str(&format!(": {reason}"));
    }
    let outcome = if o.ok {
        crate::audit::Outcome::Ok
    } else {
        crate::audit::Outcome::Failed
    };
    let record =
        crate::audit::Record::new(crate::audit::ActorKind::Hub, "hub", "hub.update", outcome)
            .target("hub")
            .detail(&detail);
    if let Err(e) = hub.store.audit(record).await {
        tracing::error!(error = %crate::report(&e), "could not audit the hub's update");
        return;
    }
    hub.twin.emit(vec![crate::timeline::Event {
        node_id: "hub".into(),
        ts: o.finished_ms,
        kind: if o.ok {
            "hub.updated"
        } else {
            "hub.update_failed"
        }
        .into(),
        target: "hub".into(),
        detail: serde_json::json!({
            "version": o.version,
            "from_version": o.from_version,
            "reason": o.reason,
            "by": o.by,
        }),
    }]);
    if let Err(e) = save_state(data_dir, &state) {
        tracing::error!(error = %e, "could not record that the hub's update was audited");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32) -> TrialRecord {
        TrialRecord {
            version: "2.0.0".into(),
            from_version: "1.0.0".into(),
            sha256: "ab".into(),
            exe: "/x/twinbay".into(),
            prev: "/x/twinbay.prev".into(),
            pid,
            by: "admin".into(),
            started_ms: 1,
        }
    }

    #[test]
    fn a_trial_record_is_rolled_back_only_when_nobody_runs_it() {
        let r = record(10);
        let alive = |pid| pid == 10;
        let dead = |_| false;
        assert_eq!(classify_trial(None, 5, false, alive), Found::Nothing);
        assert_eq!(
            classify_trial(Some(&r), 5, true, dead),
            Found::Nothing,
            "the trial child"
        );
        assert_eq!(classify_trial(Some(&r), 5, false, alive), Found::Owned);
        assert_eq!(classify_trial(Some(&r), 5, false, dead), Found::Interrupted);
        // The same pid, started again without its trial's end: interrupted.
        assert_eq!(
            classify_trial(Some(&r), 10, false, alive),
            Found::Interrupted
        );
    }

    #[test]
    fn containers_and_unwritable_dirs_refuse_updates() {
        assert_eq!(InstallKind::classify(true, true), InstallKind::Container);
        assert_eq!(InstallKind::classify(false, true), InstallKind::Systemd);
        assert_eq!(InstallKind::classify(false, false), InstallKind::Plain);
        let exe = Path::new("/usr/bin/twinbay");
        assert!(
            update_refusal(InstallKind::Container, Some(exe), true)
                .unwrap()
                .contains("pull a new image")
        );
        assert!(
            update_refusal(InstallKind::Systemd, Some(exe), false)
                .unwrap()
                .contains("/usr/bin")
        );
        assert_eq!(update_refusal(InstallKind::Plain, Some(exe), true), None);
        assert!(update_refusal(InstallKind::Plain, None, true).is_some());
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("twinbay-lifecycle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn signed_release(
        dir: &Path,
        bytes: &[u8],
        version: &str,
        sig_bytes: &[u8],
    ) -> (TrustedKeys, release::Manifest) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let arch = std::env::consts::ARCH;
        let comment = format!("version:{version} arch:{arch}");
        let sig = minisign::sign(Some(&pair.pk), &pair.sk, sig_bytes, Some(&comment), None)
            .unwrap()
            .into_string();
        std::fs::write(dir.join("twinbay"), bytes).unwrap();
        std::fs::write(dir.join("twinbay.minisig"), sig).unwrap();
        let manifest = release::Manifest {
            version: version.into(),
            arch: arch.into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            min_hub_version: None,
            notes: None,
            key: pair.pk.to_base64(),
            trusted_comment: comment,
            published_ms: 0,
            published_by: "t".into(),
        };
        let keys = TrustedKeys::parse([pair.pk.to_base64().as_str()]).unwrap();
        (keys, manifest)
    }

    #[test]
    fn a_verified_release_is_swapped_in_beside_the_previous_and_a_bad_one_changes_nothing() {
        let dir = temp_dir("install");
        let rel = dir.join("rel");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("twinbay");
        std::fs::write(&exe, b"old").unwrap();

        // Signed over other bytes: refused, nothing changed, no leftovers.
        let (keys, manifest) = signed_release(&rel, b"new bytes", "2.0.0", b"other");
        let err = install(&keys, &rel.join("twinbay"), &manifest, &exe).unwrap_err();
        assert!(
            matches!(err, UpdateError::Invalid(ref e) if e.contains("bad signature")),
            "{err}"
        );
        assert_eq!(std::fs::read(&exe).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 1);

        // Truncated on disk after publishing.
        let (keys, manifest) = signed_release(&rel, b"new bytes", "2.0.0", b"new bytes");
        std::fs::write(rel.join("twinbay"), b"new").unwrap();
        let err = install(&keys, &rel.join("twinbay"), &manifest, &exe).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(std::fs::read(&exe).unwrap(), b"old");

        // An untrusted key.
        let (_, manifest) = signed_release(&rel, b"new bytes", "2.0.0", b"new bytes");
        let err = install(&keys, &rel.join("twinbay"), &manifest, &exe).unwrap_err();
        assert!(err.to_string().contains("not trusted"), "{err}");

        let (keys, manifest) = signed_release(&rel, b"new bytes", "2.0.0", b"new bytes");
        let (sha, prev) = install(&keys, &rel.join("twinbay"), &manifest, &exe).unwrap();
        assert_eq!(sha, manifest.sha256);
        assert_eq!(std::fs::read(&exe).unwrap(), b"new bytes");
        assert_eq!(std::fs::read(&prev).unwrap(), b"old");
        assert_eq!(prev, bin.join("twinbay.prev"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_interrupted_trial_puts_the_previous_binary_back_and_says_so() {
        let dir = temp_dir("recover");
        let exe = dir.join("twinbay");
        std::fs::write(&exe, b"new").unwrap();
        std::fs::write(dir.join("twinbay.prev"), b"old").unwrap();
        let mut r = record(u32::MAX - 1);
        r.exe = exe.clone();
        r.prev = dir.join("twinbay.prev");
        save_state(
            &dir,
            &UpdateState {
                trial: Some(r),
                ..Default::default()
            },
        )
        .unwrap();
        // Not this process's executable: nothing to exec.
        assert_eq!(recover_interrupted(&dir), None);
        assert_eq!(std::fs::read(&exe).unwrap(), b"old");
        let state = load_state(&dir);
        assert!(state.trial.is_none());
        let o = state.outcome.unwrap();
        assert!(!o.ok);
        let reason = o.reason.unwrap();
        assert!(
            reason.contains("interrupted") && reason.contains("rolled back to 1.0.0"),
            "{reason}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
