//! How risky a change to a watched configuration file is, and what it touches.
//!
//! [`assess`] is pure: two versions of one file (either may be absent: the
//! file was created or deleted), the node's twin and the time of the change
//! in, an [`Assessment`] out. No I/O, no clock, no panics on any input.
//!
//! # How a change is read
//!
//! Content is **parsed and normalised before it is compared**, so a change
//! that only touches comments, whitespace, indentation, quoting or the order
//! of keys is [`Risk::Low`] with the single finding `content.format_only`.
//! Every rule that fires adds a [`Finding`] (its rule id, its risk and a short
//! sentence that never quotes a secret value); the assessment's risk is the
//! highest of its findings ([`Risk::Low`] when there are none).
//!
//! # The rules
//!
//! Any file:
//! - `file.world_writable` (**high**): the mode gained the "others may write"
//!   bit (`mode & 0o002`): anyone on the host can now change what runs.
//! - `file.mode` (low): any other change of the permission bits.
//! - `file.deleted` (**medium**): the file is gone; whatever reads it will
//!   find nothing at its next start.
//! - `file.created` (low): a new file; the rules below still run against an
//!   empty previous version, so a new compose file with a privileged service
//!   is high.
//! - `content.unseen` (**medium**): the content changed but only its hash is
//!   known (a secret file, too large or binary), so nothing could be checked.
//! - `parse.failed` (**medium**): a version could not be parsed as its kind;
//!   the change is summarised line by line (`content.lines`) instead.
//!
//! Compose files (compared service by service, YAML anchors and merge keys
//! expanded):
//! - **high**: `compose.port_public` a port published on all addresses
//!   (`"8080:80"`, `"0.0.0.0:8080:80"`, `"[::]:8080:80"`, a bare `"80"`), not
//!   on loopback; `compose.privileged` `privileged: true` added;
//!   `compose.host_namespace` `network_mode`, `pid` or `userns_mode` set to
//!   `host`; `compose.host_mount` a host path mounted among `/`, `/etc`
//!   (and `/etc/shadow`, `/etc/sudoers`), `/root`, `/boot`, `/run`,
//!   `/var/lib/docker`, `/var/lib/containers` or a container engine's socket
//!   (`docker.sock`, `podman.sock`, `containerd.sock`, `crio.sock`, …);
//!   `compose.cap_add` `ALL`, `SYS_ADMIN`, `SYS_MODULE`, `SYS_PTRACE`,
//!   `SYS_RAWIO` or `DAC_READ_SEARCH` added; `compose.security_opt` an
//!   `unconfined` profile or `label:disable` added, or `no-new-privileges`
//!   removed; `compose.user` the service's `user` became root (or was
//!   removed) where it was another user.
//! - **critical**: `compose.privileged_host_access` a service that is
//!   privileged *and* mounts `/` or an engine socket, when this change made
//!   it so: it owns the host.
//! - **medium**: `compose.image` image tag or digest changed;
//!   `compose.environment` a variable added, removed or changed (named, never
//!   its value: a redaction marker `«redacted:…»` that changed means the
//!   secret changed); `compose.env_file`; `compose.restart`;
//!   `compose.command` (`command` or `entrypoint`); `compose.port_address` a
//!   port published on one specific, non-loopback address;
//!   `compose.cap_add` any other capability; `compose.cap_drop` a dropped
//!   capability no longer dropped; `compose.security_opt` other changes;
//!   `compose.host_namespace` `ipc`, `uts` or `cgroup` set to `host`;
//!   `compose.user` another user; `compose.service_removed`;
//!   `compose.project_name` the top-level `name` changed.
//! - low: `compose.service_added` (the high rules still run on it),
//!   `compose.port_loopback`, `compose.port_removed`, `compose.volumes`
//!   (other mounts), `compose.privileged` removed, `compose.other` (any
//!   other key of a service, named), `compose.top_level` (`networks`,
//!   `volumes`, `secrets`, `configs`, …).
//!
//! systemd units and drop-ins (`[Service]` keys, `\` continuations joined,
//! empty assignments reset a list as systemd does):
//! - **high**: `unit.user_root` `User=root` (or `0`) where it was another
//!   user or unset, or `User=`/`DynamicUser=` removed where the service ran
//!   as another user; `unit.hardening` one of `NoNewPrivileges`,
//!   `ProtectSystem`, `ProtectHome`, `PrivateTmp`, `PrivateDevices`,
//!   `PrivateNetwork`, `PrivateUsers`, `ProtectKernelTunables`,
//!   `ProtectKernelModules`, `ProtectKernelLogs`, `ProtectControlGroups`,
//!   `ProtectClock`, `ProtectHostname`, `RestrictSUIDSGID`,
//!   `MemoryDenyWriteExecute`, `LockPersonality`, `RestrictRealtime`
//!   removed or weakened (`ProtectSystem=strict` → `full` is weaker);
//!   `unit.exec_privileged` an `Exec*=` command gaining `sudo`, `doas`,
//!   `pkexec` or `su`, or the `+`/`!` prefix that runs it with full
//!   privileges.
//! - **medium**: `unit.exec` an `Exec*=` command changed; `unit.restart`
//!   `Restart=` changed; `unit.environment` an `Environment=` variable
//!   added, removed or changed (named, never its value), or
//!   `EnvironmentFile=` changed; `unit.user` another non-root user.
//! - low: `unit.hardening` hardening added, `unit.other` any other key.
//!
//! nginx (a small tokenizer: directives, blocks, quotes, comments):
//! - **high**: `nginx.tls_removed` a server name that was served with TLS
//!   (`listen … ssl`, `listen … quic` or `ssl on`) no longer is;
//!   `nginx.certificate_removed` its `ssl_certificate` is gone;
//!   `nginx.autoindex` `autoindex on` added anywhere;
//!   `nginx.access_removed` `allow`, `deny`, `auth_basic` or `auth_request`
//!   removed from a server or location (or the location itself removed);
//!   `nginx.root_proxy` `location /` of an existing server now proxies
//!   (`proxy_pass`) to another host than before.
//! - **medium**: `nginx.proxy_pass` any other `proxy_pass` change;
//!   `nginx.upstream` an `upstream` block changed or removed;
//!   `nginx.server_name`; `nginx.listen`; `nginx.certificate` a changed
//!   certificate path; `nginx.server_removed`.
//! - low: `nginx.server_added`, `nginx.upstream_added`, `nginx.other`.
//!
//! `.env` files: `env.secret` (**medium**) a secret-looking variable
//! (`PASSWORD`, `SECRET`, `TOKEN`, `KEY`, `CREDENTIAL`, `AUTH`, … in its
//! name, or a redacted value) added, removed or changed; `env.changed` (low)
//! other variables, named. YAML files: `yaml.secret` (**medium**) a changed
//! path whose keys look secret; `yaml.changed` (low) the changed top-level
//! keys. Other kinds (Caddyfiles included): `content.lines` (low), a count
//! of lines added and removed after trimming whitespace.
//!
//! # What it touches
//!
//! [`Assessment::affected`] names the compose services whose definition
//! changed and the twin's containers running them (compose service label
//! equal, and the project equal to the file's `name:` or its folder's name,
//! or the container's `com.docker.compose.project.config_files` naming this
//! file); the twin's units whose `FragmentPath` or `DropInPaths` hold the
//! file (or, if the twin has none, the unit the path names); nginx server
//! names. [`Assessment::drift`] says where what runs is not what the file
//! now says: a container created before the change, a unit that needs
//! `daemon-reload`, or an active unit started before the change.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use twinbay_proto::model::{Container, FileKind, NodeState};

use super::{compose, kv, nginx, unit};

/// How much a change deserves attention, lowest first.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Formatting, comments, or changes that add no exposure.
    #[default]
    Low,
    /// A change of behaviour worth a look: image, command, environment, …
    Medium,
    /// A change that widens exposure or privilege.
    High,
    /// High-risk changes that together hand over the host.
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule that fired, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    /// A stable rule id, e.g. `compose.privileged` (see the module docs).
    pub rule: &'static str,
    pub risk: Risk,
    /// One human sentence; never a secret value.
    pub detail: String,
}

impl Finding {
    pub(super) fn new(rule: &'static str, risk: Risk, detail: impl Into<String>) -> Self {
        Finding {
            rule,
            risk,
            detail: detail.into(),
        }
    }
}

/// Something the change touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Affected {
    /// A compose service whose definition changed.
    ComposeService { name: String },
    /// A container of the twin that runs such a service.
    Container {
        id: String,
        name: String,
        service: String,
    },
    /// A unit of the twin (or the unit the path names) defined by the file.
    Unit { name: String },
    /// An nginx `server_name` whose server changed.
    ServerName { name: String },
}

/// Where what runs is not what the file now says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Drift {
    /// What drifted, e.g. `container web-1`.
    pub what: String,
    /// Why, and what to do about it.
    pub reason: String,
}

/// The verdict on one change of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Assessment {
    /// The highest risk among the findings; low without findings.
    pub risk: Risk,
    /// Every rule that fired, highest risk first.
    pub findings: Vec<Finding>,
    /// One short human line, e.g. `service web: privileged: true added; …`.
    pub summary: String,
    pub affected: Vec<Affected>,
    pub drift: Vec<Drift>,
}

/// One version of a file. `text` is `None` when only its hash is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileVersion<'a> {
    pub text: Option<&'a str>,
    /// Permission bits (`0o644`).
    pub mode: Option<u32>,
    pub sha256: Option<&'a str>,
}

impl<'a> FileVersion<'a> {
    /// A version whose text is known.
    pub fn text(text: &'a str) -> Self {
        FileVersion {
            text: Some(text),
            ..FileVersion::default()
        }
    }
}

/// What a kind-specific comparison found.
#[derive(Debug, Default)]
pub(super) struct Compared {
    pub findings: Vec<Finding>,
    /// Compose: the services whose definition changed; nginx: server names.
    pub subjects: Vec<String>,
    /// Compose: the project name the file sets (`name:`).
    pub project: Option<String>,
}

/// Rates the change of the file at `path` from `old` to `new` (`None`: the
/// file did not exist / no longer exists), against `twin`, the node's state
/// now; `changed_at_ms` is when the new version appeared (unix ms).
pub fn assess(
    kind: FileKind,
    path: &str,
    old: Option<&FileVersion>,
    new: Option<&FileVersion>,
    twin: &NodeState,
    changed_at_ms: i64,
) -> Assessment {
    let mut findings = Vec::new();
    let mut compared = Compared::default();
    let mut meaning_changed = false;

    if let Some(mode) = new.and_then(|n| n.mode) {
        let was = old.and_then(|o| o.mode);
        if mode & 0o002 != 0 && was.is_none_or(|w| w & 0o002 == 0) {
            findings.push(Finding::new(
                "file.world_writable",
                Risk::High,
                format!("mode {mode:o}: anyone on the host can now change this file"),
            ));
        } else if let Some(w) = was.filter(|w| *w != mode) {
            findings.push(Finding::new(
                "file.mode",
                Risk::Low,
                format!("mode {w:o} → {mode:o}"),
            ));
        }
    }

    match (old, new) {
        (None, None) => {}
        (Some(o), None) => {
            meaning_changed = true;
            findings.push(Finding::new(
                "file.deleted",
                Risk::Medium,
                "file deleted: whatever reads it finds nothing at its next start",
            ));
            if let Some(text) = o.text {
                compared = subjects_of(kind, text);
            }
        }
        (o, Some(n)) => {
            if o.is_none() {
                meaning_changed = true;
                findings.push(Finding::new("file.created", Risk::Low, "file created"));
            }
            let old_text = o.map_or(Some(""), |o| o.text);
            let same_hash =
                matches!((o.and_then(|o| o.sha256), n.sha256), (Some(a), Some(b)) if a == b);
            match (old_text, n.text) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => {
                    compared = compare(kind, a, b);
                    if compared.findings.is_empty() {
                        findings.push(Finding::new(
                            "content.format_only",
                            Risk::Low,
                            "only comments, whitespace or key order changed: the meaning did not",
                        ));
                    } else {
                        meaning_changed = true;
                    }
                }
                _ if same_hash || o.is_none() => {}
                _ => {
                    meaning_changed = true;
                    findings.push(Finding::new(
                        "content.unseen",
                        Risk::Medium,
                        "content changed, but only its hash is known: it could not be checked",
                    ));
                }
            }
        }
    }
    findings.append(&mut compared.findings);
    findings.sort_by_key(|f| std::cmp::Reverse(f.risk));
    let risk = findings.iter().map(|f| f.risk).max().unwrap_or_default();

    let mut affected = BTreeSet::new();
    let mut drift = Vec::new();
    match kind {
        FileKind::Compose if meaning_changed => {
            let project = compared.project.clone().or_else(|| project_from_path(path));
            for service in &compared.subjects {
                affected.insert(Affected::ComposeService {
                    name: service.clone(),
                });
                for c in twin.containers.values() {
                    if !runs_service(c, service, project.as_deref(), path) {
                        continue;
                    }
                    affected.insert(Affected::Container {
                        id: c.id.clone(),
                        name: c.name.to_string(),
                        service: service.clone(),
                    });
                    if c.created
                        .as_deref()
                        .and_then(rfc3339_ms)
                        .is_some_and(|t| t < changed_at_ms)
                    {
                        drift.push(Drift {
                            what: format!("container {}", c.name),
                            reason: format!(
                                "runs the definition of service {service} from before this change (recreate it)"
                            ),
                        });
                    }
                }
            }
        }
        FileKind::SystemdUnit => {
            let mut found = false;
            for u in twin.units.values() {
                let defines = u.fragment_path.as_deref() == Some(path)
                    || u.drop_in_paths.iter().any(|p| p == path);
                if !defines {
                    continue;
                }
                found = true;
                if meaning_changed {
                    affected.insert(Affected::Unit {
                        name: u.name.to_string(),
                    });
                }
                if u.need_daemon_reload {
                    drift.push(Drift {
                        what: format!("unit {}", u.name),
                        reason: "needs daemon-reload: systemd still holds the files as they were"
                            .into(),
                    });
                } else if meaning_changed
                    && u.active_state == "active"
                    && u.since
                        .is_some_and(|s| s.saturating_mul(1000) < changed_at_ms)
                {
                    drift.push(Drift {
                        what: format!("unit {}", u.name),
                        reason: "started before this change (restart it to apply)".into(),
                    });
                }
            }
            if !found
                && meaning_changed
                && let Some(name) = unit::name_from_path(path)
            {
                affected.insert(Affected::Unit { name });
            }
        }
        FileKind::Nginx if meaning_changed => {
            for name in &compared.subjects {
                affected.insert(Affected::ServerName { name: name.clone() });
            }
        }
        _ => {}
    }

    Assessment {
        risk,
        summary: summary(&findings),
        findings,
        affected: affected.into_iter().collect(),
        drift,
    }
}

/// The kind-specific comparison, or a line summary when a version does not
/// parse.
fn compare(kind: FileKind, old: &str, new: &str) -> Compared {
    let parsed = match kind {
        FileKind::Compose => compose::compare(old, new),
        FileKind::SystemdUnit => unit::compare(old, new),
        FileKind::Nginx => nginx::compare(old, new),
        FileKind::Env => kv::compare_env(old, new),
        FileKind::Yaml => kv::compare_yaml(old, new),
        FileKind::Caddy => return kv::compare_lines(old, new, true),
        FileKind::Other => return kv::compare_lines(old, new, false),
    };
    parsed.unwrap_or_else(|e| {
        let mut c = kv::compare_lines(old, new, false);
        c.findings.insert(
            0,
            Finding::new(
                "parse.failed",
                Risk::Medium,
                format!("could not parse: {e}"),
            ),
        );
        if c.findings.len() == 1 {
            c.findings.push(Finding::new(
                "content.lines",
                Risk::Low,
                "only whitespace changed",
            ));
        }
        c
    })
}

/// What a deleted version defined.
fn subjects_of(kind: FileKind, text: &str) -> Compared {
    match kind {
        FileKind::Compose => compose::subjects(text),
        FileKind::Nginx => nginx::subjects(text),
        _ => Compared::default(),
    }
}

/// The highest findings' details, joined; details about the same service or
/// server share its name (`service web: privileged: true added; image …`).
fn summary(findings: &[Finding]) -> String {
    const SHOWN: usize = 3;
    if findings.is_empty() {
        return "no change".into();
    }
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in findings.iter().take(SHOWN) {
        let d = f.detail.as_str();
        let (prefix, rest) = match d.split_once(": ") {
            Some((p, r)) if p.starts_with("service ") || p.starts_with("server ") => (p, r),
            _ => ("", d),
        };
        match groups
            .iter_mut()
            .find(|(p, _)| !p.is_empty() && *p == prefix)
        {
            Some((_, items)) => items.push(rest),
            None => groups.push((prefix, vec![rest])),
        }
    }
    let mut s = groups
        .iter()
        .map(|(prefix, items)| {
            let items = items.join("; ");
            if prefix.is_empty() {
                items
            } else {
                format!("{prefix}: {items}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    if findings.len() > SHOWN {
        s.push_str(&format!("; and {} more", findings.len() - SHOWN));
    }
    s
}

/// Whether container `c` runs `service` of this file's project.
fn runs_service(c: &Container, service: &str, project: Option<&str>, path: &str) -> bool {
    let label = |k: &str| c.labels.get(k).map(|v| v.as_str());
    let c_service = c
        .compose_service
        .as_deref()
        .or_else(|| label("com.docker.compose.service"));
    if c_service != Some(service) {
        return false;
    }
    // Compose writes the files as given: absolute, or relative to working_dir.
    let dir = label("com.docker.compose.project.working_dir");
    if label("com.docker.compose.project.config_files").is_some_and(|files| {
        files.split(',').map(str::trim).any(|f| {
            f == path || dir.is_some_and(|d| format!("{}/{f}", d.trim_end_matches('/')) == path)
        })
    }) {
        return true;
    }
    let c_project = c
        .compose_project
        .as_deref()
        .or_else(|| label("com.docker.compose.project"));
    matches!((c_project, project), (Some(a), Some(b)) if a == b)
}

/// Compose's default project name: the file's folder name, lowercased, with
/// only `a-z0-9_-` kept.
fn project_from_path(path: &str) -> Option<String> {
    let dir = path.rsplit_once('/')?.0;
    let base = dir.rsplit('/').next()?;
    let name: String = base
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Unix milliseconds of an RFC 3339 time (`2024-05-01T10:00:00.123456789Z`,
/// `…+02:00`); `None` if it is not one.
pub(super) fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests;
