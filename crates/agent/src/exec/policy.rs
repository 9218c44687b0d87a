//! The agent's policy file: which lifecycle verbs it answers and which
//! actions it runs. Read once at start (and on an agent restart); a file
//! that does not parse or check stops the agent with an error naming the
//! field. See `docs/commands.md` for the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use twinbay_proto::backup::BackupPolicy;
use twinbay_proto::command::{ActionSpec, ArgSpec, Policy, Role, TargetKind, Verb};

/// Defaults for an action that does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_OUTPUT_CAP: u64 = 1024 * 1024;

/// The policy the hub may see, and what only the agent needs to run actions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub policy: Policy,
    /// Per action: working directory and extra environment.
    pub run: BTreeMap<String, RunEnv>,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    /// Files to watch (the `files` source), besides `--watch`.
    pub watch: WatchSpec,
}

/// The policy's `watch:` section: paths, directories or globs, and globs of
/// paths not to watch. It stays on the agent (it is not part of [`Policy`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunEnv {
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    lifecycle: BTreeMap<TargetKind, Vec<Verb>>,
    #[serde(default)]
    actions: BTreeMap<String, ActionFile>,
    #[serde(default)]
    watch: WatchSpec,
    /// Where `dir` backups may read (see docs/backups.md).
    #[serde(default)]
    backup: Option<BackupPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    #[serde(default)]
    description: String,
    argv: Vec<String>,
    #[serde(default)]
    args: Vec<ArgSpec>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    output_cap: Option<Size>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Its stdout is a backup artifact (it runs only as a backup's source).
    #[serde(default)]
    producer: bool,
    /// Its stdin takes a restored artifact (it runs only as a restore's target).
    #[serde(default)]
    consumer: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// Reads `path`; a missing file at the default place means the defaults.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut loaded = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    loaded.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// Parses and checks a policy document.
pub fn parse(text: &str) -> Result<Loaded, String> {
    let file: File = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let mut policy = Policy {
        backup: file.backup,
        ..Policy::default()
    };
    for (kind, verbs) in file.lifecycle {
        policy.lifecycle.insert(kind, verbs);
    }
    let mut run = BTreeMap::new();
    for (name, action) in file.actions {
        let at = |what: &str| format!("action {name:?}: {what}");
        let timeout = match &action.timeout {
            Some(t) => {
                humantime::parse_duration(t).map_err(|e| at(&format!("timeout {t:?}: {e}")))?
            }
            None => DEFAULT_TIMEOUT,
        };
        let output_cap = match &action.output_cap {
            None => DEFAULT_OUTPUT_CAP,
            Some(Size::Bytes(n)) => *n,
            Some(Size::Text(t)) => parse_size(t).ok_or_else(|| {
                at(&format!(
                    "output_cap {t:?} is not a size like 512KiB or 1MiB"
                ))
            })?,
        };
        let cwd = action.cwd.unwrap_or_else(|| PathBuf::from("/"));
        if !cwd.is_absolute() {
            return Err(at("cwd must be an absolute path"));
        }
        for key in action.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(at(&format!("env name {key:?} is not valid")));
            }
        }
        policy.actions.insert(
            name.clone(),
            ActionSpec {
                description: action.description,
                argv: action.argv,
                args: action.args,
                role: action.role.unwrap_or(Role::Operator),
                timeout_secs: timeout.as_secs().max(u64::from(!timeout.is_zero())),
                output_cap,
                producer: action.producer,
                consumer: action.consumer,
            },
        );
        run.insert(
            name,
            RunEnv {
                cwd,
                env: action.env,
            },
        );
    }
    policy.validate()?;
    for p in &file.watch.paths {
        if !p.starts_with('/') {
            return Err(format!("watch.paths: {p:?} is not an absolute path"));
        }
    }
    for g in file.watch.paths.iter().chain(&file.watch.exclude) {
        glob::Pattern::new(g).map_err(|e| format!("watch: bad glob {g:?}: {e}"))?;
    }
    Ok(Loaded {
        policy,
        run,
        source: None,
        watch: file.watch,
    })
}

fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1024,
        "KB" => 1000,
        "MiB" | "M" => 1024 * 1024,
        "MB" => 1_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// The policy file an agent with `state_dir` uses when none is named.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join("policy.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
lifecycle:
  container: [status, logs, restart]
actions:
  disk-usage:
    description: Disk usage of a directory under /var
    argv: [du, -sh, --, "{path}"]
    args:
      - name: path
        type: path
        under: /var
        required: true
    timeout: 30s
    output_cap: 512KiB
    env: { LANG: C }
  echo:
    argv: [echo, "{msg}"]
    args:
      - { name: msg, type: string, max_len: 20 }
    role: admin
    output_cap: 100
"#;

    #[test]
    fn parses_the_documented_example() {
        let loaded = parse(EXAMPLE).unwrap();
        let p = &loaded.policy;
        assert_eq!(
            p.lifecycle[&TargetKind::Container],
            [Verb::Status, Verb::Logs, Verb::Restart]
        );
        // Kinds the file leaves out keep their defaults.
        assert!(p.lifecycle[&TargetKind::Unit].contains(&Verb::Restart));
        let du = &p.actions["disk-usage"];
        assert_eq!(
            (du.timeout_secs, du.output_cap, du.role),
            (30, 512 * 1024, Role::Operator)
        );
        assert_eq!(loaded.run["disk-usage"].env["LANG"], "C");
        let echo = &p.actions["echo"];
        assert_eq!(
            (echo.role, echo.output_cap, echo.timeout_secs),
            (Role::Admin, 100, 60)
        );
    }

    #[test]
    fn reads_the_backup_section_producers_and_consumers() {
        let loaded = parse(
            "backup:\n  roots: [/srv]\nactions:\n  dump:\n    argv: [pg_dump, app]\n    producer: true\n  load:\n    argv: [psql, app]\n    consumer: true\n",
        )
        .unwrap();
        let backup = loaded.policy.backup.unwrap();
        assert_eq!(
            (backup.roots, backup.role),
            (vec!["/srv".to_string()], Role::Operator)
        );
        assert!(loaded.policy.actions["dump"].producer);
        assert!(loaded.policy.actions["load"].consumer);
        let err = parse("backup:\n  roots: [srv]\n").unwrap_err();
        assert!(err.contains("backup.roots"), "{err}");
        assert!(parse("{}").unwrap().policy.backup.is_none());
    }

    #[test]
    fn reads_the_watch_section() {
        let loaded = parse(
            "watch:\n  paths: [/etc/nginx, \"/srv/*/compose.yaml\"]\n  exclude: [\"*.bak\"]\n",
        )
        .unwrap();
        assert_eq!(loaded.watch.paths, ["/etc/nginx", "/srv/*/compose.yaml"]);
        assert_eq!(loaded.watch.exclude, ["*.bak"]);
        assert_eq!(parse("{}").unwrap().watch, WatchSpec::default());
        let err = parse("watch:\n  paths: [etc/x]\n").unwrap_err();
        assert!(err.contains("not an absolute path"), "{err}");
        let err = parse("watch:\n  paths: [\"/a/[\"]\n").unwrap_err();
        assert!(err.contains("bad glob"), "{err}");
        assert!(parse("watch:\n  path: [/a]\n").is_err());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = parse("actions:\n  x:\n    argv: [ls]\n    timeout: soon\n").unwrap_err();
        assert!(err.contains("action \"x\": timeout"), "{err}");
        let err =
            parse("actions:\n  x:\n    argv: [\"{p}\"]\n    args: [{name: p, type: string}]\n")
                .unwrap_err();
        assert!(err.contains("argv[0]"), "{err}");
        let err = parse("actions:\n  x:\n    argv: [ls]\n    shell: true\n").unwrap_err();
        assert!(err.contains("shell"), "{err}");
        let err = parse("lifecycle:\n  agent: [stop]\n").unwrap_err();
        assert!(err.contains("lifecycle.agent"), "{err}");
        let err = parse(
            "actions:\n  x:\n    argv: [ls]\n    args: [{name: p, type: string, pattern: \"(\"}]\n",
        )
        .unwrap_err();
        assert!(err.contains("pattern"), "{err}");
    }
}
