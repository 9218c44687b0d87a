//! Commands in flight: routing them to the agent's link, collecting their
//! output for watchers, and recording how they end.
//!
//! Each agent session registers a sender here ([`Commands::attach`]); the
//! API hands a checked command to [`Commands::dispatch`], which sends it
//! down that link. Output chunks and the result come back through the link
//! ([`Commands::output`], [`Commands::finish`]) and are fanned out to every
//! watcher (a broadcast channel, with the output so far replayed to late
//! ones). When a link goes, its commands are marked lost at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};
use twinbay_proto::command::{Command, CommandResult, Op, OutputChunk, Status, Verb};
use twinbay_proto::message::HubMessage;

use crate::audit::{ActorKind, Outcome, Record};
use crate::lock;
use crate::store::{CommandRecord, Output, Store, now_ms};

/// Output the hub keeps per command, for late watchers and the history.
pub const KEEP_OUTPUT: usize = 256 * 1024;
/// Messages waiting for one agent's link.
const LINK_QUEUE: usize = 64;
/// Events a watcher may fall behind by before it misses some.
const WATCH_BUFFER: usize = 1024;

/// What a watcher sees.
#[derive(Debug, Clone)]
pub enum Watch {
    Output(Output),
    Done(Box<CommandRecord>),
}

struct Link {
    conn: u64,
    /// Boxed: a channel allocates its first block of 32 slots up front, once
    /// per connected agent, and a `HubMessage` inline is hundreds of bytes.
    tx: mpsc::Sender<Box<HubMessage>>,
}

struct Running {
    record: CommandRecord,
    output: Vec<Output>,
    kept: usize,
    events: broadcast::Sender<Watch>,
    /// Ended, and staying here until the store has its end, so no reader
    /// ever sees the stale `running` row.
    ended: bool,
    /// The hub replica that runs it, when not this one.
    owner: Option<String>,
}

/// A command as a watcher finds it.
pub struct Watched {
    pub record: CommandRecord,
    /// The output so far.
    pub output: Vec<Output>,
    /// What follows; `None` once it has ended (`record` is final then).
    pub rx: Option<broadcast::Receiver<Watch>>,
}

/// How long a command another replica ran stays readable here after its
/// end (that replica stores it meanwhile).
const REMOTE_END_KEPT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a command could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("the agent is not connected")]
    NotConnected,
    #[error("the agent's link is busy; try again")]
    Busy,
    #[error("the hub replica holding the agent's link: {0}")]
    Replica(String),
}

/// Whether `node_id`'s agent can take a command: its link is here, or on
/// another hub replica.
pub fn reachable(hub: &crate::HubState, node_id: &str) -> bool {
    hub.commands.is_attached(node_id)
        || hub
            .replicas
            .as_ref()
            .is_some_and(|r| r.owner_of(node_id).is_some())
}

/// Sends `cmd` (its `record` stored already) to its agent: down this hub's
/// link, or through the replica holding it, whose output and end reach this
/// hub's watchers as if the link were here.
pub async fn dispatch(
    hub: &crate::HubState,
    record: CommandRecord,
    cmd: Command,
) -> Result<(), DispatchError> {
    if !hub.commands.is_attached(&record.node_id)
        && let Some(replicas) = &hub.replicas
        && let Some(owner) = replicas.owner_of(&record.node_id)
    {
        return replicas
            .dispatch(&hub.commands, &owner, record, cmd)
            .await
            .map_err(DispatchError::Replica);
    }
    hub.commands.dispatch(record, cmd)
}

pub struct Commands {
    store: Store,
    /// The UI stream: every command's start and end go out on it.
    announce: Option<broadcast::Sender<axum::extract::ws::Utf8Bytes>>,
    /// Alert rules hear how each command ended (`alerts/events.rs`).
    alerts: Option<crate::alerts::events::Inbox>,
    links: Mutex<HashMap<String, Link>>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Cancels a command on the replica running it (set by `replicas.rs`).
    remote_cancel: std::sync::OnceLock<RemoteCancel>,
}

type RemoteCancel = Box<dyn Fn(&str, &str) + Send + Sync>;

impl Commands {
    pub fn new(store: Store) -> Commands {
        Commands {
            store,
            announce: None,
            alerts: None,
            links: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
            remote_cancel: std::sync::OnceLock::new(),
        }
    }

    /// Tells the UI stream (`{"type":"command","command":…}`) when a
    /// command starts and ends, so that lists of commands stay current
    /// without re-reading.
    pub fn announcing_on(
        mut self,
        stream: broadcast::Sender<axum::extract::ws::Utf8Bytes>,
    ) -> Commands {
        self.announce = Some(stream);
        self
    }

    /// Tells alert rules how each command ended.
    pub fn alerting(mut self, inbox: crate::alerts::events::Inbox) -> Commands {
        self.alerts = Some(inbox);
        self
    }

    fn announce(&self, record: &CommandRecord) {
        if let Some(stream) = &self.announce {
            let _ = stream.send(crate::twin::view::command_event(record));
        }
    }

    /// A new agent session for `node_id`: commands for it arrive on the receiver.
    pub fn attach(&self, node_id: &str, conn: u64) -> mpsc::Receiver<Box<HubMessage>> {
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        lock(&self.links).insert(node_id.to_string(), Link { conn, tx });
        rx
    }

    /// The session ended: its commands can never finish now, but for an
    /// agent's `update`, whose agent goes away on purpose and reports on its
    /// next link (docs/updates.md). Returns those updates' ids: the caller
    /// ends them with [`Commands::expire`] if the agent does not come back.
    pub fn detach(&self, node_id: &str, conn: u64) -> Vec<String> {
        {
            let mut links = lock(&self.links);
            if links.get(node_id).is_none_or(|l| l.conn != conn) {
                return Vec::new();
            }
            links.remove(node_id);
        }
        let (updates, lost): (Vec<_>, Vec<_>) = lock(&self.running)
            .values()
            .filter(|r| r.record.node_id == node_id && !r.ended)
            .map(|r| {
                let update = matches!(
                    r.record.op,
                    Op::Lifecycle {
                        verb: Verb::Update,
                        ..
                    }
                );
                (update, r.record.id.clone())
            })
            .partition(|(update, _)| *update);
        for (_, id) in lost {
            self.end(
                &id,
                Status::Lost,
                None,
                Some("the agent disconnected before the command ended".into()),
                false,
            );
        }
        updates.into_iter().map(|(_, id)| id).collect()
    }

    /// Ends `id` as lost if it still runs (an update whose agent never
    /// reported back).
    pub fn expire(&self, id: &str, reason: &str) {
        self.end(id, Status::Lost, None, Some(reason.to_string()), false);
    }

    /// Sends `msg` down `node_id`'s link; `false` if it is not connected or jammed.
    pub fn send(&self, node_id: &str, msg: HubMessage) -> bool {
        let tx = lock(&self.links).get(node_id).map(|l| l.tx.clone());
        tx.is_some_and(|tx| tx.try_send(Box::new(msg)).is_ok())
    }

    pub fn is_attached(&self, node_id: &str) -> bool {
        lock(&self.links).contains_key(node_id)
    }

    /// Registers `record` (already stored) and sends `cmd` to its agent.
    pub fn dispatch(&self, record: CommandRecord, cmd: Command) -> Result<(), DispatchError> {
        let tx = lock(&self.links)
            .get(&record.node_id)
            .map(|l| l.tx.clone())
            .ok_or(DispatchError::NotConnected)?;
        let id = record.id.clone();
        let announced = record.clone();
        lock(&self.running).insert(
            id.clone(),
            Running {
                record,
                output: Vec::new(),
                kept: 0,
                events: broadcast::channel(WATCH_BUFFER).0,
                ended: false,
                owner: None,
            },
        );
        tx.try_send(Box::new(HubMessage::Command(cmd)))
            .map_err(|e| {
                lock(&self.running).remove(&id);
                match e {
                    mpsc::error::TrySendError::Full(_) => DispatchError::Busy,
                    mpsc::error::TrySendError::Closed(_) => DispatchError::NotConnected,
                }
            })?;
        self.announce(&announced);
        Ok(())
    }

    /// Registers `record`, which another hub replica runs on its agent
    /// (`replicas.rs`): watched here as if local, stored by that replica.
    /// Its output and end come through the returned handle.
    pub fn register_remote(&self, record: CommandRecord, owner: &str) -> Remote {
        let announced = record.clone();
        lock(&self.running).insert(
            record.id.clone(),
            Running {
                record,
                output: Vec::new(),
                kept: 0,
                events: broadcast::channel(WATCH_BUFFER).0,
                ended: false,
                owner: Some(owner.to_string()),
            },
        );
        self.announce(&announced);
        Remote {
            running: self.running.clone(),
            announce: self.announce.clone(),
        }
    }

    /// Sets how a cancel reaches the replica running a command
    /// (`replicas.rs`: `f(owner, id)`).
    pub fn on_remote_cancel(&self, f: impl Fn(&str, &str) + Send + Sync + 'static) {
        let _ = self.remote_cancel.set(Box::new(f));
    }

    /// Asks the agent to stop a command; false if it is not running here.
    /// One that another replica runs is cancelled there, and its end comes
    /// back as its output does.
    pub fn cancel(&self, id: &str) -> bool {
        let Some((node_id, owner)) = lock(&self.running)
            .get(id)
            .filter(|r| !r.ended)
            .map(|r| (r.record.node_id.clone(), r.owner.clone()))
        else {
            return false;
        };
        if let (Some(owner), Some(forward)) = (owner, self.remote_cancel.get()) {
            forward(&owner, id);
            return true;
        }
        let tx = lock(&self.links).get(&node_id).map(|l| l.tx.clone());
        match tx {
            Some(tx) => {
                if tx
                    .try_send(Box::new(HubMessage::Cancel { id: id.to_string() }))
                    .is_err()
                {
                    // The link is gone or jammed: end it here; the agent
                    // stops it when its link drops.
                    self.end(id, Status::Cancelled, None, None, false);
                }
            }
            None => self.end(id, Status::Cancelled, None, None, false),
        }
        true
    }

    /// The command as the hub holds it (running, or ended and not yet
    /// stored); `None` means the store has the last word.
    pub fn watch(&self, id: &str) -> Option<Watched> {
        let running = lock(&self.running);
        let r = running.get(id)?;
        Some(Watched {
            record: r.record.clone(),
            output: r.output.clone(),
            rx: (!r.ended).then(|| r.events.subscribe()),
        })
    }

    pub fn running_record(&self, id: &str) -> Option<CommandRecord> {
        lock(&self.running).get(id).map(|r| r.record.clone())
    }

    /// Output from `node_id`'s agent. Chunks for commands that are not that
    /// agent's (or not running) are dropped.
    pub fn output(&self, node_id: &str, chunks: Vec<OutputChunk>) {
        let mut running = lock(&self.running);
        for chunk in chunks {
            let Some(r) = running.get_mut(&chunk.id) else {
                continue;
            };
            if r.record.node_id != node_id || r.ended {
                continue;
            }
            let out = Output {
                stream: chunk.stream,
                data: chunk.data,
            };
            let _ = r.events.send(Watch::Output(out.clone()));
            r.keep(out);
        }
    }

    /// The agent's result for one of its commands.
    pub fn finish(&self, node_id: &str, result: CommandResult) {
        let mine = lock(&self.running)
            .get(&result.id)
            .is_some_and(|r| r.record.node_id == node_id && !r.ended);
        if !mine || result.status == Status::Running {
            return;
        }
        self.end(
            &result.id,
            result.status,
            result.exit_code,
            result.error,
            result.truncated,
        );
    }

    /// Ends a running command: tells watchers, then stores and audits it.
    fn end(
        &self,
        id: &str,
        status: Status,
        exit_code: Option<i32>,
        error: Option<String>,
        truncated: bool,
    ) {
        let (record, output) = {
            let mut running = lock(&self.running);
            let Some(r) = running.get_mut(id).filter(|r| !r.ended) else {
                return;
            };
            r.ended = true;
            r.record.end(status, exit_code, error, now_ms());
            r.record.truncated |= truncated;
            let _ = r.events.send(Watch::Done(Box::new(r.record.clone())));
            (r.record.clone(), r.output.clone())
        };
        self.announce(&record);
        if let Some(alerts) = &self.alerts {
            alerts.command(&record);
        }
        let store = self.store.clone();
        let running = self.running.clone();
        tokio::spawn(async move {
            if let Err(e) = store.finish_command(&record, &output).await {
                tracing::error!(id = record.id, error = %crate::report(&e), "could not store a command's end");
            }
            let outcome = match record.status {
                Status::Ok => Outcome::Ok,
                Status::Refused => Outcome::Denied,
                _ => Outcome::Failed,
            };
            let mut detail = format!("{} {}: {}", record.id, record.summary, record.status);
            if let Some(code) = record.exit_code {
                detail.push_str(&format!(", exit code {code}"));
            }
            if let Some(e) = &record.error {
                detail.push_str(&format!(", {e}"));
            }
            let kind = match record.actor_kind.as_str() {
                "token" => ActorKind::Token,
                "scheduler" => ActorKind::Scheduler,
                "hub" => ActorKind::Hub,
                _ => ActorKind::User,
            };
            let audit = Record::new(kind, &record.actor, "command.end", outcome)
                .target(&format!("node:{}", record.node_id))
                .detail(&detail);
            if let Err(e) = store.audit(audit).await {
                tracing::error!(error = %crate::report(&e), "could not audit a command's end");
            }
            // Now the store has it all, its end audited too: readers may go there.
            lock(&running).remove(&record.id);
        });
    }
}

/// Where a command another replica runs reports to this hub's watchers.
#[derive(Clone)]
pub struct Remote {
    running: Arc<Mutex<HashMap<String, Running>>>,
    announce: Option<broadcast::Sender<axum::extract::ws::Utf8Bytes>>,
}

impl Remote {
    pub fn output(&self, id: &str, out: Output) {
        let mut running = lock(&self.running);
        if let Some(r) = running.get_mut(id).filter(|r| !r.ended) {
            let _ = r.events.send(Watch::Output(out.clone()));
            r.keep(out);
        }
    }

    /// The end: told to watchers here; the record leaves once the replica
    /// that ran it has surely stored it.
    pub fn end(&self, record: CommandRecord) {
        {
            let mut running = lock(&self.running);
            let Some(r) = running.get_mut(&record.id).filter(|r| !r.ended) else {
                return;
            };
            r.ended = true;
            r.record = record.clone();
            let _ = r.events.send(Watch::Done(Box::new(record.clone())));
        }
        if let Some(stream) = &self.announce {
            let _ = stream.send(crate::twin::view::command_event(&record));
        }
        let running = self.running.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REMOTE_END_KEPT).await;
            lock(&running).remove(&record.id);
        });
    }
}

impl Running {
    /// Keeps output up to [`KEEP_OUTPUT`] bytes, merging runs of one stream.
    fn keep(&mut self, out: Output) {
        if self.kept >= KEEP_OUTPUT {
            self.record.truncated = true;
            return;
        }
        let mut data = out.data;
        let room = KEEP_OUTPUT - self.kept;
        if data.len() > room {
            let mut cut = room;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
            self.record.truncated = true;
        }
        self.kept += data.len();
        if data.is_empty() {
            return;
        }
        match self.output.last_mut() {
            Some(last) if last.stream == out.stream => last.data.push_str(&data),
            _ => self.output.push(Output {
                stream: out.stream,
                data,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use twinbay_proto::command::{Op, Role, Stream, Target, TargetKind, Verb};

    use super::*;

    async fn setup(name: &str) -> (Store, Commands) {
        let dir =
            std::env::temp_dir().join(format!("twinbay-commands-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).await.unwrap();
        (store.clone(), Commands::new(store))
    }

    fn record(id: &str, node: &str) -> (CommandRecord, Command) {
        let op = Op::Lifecycle {
            target: Target {
                kind: TargetKind::Container,
                name: "web".into(),
            },
            verb: Verb::Logs,
            lines: None,
            follow: false,
            version: None,
            arch: None,
        };
        let record = CommandRecord {
            id: id.into(),
            node_id: node.into(),
            op: op.clone(),
            summary: op.summary(),
            actor: "alice".into(),
            actor_kind: "user".into(),
            role_needed: Role::Operator,
            status: Status::Running,
            exit_code: None,
            error: None,
            started_ms: now_ms(),
            ended_ms: None,
            duration_ms: None,
            truncated: false,
        };
        let cmd = Command {
            id: id.into(),
            role: Role::Operator,
            actor: "alice".into(),
            op,
        };
        (record, cmd)
    }

    fn chunk(id: &str, data: &str) -> OutputChunk {
        OutputChunk {
            id: id.into(),
            stream: Stream::Stdout,
            data: data.into(),
        }
    }

    #[tokio::test]
    async fn an_update_outlives_its_link_and_a_new_link_ends_it() {
        let (store, commands) = setup("update").await;
        let _link = commands.attach("n1", 1);
        let (logs, logs_cmd) = record("c1", "n1");
        let (mut up, mut up_cmd) = record("c2", "n1");
        up.op = Op::Lifecycle {
            target: Target {
                kind: TargetKind::Agent,
                name: String::new(),
            },
            verb: Verb::Update,
            lines: None,
            follow: false,
            version: Some("2.0.0".into()),
            arch: None,
        };
        up_cmd.op = up.op.clone();
        let update_op = up.op.clone();
        for (rec, cmd) in [(logs, logs_cmd), (up, up_cmd)] {
            store.insert_command(&rec).await.unwrap();
            commands.dispatch(rec, cmd).unwrap();
        }
        // The agent goes away to try its new binary.
        assert_eq!(commands.detach("n1", 1), vec!["c2".to_string()]);
        assert!(
            commands.watch("c1").is_none_or(|w| w.rx.is_none()),
            "the logs are lost"
        );
        assert_eq!(
            commands.running_record("c2").unwrap().status,
            Status::Running,
            "the update waits for its report"
        );
        // It comes back on a new link and reports.
        let _again = commands.attach("n1", 2);
        commands.finish(
            "n1",
            CommandResult {
                id: "c2".into(),
                status: Status::Ok,
                exit_code: Some(0),
                error: None,
                duration_ms: 0,
                truncated: false,
            },
        );
        let ended = commands.watch("c2").map(|w| w.record.status);
        assert!(matches!(ended, None | Some(Status::Ok)), "{ended:?}");
        // One that never reports is ended by expire.
        let (mut late, mut late_cmd) = record("c3", "n1");
        late.op = update_op.clone();
        late_cmd.op = update_op;
        store.insert_command(&late).await.unwrap();
        commands.dispatch(late, late_cmd).unwrap();
        assert_eq!(commands.detach("n1", 2), vec!["c3".to_string()]);
        commands.expire("c3", "gone");
        let w = commands.watch("c3");
        assert!(
            w.as_ref().is_none_or(|w| w.record.status == Status::Lost),
            "{:?}",
            w.map(|w| w.record.status)
        );
    }

    #[tokio::test]
    async fn routes_output_only_from_the_commands_own_agent() {
        let (store, commands) = setup("route").await;
        assert!(matches!(
            commands.dispatch(record("c1", "n1").0, record("c1", "n1").1),
            Err(DispatchError::NotConnected)
        ));
        let mut link = commands.attach("n1", 7);
        let _other = commands.attach("n2", 8);
        let (rec, cmd) = record("c1", "n1");
        store.insert_command(&rec).await.unwrap();
        commands.dispatch(rec, cmd).unwrap();
        assert!(
            matches!(link.recv().await.as_deref(), Some(HubMessage::Command(c)) if c.id == "c1")
        );

        commands.output("n1", vec![chunk("c1", "one ")]);
        // A late watcher gets what came before, then what follows.
        let watched = commands.watch("c1").unwrap();
        assert_eq!(watched.output[0].data, "one ");
        let mut rx = watched.rx.unwrap();
        commands.output("n2", vec![chunk("c1", "forged")]);
        commands.finish(
            "n2",
            CommandResult {
                id: "c1".into(),
                status: Status::Ok,
                exit_code: Some(0),
                error: None,
                duration_ms: 1,
                truncated: false,
            },
        );
        assert_eq!(
            commands.running_record("c1").unwrap().status,
            Status::Running,
            "another node cannot end it"
        );
        commands.output("n1", vec![chunk("c1", "two")]);
        commands.finish(
            "n1",
            CommandResult {
                id: "c1".into(),
                status: Status::Ok,
                exit_code: Some(0),
                error: None,
                duration_ms: 1,
                truncated: false,
            },
        );
        assert!(matches!(rx.recv().await, Ok(Watch::Output(o)) if o.data == "two"));
        match rx.recv().await {
            Ok(Watch::Done(r)) => assert_eq!((r.status, r.exit_code), (Status::Ok, Some(0))),
            other => panic!("{other:?}"),
        }
        // Until the store has its end, the hub still holds it, ended.
        if let Some(w) = commands.watch("c1") {
            assert_eq!(w.record.status, Status::Ok);
            assert!(w.rx.is_none());
            assert_eq!(w.output[0].data, "one two");
        }
        // Stored with its output, once the spawned write lands.
        for _ in 0..50 {
            if let Some((r, out)) = store.command("c1").await.unwrap()
                && r.status == Status::Ok
            {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].data, "one two");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the command's end was not stored");
    }

    #[tokio::test]
    async fn a_dropped_link_loses_its_commands_but_not_a_newer_links() {
        let (store, commands) = setup("lost").await;
        let _old = commands.attach("n1", 1);
        let (rec, cmd) = record("c2", "n1");
        store.insert_command(&rec).await.unwrap();
        commands.dispatch(rec, cmd).unwrap();
        let mut rx = commands.watch("c2").unwrap().rx.unwrap();
        // A newer session replaced the old one: the old one's end changes nothing.
        let _new = commands.attach("n1", 2);
        commands.detach("n1", 1);
        assert!(commands.is_attached("n1"));
        assert_eq!(
            commands.running_record("c2").unwrap().status,
            Status::Running
        );
        commands.detach("n1", 2);
        match rx.recv().await {
            Ok(Watch::Done(r)) => assert_eq!(r.status, Status::Lost),
            other => panic!("{other:?}"),
        }
        assert!(!commands.cancel("c2"), "nothing left to cancel");
    }

    #[test]
    fn keeps_output_up_to_the_limit() {
        let mut r = Running {
            record: record("c3", "n1").0,
            output: Vec::new(),
            kept: 0,
            events: broadcast::channel(4).0,
            ended: false,
            owner: None,
        };
        r.keep(Output {
            stream: Stream::Stdout,
            data: "x".repeat(KEEP_OUTPUT - 1),
        });
        r.keep(Output {
            stream: Stream::Stderr,
            data: "€€".into(),
        });
        assert!(r.record.truncated);
        assert_eq!(r.kept, KEEP_OUTPUT - 1);
        assert_eq!(
            r.output.len(),
            1,
            "no room for a whole character of the stderr piece"
        );
    }
}
