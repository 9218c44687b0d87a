//! The audit trail: who did what, to what, from where, and how it ended.
//!
//! Append-only (SQLite triggers refuse UPDATE and DELETE) and hash-chained:
//! each entry's hash covers its own fields and the previous entry's hash, so
//! editing, removing or reordering a row breaks the chain at that row, and
//! [`Verifier`] names it. This module is the pure part (hashing, checking); the
//! storage interface is `audit/trail.rs`, the SQL `sql/queries/audit.rs`.
//!
//! A chain cut short at its end (the newest rows deleted) still verifies, so
//! the head is anchored outside the database: [`anchor`] keeps the last head
//! in `DATA_DIR/audit.head` and checks it at start, and [`head`] signs a head
//! for an admin to keep elsewhere and check later (`--expect-head`).

pub mod anchor;
pub mod head;
mod trail;

pub use trail::*;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Principal, PrincipalKind};

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
    /// The hub itself (e.g. finding the trail cut at start).
    Hub,
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
            ActorKind::Hub => "hub",
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
    #[error("the expected head {expected} is not in the chain ({}): its tail was cut or replaced", ends(.last))]
    Cut {
        expected: Expected,
        /// The chain's own head (id and hash), if it has entries.
        last: Option<(i64, String)>,
    },
}

fn ends(last: &Option<(i64, String)>) -> String {
    match last {
        Some((id, hash)) => format!("it ends at #{id} sha256:{hash}"),
        None => "it has no entries".into(),
    }
}

impl Broken {
    /// The first entry that cannot be trusted.
    pub fn id(&self) -> i64 {
        match self {
            Broken::Missing { id, .. } | Broken::Unlinked { id, .. } | Broken::Changed { id } => {
                *id
            }
            Broken::Cut { last, .. } => last.as_ref().map_or(1, |(id, _)| id + 1),
        }
    }
}

/// A head the chain must still contain: an entry's hash, and its id when
/// known. Entries after it are fine (the trail grew); its absence means the
/// tail was cut or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub id: Option<i64>,
    /// Lowercase hex SHA-256.
    pub hash: String,
}

impl Expected {
    /// `sha256:HEX` or `HEX` (64 hex digits, either case).
    pub fn parse(s: &str) -> Result<Expected, String> {
        let hex = s.trim();
        let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not an audit head (64 hex digits, optionally after sha256:)"
            ));
        }
        Ok(Expected {
            id: None,
            hash: hex.to_ascii_lowercase(),
        })
    }

    /// Whether `e` is this head.
    fn is(&self, id: i64, hash: &str) -> bool {
        self.hash == hash && self.id.is_none_or(|want| want == id)
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(id) = self.id {
            write!(f, "#{id} ")?;
        }
        write!(f, "sha256:{}", self.hash)
    }
}

/// A chain checked from its first entry on.
#[derive(Debug, Default)]
pub struct Verifier {
    count: u64,
    last: Option<(i64, String)>,
    expect: Option<Expected>,
    /// The expected head was seen (or is the genesis, which every chain has).
    found: bool,
}

impl Verifier {
    /// A verifier that also requires the chain to contain `head`.
    pub fn expecting(head: Expected) -> Verifier {
        let found = head.hash == GENESIS && head.id.is_none_or(|id| id == 0);
        Verifier {
            expect: Some(head),
            found,
            ..Verifier::default()
        }
    }

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
        if let Some(expect) = &self.expect {
            self.found |= expect.is(e.id, &e.hash);
        }
        self.last = Some((e.id, e.hash.clone()));
        Ok(())
    }

    /// Entries checked and the last one's id and hash, or [`Broken::Cut`]
    /// when an expected head was never seen.
    pub fn finish(self) -> Result<(u64, Option<(i64, String)>), Broken> {
        match self.expect {
            Some(expected) if !self.found => Err(Broken::Cut {
                expected,
                last: self.last,
            }),
            _ => Ok((self.count, self.last)),
        }
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
        verify_with(Verifier::default(), entries)
    }

    fn verify_with(mut v: Verifier, entries: &[Entry]) -> Result<u64, Broken> {
        for e in entries {
            v.check(e)?;
        }
        Ok(v.finish()?.0)
    }

    fn head_of(e: &Entry) -> Expected {
        Expected {
            id: Some(e.id),
            hash: e.hash.clone(),
        }
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

    #[test]
    fn a_cut_tail_verifies_alone_but_not_against_the_old_head() {
        let full = chain(5);
        let head = head_of(&full[4]);
        let cut = &full[..3];
        // The defect: without a head to compare, a cut chain is intact.
        assert_eq!(verify(cut), Ok(3));
        let err = verify_with(Verifier::expecting(head.clone()), cut).unwrap_err();
        assert_eq!(
            err,
            Broken::Cut {
                expected: head,
                last: Some((3, full[2].hash.clone())),
            }
        );
        assert_eq!(err.id(), 4);
        assert!(
            err.to_string().starts_with(&format!(
                "the expected head #5 sha256:{} is not in the chain (it ends at #3 sha256:",
                full[4].hash
            )),
            "{err}"
        );
        // An empty trail cannot hold any head but the genesis.
        assert!(matches!(
            verify_with(Verifier::expecting(head_of(&full[0])), &[]),
            Err(Broken::Cut { last: None, .. })
        ));
    }

    #[test]
    fn a_chain_that_grew_past_the_expected_head_verifies() {
        let c = chain(5);
        for e in &c {
            assert_eq!(verify_with(Verifier::expecting(head_of(e)), &c), Ok(5));
        }
        let by_hash = Expected::parse(&format!("sha256:{}", c[1].hash.to_uppercase())).unwrap();
        assert_eq!(verify_with(Verifier::expecting(by_hash), &c), Ok(5));
        let genesis = Expected::parse(GENESIS).unwrap();
        assert_eq!(verify_with(Verifier::expecting(genesis), &[]), Ok(0));
    }

    #[test]
    fn a_replaced_tail_does_not_contain_the_old_head() {
        let old = chain(5);
        // The same ids, rewritten from #4 on (a valid chain of its own).
        let mut replaced = old.clone();
        let mut prev = replaced[2].hash.clone();
        for e in &mut replaced[3..] {
            e.actor = "mallory".into();
            e.prev_hash = prev.clone();
            e.hash = recompute(e);
            prev = e.hash.clone();
        }
        assert_eq!(verify(&replaced), Ok(5));
        let err = verify_with(Verifier::expecting(head_of(&old[4])), &replaced).unwrap_err();
        assert!(matches!(err, Broken::Cut { .. }), "{err}");
        // A known hash at another id is not the head either.
        let mut moved = head_of(&old[2]);
        moved.id = Some(4);
        assert!(verify_with(Verifier::expecting(moved), &old).is_err());
    }

    #[test]
    fn an_expected_head_must_look_like_one() {
        assert!(Expected::parse("abc").is_err());
        assert!(Expected::parse(&"g".repeat(64)).is_err());
        assert!(Expected::parse(&format!("sha1:{}", "a".repeat(64))).is_err());
        assert_eq!(
            Expected::parse(&format!(" {} ", "A".repeat(64)))
                .unwrap()
                .hash,
            "a".repeat(64)
        );
    }
}
