//! The audit trail: who did what, to what, from where, and how it ended.
//!
//! Append-only (SQLite triggers refuse UPDATE and DELETE) and hash-chained:
//! each entry's hash covers its own fields and the previous entry's hash, so
//! editing, removing or reordering a row breaks the chain at that row, and
//! [`verify`] names it. This module is the pure part (hashing, checking); the
//! SQL is in `store/audit.rs`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Principal, PrincipalKind};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Token,
    Agent,
    Scheduler,
    /// `twinbay ctl` on the data dir.
    Cli,
    /// Nobody known yet (a failed sign-in names who it tried to be).
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Token => "token",
            ActorKind::Agent => "agent",
            ActorKind::Scheduler => "scheduler",
            ActorKind::Cli => "cli",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Refused before anything was done (wrong password, locked out, no permission).
    Denied,
    /// Tried and failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// What a caller records; the store adds id, time and the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub actor: String,
    pub actor_kind: ActorKind,
    /// The client's address, empty when there is none (the CLI).
    pub address: String,
    pub user_agent: String,
    /// Dotted verb, e.g. `session.sign_in`, `api_token.create`, `node.enroll`.
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    /// Anything else worth keeping (a role, a reason), short.
    pub detail: String,
}

impl Record {
    pub fn new(actor_kind: ActorKind, actor: &str, action: &str, outcome: Outcome) -> Record {
        Record {
            actor: escape(actor, 256),
            actor_kind,
            address: String::new(),
            user_agent: String::new(),
            action: action.to_string(),
            target: String::new(),
            outcome,
            detail: String::new(),
        }
    }

    /// A record of what a signed-in user or an API token did.
    pub fn by(who: &Principal, action: &str, outcome: Outcome) -> Record {
        match &who.kind {
            PrincipalKind::User { username, .. } => {
                Record::new(ActorKind::User, username, action, outcome)
            }
            PrincipalKind::Token { id } => {
                Record::new(ActorKind::Token, &format!("token:{id}"), action, outcome)
            }
        }
    }

    pub fn target(mut self, target: &str) -> Record {
        self.target = escape(target, 256);
        self
    }

    pub fn detail(mut self, detail: &str) -> Record {
        self.detail = escape(detail, 1024);
        self
    }

    pub fn client(mut self, address: &str, user_agent: &str) -> Record {
        self.address = escape(address, 64);
        // A user agent is the client's to choose: keep it short.
        self.user_agent = escape(user_agent, 256);
        self
    }
}

/// What a client chose (a name it tried to sign in as, its user agent) as
/// stored and shown: at most `max` characters, with control characters and
/// the bidirectional overrides that reorder text on screen written as
/// `\u{..}`, so a terminal or a page shows exactly what was sent and no
/// entry can forge a line or hide its end.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().take(max) {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi || c == '\\' {
            match c {
                '\\' => out.push_str("\\\\"),
                c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// 1, 2, 3, … without gaps.
    pub id: i64,
    /// Unix milliseconds.
    pub ts: i64,
    pub actor: String,
    pub actor_kind: String,
    pub address: String,
    pub user_agent: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry with these fields after `prev_hash` (hex SHA-256 of
/// the previous hash and a JSON array of the fields).
pub fn entry_hash(prev_hash: &str, id: i64, ts: i64, r: &Record) -> String {
    hash_fields(
        prev_hash,
        id,
        ts,
        [
            r.actor.as_str(),
            r.actor_kind.as_str(),
            &r.address,
            &r.user_agent,
            &r.action,
            &r.target,
            r.outcome.as_str(),
            &r.detail,
        ],
    )
}

fn hash_fields(prev_hash: &str, id: i64, ts: i64, fields: [&str; 8]) -> String {
    let body = serde_json::to_vec(&(1, id, ts, fields)).expect("strings serialize");
    hex::encode(
        Sha256::new()
            .chain_update(prev_hash.as_bytes())
            .chain_update(&body)
            .finalize(),
    )
}

fn recompute(e: &Entry) -> String {
    hash_fields(
        &e.prev_hash,
        e.id,
        e.ts,
        [
            &e.actor,
            &e.actor_kind,
            &e.address,
            &e.user_agent,
            &e.action,
            &e.target,
            &e.outcome,
            &e.detail,
        ],
    )
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("entry #{id} is missing (the next one is #{found})")]
    Missing { id: i64, found: i64 },
    #[error("entry #{id} does not follow entry #{prev}: its previous hash is not #{prev}'s hash")]
    Unlinked { id: i64, prev: i64 },
    #[error("entry #{id} was changed: its hash does not match its contents")]
    Changed { id: i64 },
}

impl Broken {
    /// The first entry that cannot be trusted.
    pub fn id(&self) -> i64 {
        match self {
            Broken::Missing { id, .. } | Broken::Unlinked { id, .. } | Broken::Changed { id } => {
                *id
            }
        }
    }
}

/// A chain checked from its first entry on.
#[derive(Debug, Default)]
pub struct Verifier {
    count: u64,
    last: Option<(i64, String)>,
}

impl Verifier {
    /// Checks the next entry (in id order).
    pub fn check(&mut self, e: &Entry) -> Result<(), Broken> {
        let (expected_id, expected_prev) = match &self.last {
            None => (1, GENESIS),
            Some((id, hash)) => (id + 1, hash.as_str()),
        };
        if e.id != expected_id {
            return Err(Broken::Missing {
                id: expected_id,
                found: e.id,
            });
        }
        if e.prev_hash != expected_prev {
            return Err(Broken::Unlinked {
                id: e.id,
                prev: e.id - 1,
            });
        }
        if recompute(e) != e.hash {
            return Err(Broken::Changed { id: e.id });
        }
        self.count += 1;
        self.last = Some((e.id, e.hash.clone()));
        Ok(())
    }

    /// Entries checked, and the last one's id and hash (to write down
    /// elsewhere: a chain cut short at its end still verifies).
    pub fn finish(self) -> (u64, Option<(i64, String)>) {
        (self.count, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_chose_is_stored_escaped() {
        let r = Record::new(
            ActorKind::Anonymous,
            "evil\nadmin\u{1b}[31m\u{202e}txt.exe",
            "session.sign_in",
            Outcome::Denied,
        )
        .client("192.0.2.1", "Mozilla/5.0 (Größe; \u{7})");
        assert_eq!(r.actor, "evil\\u{a}admin\\u{1b}[31m\\u{202e}txt.exe");
        assert!(!r.actor.chars().any(char::is_control));
        // Non-ASCII text is kept; only control characters are escaped.
        assert_eq!(r.user_agent, "Mozilla/5.0 (Größe; \\u{7})");
        // An escape cannot be forged: a literal backslash is doubled.
        assert_eq!(escape("a\\u{a}", 20), "a\\\\u{a}");
        assert_eq!(escape(&"x".repeat(300), 256).len(), 256);
    }

    fn chain(n: i64) -> Vec<Entry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let r = Record::new(ActorKind::User, "admin", "session.sign_in", Outcome::Ok)
                    .client("127.0.0.1", "curl/8");
                let hash = entry_hash(&prev, id, 1000 + id, &r);
                let e = Entry {
                    id,
                    ts: 1000 + id,
                    actor: r.actor,
                    actor_kind: r.actor_kind.as_str().into(),
                    address: r.address,
                    user_agent: r.user_agent,
                    action: r.action,
                    target: r.target,
                    outcome: r.outcome.as_str().into(),
                    detail: r.detail,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[Entry]) -> Result<u64, Broken> {
        let mut v = Verifier::default();
        for e in entries {
            v.check(e)?;
        }
        Ok(v.finish().0)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].outcome = "denied".into();
        assert_eq!(verify(&c), Err(Broken::Changed { id: 3 }));
    }

    #[test]
    fn an_edit_that_also_rewrites_the_hash_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        c[2].hash = recompute(&c[2]);
        assert_eq!(verify(&c), Err(Broken::Unlinked { id: 4, prev: 3 }));
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c), Err(Broken::Missing { id: 2, found: 3 }));
    }
}
