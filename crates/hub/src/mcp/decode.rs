//! `run_command`'s arguments as the commands API's request body. Pure, so
//! it is tested (and property-tested) without a hub.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Longest action argument value, and most arguments, an assistant may pass
/// (the agent's own schema is stricter; this bounds what the hub reads).
pub const MAX_ARG_BYTES: usize = 4096;
pub const MAX_ARGS: usize = 32;

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VerbArg {
    Status,
    Version,
    Logs,
    Start,
    Stop,
    Restart,
}

impl VerbArg {
    pub fn as_str(self) -> &'static str {
        match self {
            VerbArg::Status => "status",
            VerbArg::Version => "version",
            VerbArg::Logs => "logs",
            VerbArg::Start => "start",
            VerbArg::Stop => "stop",
            VerbArg::Restart => "restart",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCommandArgs {
    /// Node id (`n_…`) or hostname.
    pub node: String,
    /// A lifecycle verb for `target`; leave out to run an `action` instead.
    pub verb: Option<VerbArg>,
    /// What the verb acts on: `container:NAME`, `unit:NAME`, `user_unit:NAME`
    /// or `agent`; a bare name is a container.
    pub target: Option<String>,
    /// For `logs`: how many past lines (default 100, at most 10000).
    pub lines: Option<u32>,
    /// An action of the host's policy (instead of a verb).
    pub action: Option<String>,
    /// The action's arguments: strings, numbers or booleans, checked against
    /// the action's own schema.
    pub args: Option<Map<String, Value>>,
    /// Wait for the command to end and return its output (default true).
    pub wait: Option<bool>,
    /// How long to wait for the end, in seconds (default 60, at most 300);
    /// after that the answer says it is still running (see `get_command`).
    #[schemars(range(min = 1, max = 300))]
    pub timeout_secs: Option<u32>,
}

/// `container:web` → (`container`, `web`); a bare name is a container.
pub fn parse_target(target: &str) -> Result<(&'static str, String), String> {
    let target = target.trim();
    if target == "agent" {
        return Ok(("agent", String::new()));
    }
    let (kind, name) = match target.split_once(':') {
        Some((kind, name)) => {
            let kind = twinbay_proto::command::TargetKind::parse(kind)
                .ok_or_else(|| format!("bad request: unknown target kind {kind:?}; use container, unit, user_unit or agent"))?;
            (kind.as_str(), name)
        }
        None => ("container", target),
    };
    if name.is_empty() && kind != "agent" {
        return Err("bad request: the target needs a name (container:NAME)".into());
    }
    Ok((kind, name.to_string()))
}

/// The commands API's body for these arguments (`{"op": …}`); the API
/// itself checks the rest (names, the policy, argument types).
pub fn command_body(a: &RunCommandArgs) -> Result<Value, String> {
    match (a.verb, &a.action) {
        (Some(_), Some(_)) => Err("bad request: give a verb or an action, not both".into()),
        (None, None) => Err("bad request: give a verb (with a target) or an action".into()),
        (Some(verb), None) => {
            if a.args.is_some() {
                return Err("bad request: args are for actions; verbs take none".into());
            }
            let target = a
                .target
                .as_deref()
                .ok_or("bad request: a verb needs a target (container:NAME, unit:NAME, agent)")?;
            let (kind, name) = parse_target(target)?;
            let mut body = json!({
                "op": "lifecycle",
                "verb": verb.as_str(),
                "target": {"kind": kind, "name": name},
            });
            if let Some(lines) = a.lines {
                body["lines"] = json!(lines);
            }
            Ok(body)
        }
        (None, Some(name)) => {
            if a.target.is_some() || a.lines.is_some() {
                return Err("bad request: target and lines are for verbs, not actions".into());
            }
            let args = a.args.clone().unwrap_or_default();
            if args.len() > MAX_ARGS {
                return Err(format!("bad request: at most {MAX_ARGS} arguments"));
            }
            for (k, v) in &args {
                let size = k.len() + v.to_string().len();
                if size > MAX_ARG_BYTES {
                    return Err(format!(
                        "bad request: argument {:?} is longer than {MAX_ARG_BYTES} bytes",
                        k.chars().take(64).collect::<String>()
                    ));
                }
            }
            Ok(json!({"op": "action", "name": name, "args": args}))
        }
    }
}
