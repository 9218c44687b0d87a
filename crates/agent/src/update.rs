//! The agent's own update (docs/updates.md): download a signed release from
//! the hub, check it against the keys THIS agent trusts, swap it in beside a
//! rollback copy, and give it a trial before it is kept.
//!
//! [`install`] streams the release over a second socket to the hub (the
//! link's certificate pin, the link's signed hello) into a temporary file
//! beside the executable, hashing and verifying as it goes, and refuses with
//! nothing swapped when anything is off. Then it hard-links the running
//! binary to `NAME.prev` and renames the new one over `NAME`.
//!
//! [`trial`] runs in the agent's outer loop after its link and sources have
//! stopped: it starts the new binary as a child with the same arguments and
//! [`TRIAL_ENV`], which writes a health file once its link is welcomed (its
//! sources run by then). Healthy within the window: the child is stopped and
//! this process execs the new binary (same pid, so a service manager's main
//! pid and `Restart=` hold). Not: the child is killed, `NAME.prev` is
//! renamed back, and the old code runs on. Either way the outcome waits in
//! `update.json` and goes to the hub on the next link ([`pending_report`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;
use twinbay_proto::message::UpdateReport;
use twinbay_proto::release::{self, MAX_RELEASE_BYTES, Offer, TrustedKeys};

use crate::exec::backup::Uploader;

/// Set in the trial child's environment: the health file it writes once
/// its link is up.
pub const TRIAL_ENV: &str = "TWINBAY_UPDATE_TRIAL";
/// The default health window.
pub const DEFAULT_HEALTH_WINDOW: Duration = Duration::from_secs(60);
const STATE_FILE: &str = "update.json";
/// How long a healthy child gets to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How this agent updates itself.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// Off for an agent inside another process (`twinbay up`).
    pub enabled: bool,
    /// Keys given on the command line (`--update-key`), beside those from
    /// the join string.
    pub keys: Vec<String>,
    pub health_window: Duration,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            enabled: false,
            keys: Vec::new(),
            health_window: DEFAULT_HEALTH_WINDOW,
        }
    }
}

/// What `update.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The release last installed: reported as the agent's version while
    /// the executable's SHA-256 is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Installed>,
    /// Versions whose trial failed, and why: not tried again by the agent
    /// on its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, String>,
    /// How the last update ended, until the hub has been told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<UpdateReport>,
    /// A trial under way, written before its child starts: an agent that
    /// finds one whose process is gone (killed during it) rolls it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialRecord>,
}

/// What `update.json` says about a trial under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub command_id: String,
    pub version: String,
    pub from_version: String,
    pub exe: PathBuf,
    pub prev: PathBuf,
    /// The agent process that runs the trial.
    pub pid: u32,
}

/// Whether a trial record found at start was interrupted: not the trial
/// child's (its parent owns it), and its process is gone (or is this one,
/// started again without the trial's end).
pub fn interrupted(
    record: &TrialRecord,
    me: u32,
    in_trial: bool,
    alive: impl Fn(u32) -> bool,
) -> bool {
    !in_trial && (record.pid == me || !alive(record.pid))
}

/// At start: a trial that a kill interrupted (SIGKILL, power) is rolled
/// back — `NAME.prev` renamed over `NAME` — and reported failed,
/// "interrupted". Returns the executable to exec when it is the one this
/// process runs from (the new code must not run on).
pub fn recover_interrupted(state_dir: &Path) -> Option<PathBuf> {
    let mut state = load_state(state_dir);
    let record = state.trial.clone()?;
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    if !interrupted(
        &record,
        std::process::id(),
        std::env::var_os(TRIAL_ENV).is_some(),
        alive,
    ) {
        return None;
    }
    tracing::warn!(
        version = record.version,
        "the agent stopped during the trial of an update: rolling back"
    );
    state.trial = None;
    let reason = format!(
        "interrupted: the agent stopped during the trial of {}",
        record.version
    );
    let (reason, rolled_back) = match std::fs::rename(&record.prev, &record.exe) {
        Ok(()) => (
            format!("{reason}; rolled back to {}", record.from_version),
            true,
        ),
        Err(e) => (
            format!(
                "{reason}; putting back {} failed: {e}",
                record.prev.display()
            ),
            false,
        ),
    };
    state.failed.insert(record.version.clone(), reason.clone());
    state.report = Some(UpdateReport {
        command_id: Some(record.command_id.clone()),
        version: record.version.clone(),
        from_version: record.from_version.clone(),
        ok: false,
        reason: Some(reason),
    });
    if let Err(e) = save_state(state_dir, &state) {
        tracing::error!(error = %e, "could not record the interrupted update");
    }
    (rolled_back && exe() == Some(record.exe.as_path())).then_some(record.exe)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    pub version: String,
    pub sha256: String,
}

pub fn load_state(dir: &Path) -> UpdateState {
    std::fs::read(dir.join(STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_state(dir: &Path, state: &UpdateState) -> Result<(), crate::AgentError> {
    let bytes = serde_json::to_vec_pretty(state).expect("serializes");
    crate::identity::write_atomic(&dir.join(STATE_FILE), &bytes, 0o600)
}

/// The outcome waiting for the hub (the trial child never sends it: it is
/// not the agent that stays).
pub fn pending_report(dir: &Path) -> Option<UpdateReport> {
    if std::env::var_os(TRIAL_ENV).is_some() {
        return None;
    }
    load_state(dir).report
}

/// Forgets `sent`, which went out to the hub.
pub fn clear_report(dir: &Path, sent: &UpdateReport) {
    let mut state = load_state(dir);
    if state.report.as_ref() == Some(sent) {
        state.report = None;
        if let Err(e) = save_state(dir, &state) {
            tracing::warn!(error = %e, "could not record that the update report went out");
        }
    }
}

/// The executable this process was started from (read once, at start: after
/// a swap `/proc/self/exe` names a deleted file).
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

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
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

/// The version this agent reports: the installed release's when the
/// executable is that release's bytes, else the version it was built as.
pub fn running_version(state_dir: &Path) -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let Some(installed) = load_state(state_dir).installed else {
                return crate::VERSION.to_string();
            };
            match exe().map(sha256_file) {
                Some(Ok(sha)) if sha == installed.sha256 => installed.version,
                _ => crate::VERSION.to_string(),
            }
        })
        .clone()
}

/// Writes the trial child's health file, if this is one.
pub fn report_healthy() {
    if let Some(path) = std::env::var_os(TRIAL_ENV) {
        let text = format!("healthy {}\n", std::process::id());
        if let Err(e) = std::fs::write(&path, text) {
            tracing::warn!(error = %e, "could not write the trial's health file");
        }
    }
}

/// What the executor needs to install a release.
#[derive(Debug, Clone)]
pub struct Updater {
    pub config: UpdateConfig,
    pub state_dir: PathBuf,
    /// Keys from the enrollment (the join string).
    pub enrolled_keys: Vec<String>,
}

/// Where the executor leaves a swapped-in release for the outer loop.
pub type TrialSlot = std::sync::Arc<std::sync::Mutex<Option<Trial>>>;

/// A release swapped in and waiting for its trial.
#[derive(Debug, Clone)]
pub struct Trial {
    pub command_id: String,
    pub version: String,
    pub from_version: String,
    pub exe: PathBuf,
    pub prev: PathBuf,
    pub sha256: String,
    /// The keys its signed comment adds or rotates in, applied once it
    /// passed its trial.
    pub keys: Option<release::KeyChange>,
}

/// Why an update did not get as far as a trial.
#[derive(Debug)]
pub enum Refused {
    /// The release or the host is not fit (nothing was swapped).
    Refused(String),
    /// Something broke on the way (nothing was swapped).
    Failed(String),
}

impl Updater {
    pub fn keys(&self) -> Result<TrustedKeys, String> {
        let mut texts: Vec<String> = self.enrolled_keys.clone();
        for k in &self.config.keys {
            let k = k.trim();
            if k.is_empty() {
                continue;
            }
            let path = Path::new(k);
            if path.is_file() {
                texts.push(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("update key {}: {e}", path.display()))?,
                );
            } else {
                texts.push(k.to_string());
            }
        }
        TrustedKeys::parse(texts.iter().map(String::as_str)).map_err(|e| e.to_string())
    }
}

/// A temporary file that is removed unless kept.
struct Temp(Option<PathBuf>);

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Downloads, verifies and swaps in release `version` for `arch`. On `Ok`
/// the new binary is at the executable's path and the old one at `.prev`.
pub async fn install(
    updater: &Updater,
    up: &Uploader,
    command_id: &str,
    version: &str,
    arch: &str,
    progress: &mut (impl FnMut(String) + Send),
) -> Result<Trial, Refused> {
    let refused = |s: String| Refused::Refused(s);
    if !updater.config.enabled {
        return Err(refused(
            "this agent runs inside another process (twinbay up): update that binary instead"
                .into(),
        ));
    }
    let keys = updater.keys().map_err(refused)?;
    if keys.is_empty() {
        return Err(refused(
            "this agent trusts no update key: enroll it with a join string from a hub started with --update-key, or start it with --update-key".into(),
        ));
    }
    let exe = exe()
        .ok_or_else(|| refused("cannot tell which executable this agent runs from".into()))?
        .to_path_buf();
    let dir = exe
        .parent()
        .ok_or_else(|| refused(format!("{} has no directory", exe.display())))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp_path = dir.join(format!(".{name}.update-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_path);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| {
            refused(format!(
                "not installed where it can write its own binary: {}: {e}",
                dir.display()
            ))
        })?;
    let tmp = Temp(Some(tmp_path.clone()));
    let mut file = tokio::fs::File::from_std(file);

    let path = format!(
        "{}?arch={arch}",
        twinbay_proto::release::download_path(command_id)
    );
    let mut ws = crate::exec::backup::open(up, &path)
        .await
        .map_err(Refused::Failed)?;
    let offer: Offer = match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str())
            .map_err(|e| Refused::Failed(format!("a bad offer from the hub: {e}")))?,
        Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
            return Err(Refused::Failed(
                "the hub closed the download before its offer".into(),
            ));
        }
        Ok(Some(Err(e))) => return Err(Refused::Failed(format!("the download broke: {e}"))),
        Ok(Some(Ok(_))) => return Err(Refused::Failed("the hub sent no offer".into())),
        Err(_) => return Err(Refused::Failed("the hub sent no offer in time".into())),
    };
    let m = &offer.manifest;
    if m.version != version || m.arch != arch {
        return Err(refused(format!(
            "the hub offered {} for {}, not {version} for {arch}",
            m.version, m.arch
        )));
    }
    if m.size > MAX_RELEASE_BYTES {
        return Err(refused(format!(
            "the release is larger than {} MiB",
            MAX_RELEASE_BYTES >> 20
        )));
    }
    let sig = release::parse_signature(&offer.signature).map_err(|e| refused(e.to_string()))?;
    release::check_comment_names(sig.trusted_comment(), version, arch)
        .map_err(|e| refused(e.to_string()))?;
    let key_change =
        release::key_change(sig.trusted_comment()).map_err(|e| refused(e.to_string()))?;
    let mut check = keys.verifier(&sig).map_err(|e| refused(e.to_string()))?;
    let signer = check.key.to_string();
    progress(format!(
        "downloading {version} for {arch}: {} bytes, signed by {signer}\n",
        m.size
    ));
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(120), ws.next())
            .await
            .map_err(|_| Refused::Failed("the download stalled".into()))?;
        match frame {
            Some(Ok(Message::Binary(data))) => {
                got += data.len() as u64;
                if got > m.size {
                    return Err(refused(format!(
                        "the hub sent more than the {} bytes its manifest says",
                        m.size
                    )));
                }
                hasher.update(&data);
                check.update(&data);
                tokio::io::AsyncWriteExt::write_all(&mut file, &data)
                    .await
                    .map_err(|e| Refused::Failed(format!("writing {}: {e}", tmp_path.display())))?;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(e)) if got < m.size => {
                return Err(refused(format!(
                    "the download broke after {got} of {} bytes: {e}",
                    m.size
                )));
            }
            Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
        if got == m.size {
            break;
        }
    }
    let _ = ws.close(None).await;
    if got < m.size {
        return Err(refused(format!(
            "truncated: received {got} of {} bytes",
            m.size
        )));
    }
    let sha256 = hex::encode(hasher.finalize());
    if !sha256.eq_ignore_ascii_case(&m.sha256) {
        return Err(refused(format!(
            "wrong hash: the bytes have SHA-256 {sha256}, the manifest says {}",
            m.sha256
        )));
    }
    check
        .finish()
        .map_err(|e| refused(format!("bad signature: {e}")))?;
    progress(format!("verified: sha256 {sha256}\n"));

    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(|e| Refused::Failed(e.to_string()))?;
    let file = file.into_std().await;
    let exe2 = exe.clone();
    let prev = dir.join(format!("{name}.prev"));
    let prev2 = prev.clone();
    let swapped = tokio::task::spawn_blocking(move || -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        file.sync_all().map_err(|e| e.to_string())?;
        let mode = std::fs::metadata(&exe2)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755)
            | 0o100;
        std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&prev2);
        if std::fs::hard_link(&exe2, &prev2).is_err() {
            std::fs::copy(&exe2, &prev2)
                .map_err(|e| format!("keeping {}: {e}", prev2.display()))?;
        }
        std::fs::rename(&tmp_path, &exe2).map_err(|e| format!("swapping: {e}"))?;
        if let Some(d) = exe2.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = d.sync_all();
        }
        Ok(())
    })
    .await
    .map_err(|e| Refused::Failed(e.to_string()))?;
    swapped.map_err(Refused::Failed)?;
    let mut tmp = tmp;
    tmp.0 = None;
    Ok(Trial {
        command_id: command_id.to_string(),
        version: version.to_string(),
        from_version: running_version(&updater.state_dir),
        exe,
        prev,
        sha256,
        keys: key_change,
    })
}

/// How a trial ended.
enum Verdict {
    Healthy(tokio::process::Child),
    Failed(String),
}

/// Runs the trial of a swapped-in release and ends it: on health, execs
/// the new binary (returns only if that failed, after rolling back); on
/// failure, rolls back and returns. The outcome waits in `update.json`.
pub async fn trial(
    state_dir: &Path,
    window: Duration,
    trial: Trial,
    cancel: &tokio_util::sync::CancellationToken,
) {
    tracing::info!(
        version = trial.version,
        window = ?window,
        "trying the new binary"
    );
    let health = state_dir.join("update-trial");
    let _ = std::fs::remove_file(&health);
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0: OsString = if args.is_empty() {
        trial.exe.clone().into()
    } else {
        args.remove(0)
    };
    // Written before the child starts: a kill from here on is undone at
    // the next start (recover_interrupted).
    let mut state = load_state(state_dir);
    state.trial = Some(TrialRecord {
        command_id: trial.command_id.clone(),
        version: trial.version.clone(),
        from_version: trial.from_version.clone(),
        exe: trial.exe.clone(),
        prev: trial.prev.clone(),
        pid: std::process::id(),
    });
    if let Err(e) = save_state(state_dir, &state) {
        roll_back(
            state_dir,
            &trial,
            &format!("cannot record the trial in {}: {e}", state_dir.display()),
        );
        return;
    }
    let verdict = run_trial(&trial, &argv0, &args, &health, window, cancel).await;
    let _ = std::fs::remove_file(&health);
    let mut state = load_state(state_dir);
    state.trial = None;
    match verdict {
        Verdict::Healthy(mut child) => {
            stop(&mut child).await;
            if let Some(change) = &trial.keys {
                match crate::identity::change_update_keys(state_dir, change) {
                    Ok(keys) => tracing::info!(
                        keys = keys.join(","),
                        "the update changed the keys this agent trusts"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "could not change the trusted update keys")
                    }
                }
            }
            state.installed = Some(Installed {
                version: trial.version.clone(),
                sha256: trial.sha256.clone(),
            });
            state.failed.remove(&trial.version);
            state.report = Some(UpdateReport {
                command_id: Some(trial.command_id.clone()),
                version: trial.version.clone(),
                from_version: trial.from_version.clone(),
                ok: true,
                reason: None,
            });
            if let Err(e) = save_state(state_dir, &state) {
                tracing::error!(error = %e, "could not record the update");
            }
            tracing::info!(
                version = trial.version,
                "the new binary is healthy: running it"
            );
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new(&trial.exe)
                .arg0(&argv0)
                .args(&args)
                .env_remove(TRIAL_ENV)
                .exec();
            let reason = format!("the new binary passed its trial but could not be run: {err}");
            roll_back(state_dir, &trial, &reason);
        }
        Verdict::Failed(reason) => roll_back(state_dir, &trial, &reason),
    }
}

async fn run_trial(
    trial: &Trial,
    argv0: &OsString,
    args: &[OsString],
    health: &Path,
    window: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Verdict {
    let mut child = match tokio::process::Command::new(&trial.exe)
        .arg0(argv0)
        .args(args)
        .env(TRIAL_ENV, health)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Verdict::Failed(format!("the new binary could not start: {e}")),
    };
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(health).is_ok_and(|t| t.starts_with("healthy")) {
            return Verdict::Healthy(child);
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                return Verdict::Failed(match status.code() {
                    Some(code) => {
                        format!("the new binary exited with code {code} during its trial")
                    }
                    None => format!("the new binary died during its trial ({status})"),
                });
            }
            Ok(None) => {}
            Err(e) => return Verdict::Failed(format!("cannot watch the new binary: {e}")),
        }
        if started.elapsed() >= window {
            let _ = child.kill().await;
            return Verdict::Failed(format!(
                "the new binary did not report healthy within {}",
                humantime::format_duration(window)
            ));
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = child.kill().await;
                return Verdict::Failed("the agent was stopped during the trial".into());
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
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

/// Puts the previous binary back and records the failure.
fn roll_back(state_dir: &Path, trial: &Trial, reason: &str) {
    tracing::warn!(version = trial.version, reason, "rolling back the update");
    let reason = match std::fs::rename(&trial.prev, &trial.exe) {
        Ok(()) => format!("{reason}; rolled back to {}", trial.from_version),
        Err(e) => {
            tracing::error!(error = %e, "could not put the previous binary back");
            format!(
                "{reason}; putting back {} failed: {e}",
                trial.prev.display()
            )
        }
    };
    let mut state = load_state(state_dir);
    state.trial = None;
    state.failed.insert(trial.version.clone(), reason.clone());
    state.report = Some(UpdateReport {
        command_id: Some(trial.command_id.clone()),
        version: trial.version.clone(),
        from_version: trial.from_version.clone(),
        ok: false,
        reason: Some(reason),
    });
    if let Err(e) = save_state(state_dir, &state) {
        tracing::error!(error = %e, "could not record the failed update");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: UpdateConfig, enrolled: Vec<String>) -> String {
        let updater = Updater {
            config,
            state_dir: std::env::temp_dir(),
            enrolled_keys: enrolled,
        };
        let up = Uploader {
            hub: "wss://127.0.0.1:9".into(),
            fingerprint: String::new(),
            node_id: "n_x".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match rt.block_on(install(&updater, &up, "c1", "2.0.0", "x86_64", &mut |_| {})) {
            Err(Refused::Refused(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn no_trusted_key_or_no_own_binary_refuses_before_anything_is_fetched() {
        let on = UpdateConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(refusal(on.clone(), vec![]).contains("trusts no update key"));
        assert!(refusal(UpdateConfig::default(), vec![]).contains("twinbay up"));
        let bad = UpdateConfig {
            keys: vec!["not a key".into()],
            ..on
        };
        assert!(refusal(bad, vec![]).contains("not a minisign public key"));
    }

    #[test]
    fn an_interrupted_trial_is_rolled_back_and_reported_once_its_process_is_gone() {
        let dir = std::env::temp_dir().join(format!("twinbay-update-int-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("twinbay-agent");
        std::fs::write(&exe, b"new").unwrap();
        std::fs::write(dir.join("twinbay-agent.prev"), b"old").unwrap();
        let record = TrialRecord {
            command_id: "c9".into(),
            version: "2.0.0".into(),
            from_version: "1.0.0".into(),
            exe: exe.clone(),
            prev: dir.join("twinbay-agent.prev"),
            pid: u32::MAX - 1,
        };
        assert!(!interrupted(&record, 5, true, |_| false), "the trial child");
        assert!(
            !interrupted(&record, 5, false, |_| true),
            "its parent lives"
        );
        assert!(interrupted(&record, 5, false, |_| false));
        assert!(
            interrupted(&record, u32::MAX - 1, false, |_| true),
            "this process, again"
        );
        save_state(
            &dir,
            &UpdateState {
                trial: Some(record),
                ..Default::default()
            },
        )
        .unwrap();
        // Not this process's executable: nothing to exec, but rolled back.
        assert_eq!(recover_interrupted(&dir), None);
        assert_eq!(std::fs::read(&exe).unwrap(), b"old");
        assert!(!dir.join("twinbay-agent.prev").exists());
        let state = load_state(&dir);
        assert!(state.trial.is_none());
        let report = state.report.unwrap();
        assert!(!report.ok);
        assert_eq!(report.command_id.as_deref(), Some("c9"));
        let reason = report.reason.unwrap();
        assert!(
            reason.starts_with("interrupted") && reason.contains("rolled back to 1.0.0"),
            "{reason}"
        );
        assert!(state.failed.contains_key("2.0.0"));
        // Once only.
        assert_eq!(recover_interrupted(&dir), None);
        assert_eq!(std::fs::read(&exe).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_round_trips_and_a_report_is_taken_once() {
        let dir = std::env::temp_dir().join(format!("twinbay-update-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load_state(&dir), UpdateState::default());
        let mut s = UpdateState::default();
        s.failed.insert("2.0.0".into(), "exited".into());
        s.report = Some(UpdateReport {
            command_id: Some("c1".into()),
            version: "2.0.0".into(),
            from_version: "1.0.0".into(),
            ok: false,
            reason: Some("exited".into()),
        });
        save_state(&dir, &s).unwrap();
        assert_eq!(load_state(&dir), s);
        let report = pending_report(&dir).unwrap();
        assert_eq!(report.version, "2.0.0");
        clear_report(&dir, &report);
        assert!(pending_report(&dir).is_none());
        assert_eq!(
            load_state(&dir).failed.len(),
            1,
            "the failure stays recorded"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
