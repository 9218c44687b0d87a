//! Commands: what the hub asks an agent to do, what the agent allows, and
//! the checks both sides run on it.
//!
//! A command is either a lifecycle verb on a managed thing ([`Op::Lifecycle`])
//! or a named action from the agent's policy ([`Op::Action`]). The agent's
//! [`Policy`] is the last word: the hub checks the same rules first (so a
//! refusal is quick and clear), and the agent checks them again, so a hub
//! that lies still cannot run anything the policy does not name. Arguments
//! are bound into an argv ([`ActionSpec::bind`]); nothing goes through a shell.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

mod args;
use crate::backup::{
    BackupPolicy, BackupSource, Keep, MAX_EXCLUDES, RestoreTarget, valid_volume_name,
};

/// What a person or token may do, and so which commands it may run.
/// Ordered: each role can do what those below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// What kind of thing a lifecycle verb acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Container,
    Unit,
    UserUnit,
    Agent,
}

impl TargetKind {
    pub const ALL: [TargetKind; 4] = [
        TargetKind::Container,
        TargetKind::Unit,
        TargetKind::UserUnit,
        TargetKind::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Container => "container",
            TargetKind::Unit => "unit",
            TargetKind::UserUnit => "user_unit",
            TargetKind::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<TargetKind> {
        TargetKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || (*k == TargetKind::UserUnit && s == "user-unit"))
    }
}

/// The thing a verb acts on: a container (name or id), a unit, or the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    pub kind: TargetKind,
    /// Ignored for the agent.
    #[serde(default)]
    pub name: String,
}

/// The verbs every managed thing answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Status,
    Version,
    Logs,
    Start,
    Stop,
    Restart,
    /// Install a signed release (the agent only; docs/updates.md).
    Update,
}

impl Verb {
    pub const ALL: [Verb; 7] = [
        Verb::Status,
        Verb::Version,
        Verb::Logs,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Update,
    ];

    /// The verbs containers and units answer (all but `update`).
    pub const MANAGED: [Verb; 6] = [
        Verb::Status,
        Verb::Version,
        Verb::Logs,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Status => "status",
            Verb::Version => "version",
            Verb::Logs => "logs",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Update => "update",
        }
    }

    pub fn parse(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The least role that may use the verb: reading state is for viewers;
    /// logs (they often hold secrets) and changes are for operators.
    pub fn min_role(self) -> Role {
        match self {
            Verb::Status | Verb::Version => Role::Viewer,
            Verb::Logs | Verb::Start | Verb::Stop | Verb::Restart | Verb::Update => Role::Operator,
        }
    }
}

/// Most lines `logs` may ask for.
pub const MAX_LOG_LINES: u32 = 10_000;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Lifecycle {
        target: Target,
        verb: Verb,
        /// For `logs`: how many past lines (default 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<u32>,
        /// For `logs`: keep streaming new lines until cancelled.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        follow: bool,
        /// For `update`: the release's version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// For `update`: the release's architecture (default: the agent's own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arch: Option<String>,
    },
    Action {
        name: String,
        /// Strings, numbers or booleans; each checked by the action's own
        /// argument schema.
        #[serde(default, deserialize_with = "args::deserialize")]
        #[cfg_attr(feature = "openapi", schema(schema_with = args::openapi_schema))]
        args: BTreeMap<String, String>,
    },
    /// Produce an artifact on the host and stream it to the hub (see
    /// [`crate::backup`]). Only agents whose policy has a `backup` section
    /// or a producer action accept one, so an older agent is never sent it.
    Backup {
        /// The job the artifact belongs to (its retention group on the hub).
        job: String,
        source: BackupSource,
        /// How many of this job's backups the hub keeps from now on; absent
        /// leaves the job's rules as they are (a new job keeps all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep: Option<Keep>,
    },
    /// Stream a stored backup back to the host, into a consumer.
    Restore {
        backup_id: String,
        target: RestoreTarget,
    },
}

impl Op {
    /// One line for history and audit, e.g. `restart container web`.
    pub fn summary(&self) -> String {
        match self {
            Op::Lifecycle {
                target,
                verb,
                follow,
                version,
                ..
            } => {
                let what = match target.kind {
                    TargetKind::Agent => "agent".to_string(),
                    kind => format!("{} {}", kind.as_str().replace('_', " "), target.name),
                };
                let follow = if *follow { " (follow)" } else { "" };
                let to = version
                    .as_deref()
                    .map(|v| format!(" to {v}"))
                    .unwrap_or_default();
                format!("{} {what}{follow}{to}", verb.as_str())
            }
            Op::Action { name, args } => {
                let mut s = format!("action {name}");
                for (k, v) in args {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
            Op::Backup { job, source, .. } => format!("backup {job}: {}", source.summary()),
            Op::Restore { backup_id, target } => {
                format!("restore {backup_id} into {}", target.summary())
            }
        }
    }

    /// The shape checks that need no policy: target names, line counts,
    /// `follow` only with `logs`.
    pub fn check_shape(&self) -> Result<(), Refusal> {
        match self {
            Op::Lifecycle {
                target,
                verb,
                lines,
                follow,
                version,
                arch,
            } => {
                check_target_name(target)?;
                if *verb == Verb::Update {
                    if target.kind != TargetKind::Agent {
                        return Err(Refusal::BadRequest(
                            "update goes only with the agent (target kind agent)".into(),
                        ));
                    }
                    let Some(version) = version else {
                        return Err(Refusal::BadRequest(
                            "update needs the release's version".into(),
                        ));
                    };
                    crate::release::check_version(version)
                        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
                    if let Some(arch) = arch {
                        crate::release::check_arch(arch)
                            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
                    }
                } else if version.is_some() || arch.is_some() {
                    return Err(Refusal::BadRequest(
                        "version and arch go only with the update verb".into(),
                    ));
                }
                if lines.is_some_and(|n| n > MAX_LOG_LINES) {
                    return Err(Refusal::BadRequest(format!(
                        "lines must be at most {MAX_LOG_LINES}"
                    )));
                }
                if (*follow || lines.is_some()) && *verb != Verb::Logs {
                    return Err(Refusal::BadRequest(
                        "lines and follow go only with the logs verb".into(),
                    ));
                }
                Ok(())
            }
            Op::Action { name, .. } if !valid_action_name(name) => Err(Refusal::BadRequest(
                format!("{:?} is not an action name", truncate(name, 80)),
            )),
            Op::Action { .. } => Ok(()),
            Op::Restore { backup_id, target } => {
                let id_ok = (1..=64).contains(&backup_id.len())
                    && backup_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
                if !id_ok {
                    return Err(Refusal::BadRequest(format!(
                        "{:?} is not a backup id",
                        truncate(backup_id, 80)
                    )));
                }
                match target {
                    RestoreTarget::Action { name, .. } if !valid_action_name(name) => {
                        Err(Refusal::BadRequest(format!(
                            "{:?} is not an action name",
                            truncate(name, 80)
                        )))
                    }
                    RestoreTarget::Volume { name } => check_volume_name(name),
                    _ => Ok(()),
                }
            }
            Op::Backup { job, source, .. } => {
                if !valid_action_name(job) {
                    return Err(Refusal::BadRequest(format!(
                        "{:?} is not a job name (1-64 of a-z, 0-9, '.', '_', '-')",
                        truncate(job, 80)
                    )));
                }
                match source {
                    BackupSource::Action { name, .. } if !valid_action_name(name) => {
                        Err(Refusal::BadRequest(format!(
                            "{:?} is not an action name",
                            truncate(name, 80)
                        )))
                    }
                    BackupSource::Action { .. } => Ok(()),
                    BackupSource::Dir { exclude, .. } => check_excludes(exclude),
                    BackupSource::Volume { name, exclude } => {
                        check_volume_name(name)?;
                        check_excludes(exclude)
                    }
                }
            }
        }
    }

    /// The least role that may run this under `policy` (`None` if the
    /// policy does not name it).
    pub fn min_role(&self, policy: &Policy) -> Option<Role> {
        match self {
            Op::Lifecycle { verb, .. } => Some(verb.min_role()),
            Op::Action { name, .. } => policy.actions.get(name).map(|a| a.role),
            Op::Backup {
                source: BackupSource::Dir { .. },
                ..
            } => policy.backup.as_ref().map(|b| b.role.max(Role::Operator)),
            Op::Backup {
                source: BackupSource::Action { name, .. },
                ..
            }
            | Op::Restore {
                target: RestoreTarget::Action { name, .. },
                ..
            } => policy.actions.get(name).map(|a| a.role.max(Role::Operator)),
            Op::Restore {
                target: RestoreTarget::Dir { .. } | RestoreTarget::Volume { .. },
                ..
            }
            | Op::Backup {
                source: BackupSource::Volume { .. },
                ..
            } => policy.backup.as_ref().map(|b| b.role.max(Role::Operator)),
        }
    }

    /// Whether `policy` allows this for `role`; for an action, its argv.
    /// This is the whole decision: the hub asks it first, the agent again.
    pub fn authorize(&self, policy: &Policy, role: Role) -> Result<Option<Vec<String>>, Refusal> {
        self.check_shape()?;
        match self {
            Op::Lifecycle { target, verb, .. } => {
                let allowed = policy
                    .lifecycle
                    .get(&target.kind)
                    .is_some_and(|verbs| verbs.contains(verb));
                if !allowed {
                    return Err(Refusal::NotAllowed(format!(
                        "the agent's policy does not allow {} on {}s",
                        verb.as_str(),
                        target.kind.as_str().replace('_', " ")
                    )));
                }
                if role < verb.min_role() {
                    return Err(Refusal::Role(verb.min_role()));
                }
                Ok(None)
            }
            Op::Action { name, args } => {
                let Some(spec) = policy.actions.get(name) else {
                    return Err(Refusal::NotAllowed(format!(
                        "{name:?} is not an action in the agent's policy"
                    )));
                };
                if spec.producer || spec.consumer {
                    return Err(Refusal::NotAllowed(format!(
                        "{name:?} is a backup producer or restore consumer: run it as one"
                    )));
                }
                if role < spec.role {
                    return Err(Refusal::Role(spec.role));
                }
                spec.bind(args).map(Some).map_err(Refusal::BadArgument)
            }
            Op::Backup {
                source: BackupSource::Dir { path, .. },
                ..
            }
            | Op::Restore {
                target: RestoreTarget::Dir { path },
                ..
            } => authorize_dir(policy, role, path),
            Op::Backup {
                source: BackupSource::Volume { name, .. },
                ..
            }
            | Op::Restore {
                target: RestoreTarget::Volume { name },
                ..
            } => authorize_volume(policy, role, name),
            Op::Backup {
                source: BackupSource::Action { name, args },
                ..
            } => {
                let Some(spec) = policy.actions.get(name).filter(|a| a.producer) else {
                    return Err(Refusal::NotAllowed(format!(
                        "{name:?} is not a producer action in the agent's policy"
                    )));
                };
                let min = spec.role.max(Role::Operator);
                if role < min {
                    return Err(Refusal::Role(min));
                }
                spec.bind(args).map(Some).map_err(Refusal::BadArgument)
            }
            Op::Restore {
                target: RestoreTarget::Action { name, args },
                ..
            } => {
                let Some(spec) = policy.actions.get(name).filter(|a| a.consumer) else {
                    return Err(Refusal::NotAllowed(format!(
                        "{name:?} is not a consumer action in the agent's policy"
                    )));
                };
                let min = spec.role.max(Role::Operator);
                if role < min {
                    return Err(Refusal::Role(min));
                }
                spec.bind(args).map(Some).map_err(Refusal::BadArgument)
            }
        }
    }
}

/// A `dir` backup or restore: the policy has a backup section, the role is
/// high enough, and the path lies under one of its roots.
fn authorize_dir(policy: &Policy, role: Role, path: &str) -> Result<Option<Vec<String>>, Refusal> {
    let Some(backup) = &policy.backup else {
        return Err(Refusal::NotAllowed(
            "the agent's policy has no backup section (or the agent is older than backups)".into(),
        ));
    };
    let min = backup.role.max(Role::Operator);
    if role < min {
        return Err(Refusal::Role(min));
    }
    let mut why = format!(
        "no backup root in the agent's policy ({:?})",
        truncate(path, 40)
    );
    for root in &backup.roots {
        match check_path(path, root, 4096) {
            Ok(()) => return Ok(None),
            Err(e) => why = e,
        }
    }
    Err(Refusal::BadArgument(ArgError {
        arg: "path".into(),
        reason: why,
    }))
}

/// A `volume` backup or restore: the policy has a backup section, the role
/// is high enough, and the volume is named in `backup.volumes`.
fn authorize_volume(
    policy: &Policy,
    role: Role,
    name: &str,
) -> Result<Option<Vec<String>>, Refusal> {
    let Some(backup) = &policy.backup else {
        return Err(Refusal::NotAllowed(
            "the agent's policy has no backup section (or the agent is older than backups)".into(),
        ));
    };
    let min = backup.role.max(Role::Operator);
    if role < min {
        return Err(Refusal::Role(min));
    }
    if !backup.allows_volume(name) {
        return Err(Refusal::NotAllowed(format!(
            "volume {:?} is not in the agent's backup.volumes",
            truncate(name, 80)
        )));
    }
    Ok(None)
}

fn check_volume_name(name: &str) -> Result<(), Refusal> {
    match valid_volume_name(name) {
        true => Ok(()),
        false => Err(Refusal::BadRequest(format!(
            "{:?} is not a volume name (1-255 of A-Z, a-z, 0-9, '_', '.', '-')",
            truncate(name, 80)
        ))),
    }
}

fn check_excludes(exclude: &[String]) -> Result<(), Refusal> {
    if exclude.len() > MAX_EXCLUDES {
        return Err(Refusal::BadRequest(format!(
            "at most {MAX_EXCLUDES} exclude patterns"
        )));
    }
    match exclude.iter().find(|e| {
        e.is_empty() || e.len() > 256 || e.chars().any(|c| !(safe_char(c) || "*?[]".contains(c)))
    }) {
        Some(bad) => Err(Refusal::BadRequest(format!(
            "exclude pattern {:?}: 1-256 of {SAFE_CHARS} and *?[]",
            truncate(bad, 40)
        ))),
        None => Ok(()),
    }
}

/// Why a command is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("this needs the {} role", .0.as_str())]
    Role(Role),
    #[error("{0}")]
    BadArgument(ArgError),
}

fn check_target_name(target: &Target) -> Result<(), Refusal> {
    let name = &target.name;
    let ok = match target.kind {
        TargetKind::Agent => true,
        // Docker/Podman names and ids.
        TargetKind::Container => {
            (1..=255).contains(&name.len())
                && name.as_bytes()[0].is_ascii_alphanumeric()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        }
        // systemd unit names: `name.type`, with `@` instances and escapes.
        TargetKind::Unit | TargetKind::UserUnit => {
            (3..=255).contains(&name.len())
                && !name.starts_with(['.', '-'])
                && name.contains('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_.@\\-".contains(&b))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::BadRequest(format!(
            "{:?} is not a valid {} name",
            truncate(name, 80),
            target.kind.as_str().replace('_', " ")
        )))
    }
}

fn valid_action_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// What an agent allows: lifecycle verbs per kind, and named actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    #[serde(default)]
    pub lifecycle: BTreeMap<TargetKind, Vec<Verb>>,
    #[serde(default)]
    pub actions: BTreeMap<String, ActionSpec>,
    /// Where `dir` backups may read; absent: no `dir` backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupPolicy>,
}

impl Default for Policy {
    /// Every lifecycle verb on containers and units; the agent answers all
    /// but `start` and `stop` on itself. No actions.
    fn default() -> Self {
        let mut lifecycle = BTreeMap::new();
        for kind in [
            TargetKind::Container,
            TargetKind::Unit,
            TargetKind::UserUnit,
        ] {
            lifecycle.insert(kind, Verb::MANAGED.to_vec());
        }
        lifecycle.insert(
            TargetKind::Agent,
            vec![
                Verb::Status,
                Verb::Version,
                Verb::Logs,
                Verb::Restart,
                Verb::Update,
            ],
        );
        Policy {
            lifecycle,
            actions: BTreeMap::new(),
            backup: None,
        }
    }
}

impl Policy {
    /// Checks every action; the error names the action and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(verbs) = self.lifecycle.get(&TargetKind::Agent)
            && let Some(v) = verbs.iter().find(|v| matches!(v, Verb::Start | Verb::Stop))
        {
            return Err(format!(
                "lifecycle.agent: {} is not possible (a stopped agent cannot be started from the hub)",
                v.as_str()
            ));
        }
        if let Some((kind, _)) = self
            .lifecycle
            .iter()
            .find(|(k, verbs)| **k != TargetKind::Agent && verbs.contains(&Verb::Update))
        {
            return Err(format!(
                "lifecycle.{}: update is only for the agent",
                kind.as_str()
            ));
        }
        if let Some(backup) = &self.backup {
            for root in &backup.roots {
                if !root.starts_with('/') || root.split('/').any(|c| c == "..") {
                    return Err(format!(
                        "backup.roots: {root:?} must be an absolute path without .."
                    ));
                }
            }
            if let Some(bad) = backup
                .volumes
                .iter()
                .find(|v| *v != "*" && !valid_volume_name(v))
            {
                return Err(format!(
                    "backup.volumes: {bad:?} is not a volume name (or * for all)"
                ));
            }
        }
        for (name, spec) in &self.actions {
            if !valid_action_name(name) {
                return Err(format!(
                    "action {name:?}: names are 1-64 of a-z, 0-9, '.', '_', '-'"
                ));
            }
            spec.validate()
                .map_err(|e| format!("action {name:?}: {e}"))?;
        }
        Ok(())
    }
}

/// Longest a command may run.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// Most output a command may keep.
pub const MAX_OUTPUT_CAP: u64 = 16 * 1024 * 1024;

/// One action of the policy. `argv` elements may hold `{name}` placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionSpec {
    #[serde(default)]
    pub description: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
    pub role: Role,
    pub timeout_secs: u64,
    /// Bytes of output kept; the rest is dropped with a marker.
    pub output_cap: u64,
    /// Its stdout is a backup artifact: it runs as the source of a backup
    /// command (never as a plain action, whose output would be capped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub producer: bool,
    /// Its stdin takes a restored artifact (e.g. `psql`): it runs only as
    /// the target of a restore.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consumer: bool,
}

impl ActionSpec {
    fn validate(&self) -> Result<(), String> {
        let Some(program) = self.argv.first() else {
            return Err("argv is empty".into());
        };
        if program.is_empty() || program.contains('{') {
            return Err("argv[0] must be a fixed program, not a placeholder".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(format!("timeout must be 1s to {MAX_TIMEOUT_SECS}s"));
        }
        if self.output_cap == 0 || self.output_cap > MAX_OUTPUT_CAP {
            return Err(format!(
                "output_cap must be 1 byte to {MAX_OUTPUT_CAP} bytes"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for arg in &self.args {
            if !valid_action_name(&arg.name) || !seen.insert(arg.name.as_str()) {
                return Err(format!("argument {:?}: bad or repeated name", arg.name));
            }
            arg.validate()
                .map_err(|e| format!("argument {:?}: {e}", arg.name))?;
        }
        for element in &self.argv {
            for name in placeholders(element) {
                if !seen.contains(name) {
                    return Err(format!("argv uses {{{name}}}, which is not an argument"));
                }
            }
        }
        Ok(())
    }

    /// The argv with `args` checked and filled in. An element with a
    /// placeholder for an optional argument that was not given is left out.
    pub fn bind(&self, args: &BTreeMap<String, String>) -> Result<Vec<String>, ArgError> {
        self.bind_with(args, |_, value| Ok(value.to_string()))
    }

    /// [`bind`](Self::bind), with each path argument's value, once it passed
    /// its check, replaced by `resolve(under, value)`. The agent resolves
    /// paths on its host this way (symlinks that leave `under` are refused);
    /// an `Err` finishes the sentence "argument X …".
    pub fn bind_with(
        &self,
        args: &BTreeMap<String, String>,
        mut resolve: impl FnMut(&str, &str) -> Result<String, String>,
    ) -> Result<Vec<String>, ArgError> {
        if let Some(unknown) = args
            .keys()
            .find(|k| !self.args.iter().any(|a| &a.name == *k))
        {
            return Err(ArgError {
                arg: truncate(unknown, 64),
                reason: "is not an argument of this action".into(),
            });
        }
        let mut values = BTreeMap::new();
        for spec in &self.args {
            let value = args.get(&spec.name).or(spec.default.as_ref());
            match value {
                Some(v) => {
                    let refused = |reason| ArgError {
                        arg: spec.name.clone(),
                        reason,
                    };
                    spec.check(v).map_err(refused)?;
                    let v = match &spec.kind {
                        ArgType::Path { under, .. } => resolve(under, v).map_err(refused)?,
                        _ => v.clone(),
                    };
                    values.insert(spec.name.as_str(), v);
                }
                None if spec.required => {
                    return Err(ArgError {
                        arg: spec.name.clone(),
                        reason: "is required".into(),
                    });
                }
                None => {}
            }
        }
        let mut argv = Vec::with_capacity(self.argv.len());
        'element: for element in &self.argv {
            let mut out = element.clone();
            for name in placeholders(element) {
                match values.get(name) {
                    Some(v) => out = out.replace(&format!("{{{name}}}"), v),
                    None => continue 'element,
                }
            }
            argv.push(out);
        }
        Ok(argv)
    }
}

/// The `{name}` placeholders in one argv element.
fn placeholders(element: &str) -> impl Iterator<Item = &str> {
    element.split('{').skip(1).filter_map(|rest| {
        let end = rest.find('}')?;
        Some(&rest[..end])
    })
}

/// An argument that breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {arg:?} {reason}")]
pub struct ArgError {
    pub arg: String,
    pub reason: String,
}

/// One argument of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArgSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: ArgType,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// An argument's type and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArgType {
    String {
        /// A regex the whole value must match; without one, only
        /// [`SAFE_CHARS`] are allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        #[serde(default = "default_max_len")]
        max_len: usize,
        /// Whether the value may start with `-`. Off by default: a program
        /// would read such a value as an option (`--version`, `--delete`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_leading_dash: bool,
    },
    Int {
        /// Negative numbers are accepted only when this is below 0: `-1`
        /// reads as an option, and to `kill` as every process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    Bool,
    Enum {
        values: Vec<String>,
    },
    /// Always absolute, so never starting with `-`.
    Path {
        /// The directory the path must stay inside. The agent also resolves
        /// the path on its host: no symlink on the way may leave it.
        under: String,
        #[serde(default = "default_path_len")]
        max_len: usize,
    },
}

fn default_max_len() -> usize {
    256
}

fn default_path_len() -> usize {
    4096
}

/// What a string without a pattern (and any path) may contain: no control
/// characters and no shell metacharacters, even though nothing runs a shell.
pub const SAFE_CHARS: &str = "letters, digits, space and ._-:/@+=,%";

fn safe_char(c: char) -> bool {
    c.is_alphanumeric() || " ._-:/@+=,%".contains(c)
}

impl ArgSpec {
    fn validate(&self) -> Result<(), String> {
        match &self.kind {
            ArgType::String {
                pattern: Some(p), ..
            } => {
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| format!("pattern does not compile: {e}"))?;
            }
            ArgType::Int {
                min: Some(lo),
                max: Some(hi),
            } if lo > hi => return Err("min is above max".into()),
            ArgType::Enum { values } if values.is_empty() => {
                return Err("an enum needs values".into());
            }
            ArgType::Path { under, .. }
                if !under.starts_with('/') || under.split('/').any(|c| c == "..") =>
            {
                return Err("under must be an absolute path without ..".into());
            }
            _ => {}
        }
        if let Some(d) = &self.default {
            self.check(d).map_err(|e| format!("default {d:?} {e}"))?;
        }
        Ok(())
    }

    /// Checks one value; the error finishes the sentence "argument X …".
    pub fn check(&self, value: &str) -> Result<(), String> {
        let show = || truncate(value, 40);
        match &self.kind {
            ArgType::String {
                pattern,
                max_len,
                allow_leading_dash,
            } => {
                if value.chars().count() > *max_len {
                    return Err(format!("is longer than {max_len} characters"));
                }
                if value.starts_with('-') && !allow_leading_dash {
                    return Err(format!(
                        "{:?} starts with '-', which the program would read as an option",
                        show()
                    ));
                }
                match pattern {
                    Some(p) => {
                        let re = regex::Regex::new(&format!("^(?:{p})$"))
                            .map_err(|e| format!("has a pattern that does not compile: {e}"))?;
                        if value.chars().any(char::is_control) || !re.is_match(value) {
                            return Err(format!("{:?} does not match {p}", show()));
                        }
                    }
                    None => {
                        if let Some(c) = value.chars().find(|c| !safe_char(*c)) {
                            return Err(format!(
                                "{:?} holds {c:?}; allowed are {SAFE_CHARS}",
                                show()
                            ));
                        }
                    }
                }
                Ok(())
            }
            ArgType::Int { min, max } => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("{:?} is not an integer", show()))?;
                // By the text, so `-0` is caught too.
                if value.starts_with('-') && !min.is_some_and(|lo| lo < 0) {
                    return Err(format!(
                        "{:?} starts with '-'; this argument takes negative numbers only if its min is below 0",
                        show()
                    ));
                }
                if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
                    return Err(format!(
                        "{n} is out of range ({}..={})",
                        min.map(|v| v.to_string()).unwrap_or_default(),
                        max.map(|v| v.to_string()).unwrap_or_default()
                    ));
                }
                Ok(())
            }
            ArgType::Bool if value == "true" || value == "false" => Ok(()),
            ArgType::Bool => Err(format!("{:?} is not true or false", show())),
            ArgType::Enum { values } if values.iter().any(|v| v == value) => Ok(()),
            ArgType::Enum { values } => {
                Err(format!("{:?} is not one of {}", show(), values.join(", ")))
            }
            ArgType::Path { under, max_len } => check_path(value, under, *max_len),
        }
    }
}

fn check_path(value: &str, under: &str, max_len: usize) -> Result<(), String> {
    if value.len() > max_len {
        return Err(format!("is longer than {max_len} bytes"));
    }
    if let Some(c) = value.chars().find(|c| !safe_char(*c)) {
        return Err(format!(
            "{:?} holds {c:?}; allowed are {SAFE_CHARS}",
            truncate(value, 40)
        ));
    }
    if !value.starts_with('/') {
        return Err(format!("{:?} is not an absolute path", truncate(value, 40)));
    }
    let components: Vec<&str> = value.split('/').skip(1).collect();
    if components
        .iter()
        .enumerate()
        .any(|(i, c)| *c == ".." || *c == "." || (c.is_empty() && i + 1 < components.len()))
    {
        return Err(format!(
            "{:?} has a '..', '.' or empty component",
            truncate(value, 40)
        ));
    }
    let under = under.trim_end_matches('/');
    let inside = value == under
        || under.is_empty()
        || value
            .strip_prefix(under)
            .is_some_and(|rest| rest.starts_with('/'));
    if !inside {
        return Err(format!("{:?} is not inside {under}", truncate(value, 40)));
    }
    Ok(())
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of a command's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    pub id: String,
    pub stream: Stream,
    pub data: String,
}

/// Where a command is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// Done, exit code 0.
    Ok,
    /// A non-zero exit or an error.
    Failed,
    /// The agent's policy said no; nothing ran.
    Refused,
    /// Killed (with its process group) at its timeout.
    TimedOut,
    Cancelled,
    /// The agent went away before the result arrived.
    Lost,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Refused => "refused",
            Status::TimedOut => "timed_out",
            Status::Cancelled => "cancelled",
            Status::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Ok,
            Status::Failed,
            Status::Refused,
            Status::TimedOut,
            Status::Cancelled,
            Status::Lost,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hub → agent: run this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    /// The caller's role, checked against the policy's.
    pub role: Role,
    /// Who asked, for the agent's log.
    #[serde(default)]
    pub actor: String,
    #[serde(flatten)]
    pub op: Op,
}

/// Agent → hub: how a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
    /// Output went past the cap and was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[cfg(test)]
mod tests;
