//! Every MCP tool call in the hash-chained audit trail: who (token or
//! user), from where (address, user agent), which client (MCP client info),
//! the tool and its arguments (secrets redacted), how it ended and how long
//! it took. Reads are `mcp.read` (the UI can filter them out), acts
//! `mcp.<tool>`.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, JsonObject};
use serde_json::Value;

use super::Caller;
use crate::HubState;
use crate::audit::{Outcome, Record};

/// Tools that change something: audited under their own name (before the
/// answer), not listed to a read-only token. The same set as
/// `McpServer::act_set` (a test checks).
pub const ACTS: &[&str] = &[
    "run_command",
    "acknowledge_alert",
    "silence_alert",
    "run_schedule_now",
];

/// Argument names whose values never reach the audit trail.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "key",
        "credential",
        "auth",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// `arguments` with secret-looking values replaced, recursively.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match is_secret(k) && !v.is_object() {
                        true => Value::String("«redacted»".into()),
                        false => redact(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The audit action for a call of `tool`.
pub fn action(tool: &str) -> String {
    match ACTS.contains(&tool) {
        true => format!("mcp.{tool}"),
        false => "mcp.read".into(),
    }
}

/// What the caller was told, as an outcome and a short reason.
fn outcome(result: &Result<CallToolResponse, ErrorData>) -> (Outcome, String) {
    match result {
        Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => {
            let text = r
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.chars().take(300).collect::<String>())
                .unwrap_or_default();
            let denied = ["forbidden:", "unauthorized:", "too many requests:"]
                .iter()
                .any(|p| text.starts_with(p));
            let outcome = if denied {
                Outcome::Denied
            } else {
                Outcome::Failed
            };
            (outcome, text)
        }
        Ok(_) => (Outcome::Ok, String::new()),
        Err(e) => (Outcome::Failed, e.message.chars().take(300).collect()),
    }
}

/// The audit entry for one tool call.
pub fn entry(
    caller: &Caller,
    tool: &str,
    arguments: Option<&JsonObject>,
    result: &Result<CallToolResponse, ErrorData>,
    took: Duration,
    known: bool,
) -> Record {
    let args = arguments
        .map(|a| redact(&Value::Object(a.clone())))
        .unwrap_or(Value::Object(Default::default()));
    let id = args.get("id").and_then(Value::as_i64);
    let target = match (tool, id) {
        ("acknowledge_alert", Some(id)) => format!("alert:{id}"),
        ("run_schedule_now", Some(id)) => format!("schedule:{id}"),
        _ => args
            .get("node")
            .and_then(Value::as_str)
            .map(|n| format!("node:{n}"))
            .unwrap_or_default(),
    };
    let tool_shown: String = match known {
        true => tool.to_string(),
        false => tool.chars().take(64).collect(),
    };
    let (outcome, why) = outcome(result);
    let client = match caller.client.is_empty() {
        true => "-",
        false => &caller.client,
    };
    let mut detail = format!(
        "tool={tool_shown} client={client} duration_ms={:.2}",
        took.as_secs_f64() * 1000.0
    );
    if !why.is_empty() {
        detail.push_str(&format!(" error={why}"));
    }
    detail.push_str(&format!(" args={args}"));
    let action = match known {
        true => action(tool),
        false => "mcp.read".into(),
    };
    Record::by(&caller.who, &action, outcome)
        .client(&caller.address, &caller.user_agent)
        .target(&target)
        .detail(&detail)
}

/// Read entries waiting for the store at most; past that, a read waits for
/// room (the answer is never sent with its entry dropped).
pub const QUEUED: usize = 1024;
/// Entries written in one transaction at most.
const BATCH: usize = 256;

/// The read entries' way to the audit trail: a bounded queue that one task
/// writes in order, every entry waiting at that moment in one transaction.
/// A read does not wait for the store's one writer (which may be busy with
/// a large fleet's history), and a busy store gets one commit for many
/// reads instead of a transaction (and a task) per read.
pub struct Queue {
    tx: tokio::sync::mpsc::Sender<Record>,
}

impl Queue {
    /// The queue and its writer; the writer flushes what is queued and ends
    /// when the hub shuts down.
    pub fn start(hub: Arc<HubState>) -> Queue {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUED);
        tokio::spawn(drain(hub, rx));
        Queue { tx }
    }

    /// Queues `entry`; waits only while [`QUEUED`] entries are waiting.
    pub async fn push(&self, hub: &HubState, entry: Record) {
        use tokio::sync::mpsc::error::TrySendError;
        let entry = match self.tx.try_send(entry) {
            Ok(()) => return,
            Err(TrySendError::Full(entry)) => match self.tx.send(entry).await {
                Ok(()) => return,
                Err(closed) => closed.0,
            },
            Err(TrySendError::Closed(entry)) => entry,
        };
        // The writer has stopped (the hub is shutting down): write it here.
        write(hub, entry).await;
    }
}

async fn drain(hub: Arc<HubState>, mut rx: tokio::sync::mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut closing = false;
    loop {
        let n = tokio::select! {
            biased;
            _ = hub.shutdown.cancelled(), if !closing => {
                // Take no more; write what is queued, then stop.
                rx.close();
                closing = true;
                continue;
            }
            n = rx.recv_many(&mut batch, BATCH) => n,
        };
        if n == 0 {
            return;
        }
        if let Err(e) = hub.store.audit_many(&batch).await {
            tracing::error!(error = %crate::report(&e), entries = batch.len(), "could not audit MCP reads");
        }
        batch.clear();
    }
}

pub async fn write(hub: &HubState, entry: Record) {
    if let Err(e) = hub.store.audit(entry).await {
        tracing::error!(error = %crate::report(&e), "could not audit an MCP call");
    }
}
