//! systemd unit files and drop-ins (INI style), parsed the way systemd reads
//! them and compared key by key (the rules are listed in [`super::risk`]).

use std::collections::{BTreeMap, BTreeSet};

use super::compose::list;
use super::risk::{Compared, Finding, Risk};

/// Hardening settings: weakening one is high.
const HARDENING: &[&str] = &[
    "NoNewPrivileges",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateNetwork",
    "PrivateUsers",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "RestrictSUIDSGID",
    "MemoryDenyWriteExecute",
    "LockPersonality",
    "RestrictRealtime",
];

/// Commands systemd runs.
const EXEC: &[&str] = &[
    "ExecStart",
    "ExecStartPre",
    "ExecStartPost",
    "ExecCondition",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
];

/// Programs that raise privileges.
const ESCALATE: &[&str] = &["sudo", "doas", "pkexec", "su"];

/// Keys with rules of their own in `[Service]`.
const HANDLED: &[&str] = &[
    "User",
    "DynamicUser",
    "Restart",
    "Environment",
    "EnvironmentFile",
];

/// Section → key → values in order (an empty assignment resets the list).
#[derive(Debug, Default, PartialEq)]
pub(super) struct UnitFile {
    sections: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

pub(super) fn parse(text: &str) -> Result<UnitFile, String> {
    let mut unit = UnitFile::default();
    let mut section: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let mut line = line.trim().to_string();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // A trailing backslash continues the line; comment lines inside are skipped.
        'continued: while line.ends_with('\\') {
            line.pop();
            line.push(' ');
            for (_, next) in lines.by_ref() {
                let next = next.trim();
                if !(next.starts_with('#') || next.starts_with(';')) {
                    line.push_str(next);
                    continue 'continued;
                }
            }
            break;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: unterminated section header", n + 1))?;
            section = Some(name.trim().to_string());
            unit.sections.entry(name.trim().to_string()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected Key=Value", n + 1))?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {}: expected Key=Value", n + 1));
        }
        let section = section
            .as_ref()
            .ok_or_else(|| format!("line {}: assignment outside a section", n + 1))?;
        let values = unit
            .sections
            .entry(section.clone())
            .or_default()
            .entry(key.to_string())
            .or_default();
        let value = normalise(value);
        if value.is_empty() {
            values.clear();
        } else {
            values.push(value);
        }
    }
    Ok(unit)
}

/// Whitespace runs outside quotes collapsed to one space.
fn normalise(value: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut space = false;
    for c in value.trim().chars() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => space = true,
            None => {
                if space {
                    out.push(' ');
                    space = false;
                }
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// Splits on whitespace outside quotes, quotes removed.
fn words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

impl UnitFile {
    fn values(&self, section: &str, key: &str) -> &[String] {
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .map_or(&[], Vec::as_slice)
    }

    fn last(&self, section: &str, key: &str) -> Option<&str> {
        self.values(section, key).last().map(String::as_str)
    }

    /// `User=`, or `dynamic` for `DynamicUser=yes`.
    fn user(&self) -> Option<&str> {
        if self.last("Service", "DynamicUser").is_some_and(truthy) {
            return Some("(dynamic)");
        }
        self.last("Service", "User")
    }

    /// `Environment=` assignments: variable → value.
    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for value in self.values("Service", "Environment") {
            for word in words(value) {
                if let Some((k, v)) = word.split_once('=') {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
        env
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "1" | "yes" | "y" | "true" | "t" | "on"
    )
}

/// How strong a hardening setting is (0: off).
fn strength(key: &str, value: Option<&str>) -> u8 {
    let Some(v) = value.map(str::to_ascii_lowercase) else {
        return 0;
    };
    match (key, v.as_str()) {
        ("ProtectSystem", "strict") => 3,
        ("ProtectSystem", "full") => 2,
        ("ProtectHome", "read-only" | "tmpfs") => 1,
        ("ProtectHome", v) if truthy(v) => 2,
        ("PrivateUsers", "self" | "identity") => 1,
        (_, v) if truthy(v) => 1,
        _ => 0,
    }
}

fn is_root(user: Option<&str>) -> bool {
    matches!(user, Some("root" | "0"))
}

/// Whether a command line raises privileges: a `+`/`!` prefix, or a `sudo`
/// (…) among its words.
fn escalates(cmd: &str) -> Option<&'static str> {
    let prefix: String = cmd.chars().take_while(|c| "@-:+!|".contains(*c)).collect();
    if prefix.contains('+') || prefix.contains('!') {
        return Some("the + or ! prefix (full privileges)");
    }
    words(&cmd[prefix.len()..]).iter().find_map(|w| {
        let program = w.rsplit('/').next().unwrap_or("");
        ESCALATE.iter().find(|e| **e == program).copied()
    })
}

pub(super) fn compare(old: &str, new: &str) -> Result<Compared, String> {
    let old = parse(old).map_err(|e| format!("previous version: {e}"))?;
    let new = parse(new)?;
    let mut out = Compared::default();
    let mut push = |rule, risk, detail: String| out.findings.push(Finding::new(rule, risk, detail));

    // Who it runs as.
    let (was, now) = (old.user(), new.user());
    if was != now {
        if is_root(now) {
            push(
                "unit.user_root",
                Risk::High,
                format!(
                    "User={}: runs as root (was {})",
                    now.unwrap_or(""),
                    was.unwrap_or("unset")
                ),
            );
        } else if now.is_none() && !is_root(was) {
            push(
                "unit.user_root",
                Risk::High,
                format!("User={} removed: runs as root", was.unwrap_or("")),
            );
        } else if was.is_some() && !is_root(was) {
            push(
                "unit.user",
                Risk::Medium,
                format!("User {} → {}", was.unwrap_or(""), now.unwrap_or("")),
            );
        } else {
            push(
                "unit.user",
                Risk::Low,
                format!("now runs as {}", now.unwrap_or("root (the default)")),
            );
        }
    }

    // Hardening.
    for key in HARDENING {
        let (a, b) = (old.last("Service", key), new.last("Service", key));
        let (sa, sb) = (strength(key, a), strength(key, b));
        if sb < sa {
            push(
                "unit.hardening",
                Risk::High,
                match b {
                    Some(b) => format!("{key} weakened: {} → {b}", a.unwrap_or("")),
                    None => format!("{key}={} removed", a.unwrap_or("")),
                },
            );
        } else if sb > sa {
            push(
                "unit.hardening",
                Risk::Low,
                format!("{key}={} added", b.unwrap_or("")),
            );
        }
    }

    // Commands.
    for key in EXEC {
        let (a, b) = (old.values("Service", key), new.values("Service", key));
        if a == b {
            continue;
        }
        let had: BTreeSet<&str> = a.iter().filter_map(|c| escalates(c)).collect();
        match b
            .iter()
            .filter_map(|c| escalates(c))
            .find(|e| !had.contains(e))
        {
            Some(how) => push(
                "unit.exec_privileged",
                Risk::High,
                format!("{key} gains {how}"),
            ),
            None => push("unit.exec", Risk::Medium, format!("{key} changed")),
        }
    }
    let (a, b) = (
        old.last("Service", "Restart"),
        new.last("Service", "Restart"),
    );
    if a != b {
        push(
            "unit.restart",
            Risk::Medium,
            format!("Restart {} → {}", a.unwrap_or("no"), b.unwrap_or("no")),
        );
    }
    let (ea, eb) = (old.environment(), new.environment());
    let vars: BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    for var in vars {
        let what = match (ea.get(var), eb.get(var)) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (a, b) if a != b => "changed",
            _ => continue,
        };
        push(
            "unit.environment",
            Risk::Medium,
            format!("Environment {var} {what}"),
        );
    }
    if old.values("Service", "EnvironmentFile") != new.values("Service", "EnvironmentFile") {
        push(
            "unit.environment",
            Risk::Medium,
            "EnvironmentFile changed".into(),
        );
    }

    // Everything else.
    let mut other = Vec::new();
    let sections: BTreeSet<&String> = old.sections.keys().chain(new.sections.keys()).collect();
    for section in sections {
        let empty = BTreeMap::new();
        let a = old.sections.get(section).unwrap_or(&empty);
        let b = new.sections.get(section).unwrap_or(&empty);
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let handled = section == "Service"
                && (HANDLED.contains(&key.as_str())
                    || HARDENING.contains(&key.as_str())
                    || EXEC.contains(&key.as_str()));
            let (va, vb) = (a.get(key).map(Vec::as_slice), b.get(key).map(Vec::as_slice));
            if !handled && va.unwrap_or(&[]) != vb.unwrap_or(&[]) {
                other.push(format!("[{section}] {key}"));
            }
        }
    }
    if !other.is_empty() {
        let names: Vec<&str> = other.iter().map(String::as_str).collect();
        push("unit.other", Risk::Low, format!("{} changed", list(&names)));
    }
    Ok(out)
}

/// The unit a path names: `/etc/systemd/system/web.service` is `web.service`,
/// a drop-in `/etc/systemd/system/web.service.d/override.conf` too.
pub(super) fn name_from_path(path: &str) -> Option<String> {
    let mut parts = path.rsplit('/');
    let file = parts.next()?;
    let candidate = if file.ends_with(".conf") {
        parts.next()?.strip_suffix(".d")?
    } else {
        file
    };
    const TYPES: &[&str] = &[
        ".service",
        ".socket",
        ".timer",
        ".mount",
        ".path",
        ".target",
        ".slice",
        ".scope",
        ".automount",
        ".swap",
        ".device",
    ];
    TYPES
        .iter()
        .any(|t| candidate.ends_with(t) && candidate.len() > t.len())
        .then(|| candidate.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_resets() {
        let u = parse(
            "# c\n[Service]\nExecStart=/bin/a \\\n  --flag\nExecStart=\nExecStart=/bin/b \\\n# note\n   x\n",
        )
        .unwrap();
        assert_eq!(u.values("Service", "ExecStart"), ["/bin/b x"]);
        assert!(parse("[Service]\nnonsense\n").is_err());
        assert!(parse("Key=outside\n").is_err());
    }

    #[test]
    fn escalation_is_found_in_words_and_prefixes() {
        assert!(escalates("/usr/bin/sudo -u x /bin/a").is_some());
        assert!(escalates("+/bin/a").is_some());
        assert!(escalates("-/bin/sudoku").is_none());
        assert!(escalates("/bin/echo 'no sudo here'").is_none());
    }

    #[test]
    fn unit_names_from_paths() {
        assert_eq!(
            name_from_path("/etc/systemd/system/web.service").as_deref(),
            Some("web.service")
        );
        assert_eq!(
            name_from_path("/etc/systemd/system/web.service.d/override.conf").as_deref(),
            Some("web.service")
        );
        assert_eq!(name_from_path("/etc/nginx/nginx.conf"), None);
    }
}
