//! Event rules: things that happen (a risky config change, a failed backup
//! or command, a missed schedule) raise alerts the moment the hub records
//! them. The paths that record them — the twin's timeline
//! ([`crate::twin::Twin::emit`]) and the end of a command
//! ([`crate::commands::Commands`]) — hand each one to an [`Inbox`]; the
//! engine takes them from there (never from the database).
//!
//! An event alert fires at once. It resolves when the same subject goes
//! right again (the job's next backup, the same command succeeding), which
//! is notified, or silently after [`HOLD_MS`]; the same failure again
//! meanwhile is the same alert, not another notification.

use serde_json::Value;
use tokio::sync::mpsc;
use twinbay_proto::command::{Op, Status};

use super::eval::Kind;
use crate::files::risk::Risk;
use crate::store::CommandRecord;
use crate::timeline::Event;

/// How long an event alert stays firing without news.
pub const HOLD_MS: i64 = 3_600_000;
/// Happenings waiting for the engine; more are dropped (and logged).
const INBOX: usize = 4096;

/// Something that happened, as alert rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Happening {
    pub kind: Kind,
    pub node_id: String,
    /// What it is about: a file's path, a backup job, a command, a schedule.
    pub subject: String,
    /// It went wrong (fires); false: it went right again (resolves).
    pub failed: bool,
    /// A file change's risk.
    pub risk: Option<Risk>,
    /// Said in the notification, before " on HOST".
    pub what: String,
}

impl Happening {
    /// Whether a rule of `kind` (with `min_risk` for file changes) is
    /// about this.
    pub fn concerns(&self, kind: Kind, min_risk: Option<Risk>) -> bool {
        self.kind == kind
            && (kind != Kind::FileChanged
                || self.risk.unwrap_or_default() >= min_risk.unwrap_or(Risk::High))
    }
}

/// What a timeline event means to alert rules, if anything.
pub fn from_timeline(e: &Event) -> Option<Happening> {
    let text = |key: &str| e.detail.get(key).and_then(Value::as_str).unwrap_or("");
    let (kind, what) = match e.kind.as_str() {
        "file.changed" | "file.created" | "file.deleted" => {
            let risk: Risk = serde_json::from_value(e.detail.get("risk")?.clone()).ok()?;
            let verb = e.kind.trim_start_matches("file.");
            let mut what = format!("{} {verb} ({} risk", e.target, risk.as_str());
            if !text("summary").is_empty() {
                what.push_str(&format!(": {}", text("summary")));
            }
            what.push(')');
            return Some(Happening {
                kind: Kind::FileChanged,
                node_id: e.node_id.clone(),
                subject: e.target.clone(),
                failed: true,
                risk: Some(risk),
                what,
            });
        }
        "schedule.missed" => (
            Kind::ScheduleMissed,
            format!("schedule {} missed a run: {}", e.target, text("reason")),
        ),
        _ => return None,
    };
    Some(Happening {
        kind,
        node_id: e.node_id.clone(),
        subject: e.target.clone(),
        failed: true,
        risk: None,
        what,
    })
}

/// What a command's end means to alert rules: a backup's end is about its
/// job, any other command's about what it did (`restart container web`).
pub fn from_command(c: &CommandRecord) -> Option<Happening> {
    let failed = match c.status {
        Status::Ok => false,
        Status::Failed | Status::TimedOut | Status::Lost => true,
        // Not run at all (policy) or stopped by a person: not a failure.
        Status::Refused | Status::Cancelled | Status::Running => return None,
    };
    let mut why = c.status.as_str().replace('_', " ");
    if let Some(code) = c.exit_code.filter(|c| *c != 0) {
        why.push_str(&format!(", exit code {code}"));
    }
    if let Some(e) = c.error.as_deref().filter(|e| !e.is_empty()) {
        why.push_str(&format!(": {e}"));
    }
    let (kind, subject, what) = match &c.op {
        Op::Backup { job, .. } => (
            Kind::BackupFailed,
            job.clone(),
            format!("backup {job} {why}"),
        ),
        _ => (
            Kind::CommandFailed,
            c.summary.clone(),
            format!("command `{}` {why}", c.summary),
        ),
    };
    Some(Happening {
        kind,
        node_id: c.node_id.clone(),
        subject,
        failed,
        risk: None,
        what,
    })
}

/// Where the hub's paths hand happenings to the alert engine. Never waits:
/// when the engine is far behind, a happening is dropped and logged.
#[derive(Debug, Clone)]
pub struct Inbox(mpsc::Sender<Happening>);

/// An inbox and the engine's end of it.
pub fn inbox() -> (Inbox, mpsc::Receiver<Happening>) {
    let (tx, rx) = mpsc::channel(INBOX);
    (Inbox(tx), rx)
}

impl Inbox {
    pub fn timeline(&self, e: &Event) {
        if let Some(h) = from_timeline(e) {
            self.put(h);
        }
    }

    pub fn command(&self, c: &CommandRecord) {
        if let Some(h) = from_command(c) {
            self.put(h);
        }
    }

    fn put(&self, h: Happening) {
        if let Err(mpsc::error::TrySendError::Full(h)) = self.0.try_send(h) {
            tracing::warn!(
                kind = h.kind.as_str(),
                node_id = h.node_id,
                "alert engine is behind; an event was dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use twinbay_proto::backup::BackupSource;
    use twinbay_proto::command::{Op, Status};

    use super::*;

    fn event(kind: &str, target: &str, detail: Value) -> Event {
        Event {
            node_id: "n1".into(),
            ts: 1,
            kind: kind.into(),
            target: target.into(),
            detail,
        }
    }

    #[test]
    fn file_changes_carry_their_risk_and_match_rules_at_or_above_it() {
        let e = event(
            "file.changed",
            "/etc/ssh/sshd_config",
            json!({"risk": "high", "summary": "PermitRootLogin yes"}),
        );
        let h = from_timeline(&e).unwrap();
        assert_eq!(h.kind, Kind::FileChanged);
        assert_eq!(
            h.what,
            "/etc/ssh/sshd_config changed (high risk: PermitRootLogin yes)"
        );
        assert!(h.concerns(Kind::FileChanged, None), "default: high");
        assert!(h.concerns(Kind::FileChanged, Some(Risk::Medium)));
        assert!(!h.concerns(Kind::FileChanged, Some(Risk::Critical)));
        assert!(!h.concerns(Kind::CommandFailed, None));
        let low = event("file.changed", "/etc/motd", json!({"risk": "low"}));
        assert!(
            !from_timeline(&low)
                .unwrap()
                .concerns(Kind::FileChanged, None)
        );
        // Unrated or unrelated events are nothing.
        assert_eq!(from_timeline(&event("file.changed", "/x", json!({}))), None);
        assert_eq!(
            from_timeline(&event("container.died", "web", json!({}))),
            None
        );
        let missed = event(
            "schedule.missed",
            "nightly",
            json!({"reason": "host offline"}),
        );
        assert_eq!(
            from_timeline(&missed).unwrap().what,
            "schedule nightly missed a run: host offline"
        );
    }

    #[test]
    fn a_command_end_is_a_failure_a_success_or_nothing() {
        let mut c = CommandRecord {
            id: "c1".into(),
            node_id: "n1".into(),
            op: Op::Action {
                name: "false".into(),
                args: Default::default(),
            },
            summary: "action false".into(),
            actor: "admin".into(),
            actor_kind: "user".into(),
            role_needed: crate::store::Role::Operator,
            status: Status::Failed,
            exit_code: Some(1),
            error: None,
            started_ms: 0,
            ended_ms: Some(1),
            duration_ms: Some(1),
            truncated: false,
        };
        let h = from_command(&c).unwrap();
        assert_eq!((h.kind, h.failed), (Kind::CommandFailed, true));
        assert_eq!(h.what, "command `action false` failed, exit code 1");
        c.status = Status::Ok;
        c.exit_code = Some(0);
        assert!(!from_command(&c).unwrap().failed, "a success resolves");
        c.status = Status::Cancelled;
        assert_eq!(from_command(&c), None);
        c.op = Op::Backup {
            job: "nightly".into(),
            source: BackupSource::Dir {
                path: "/srv".into(),
                exclude: Vec::new(),
            },
            keep: None,
        };
        c.status = Status::Failed;
        c.error = Some("the store refused it".into());
        let h = from_command(&c).unwrap();
        assert_eq!(
            (h.kind, h.subject.as_str()),
            (Kind::BackupFailed, "nightly")
        );
        assert_eq!(h.what, "backup nightly failed: the store refused it");
    }
}
