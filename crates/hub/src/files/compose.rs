//! Compose files, parsed into what matters for risk, and compared service by
//! service (the rules are listed in [`super::risk`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::risk::{Compared, Finding, Risk};

/// Service keys with rules of their own; any other key is `compose.other`.
const HANDLED: &[&str] = &[
    "image",
    "ports",
    "privileged",
    "network_mode",
    "pid",
    "ipc",
    "uts",
    "cgroup",
    "userns_mode",
    "volumes",
    "cap_add",
    "cap_drop",
    "security_opt",
    "environment",
    "env_file",
    "restart",
    "command",
    "entrypoint",
    "user",
];

/// Capabilities that let a container escape or take over the host.
const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "DAC_READ_SEARCH",
];

/// Host paths whose mount hands over the host (after normalisation; `/var/run`
/// is `/run`).
const SENSITIVE_PATHS: &[&str] = &[
    "/",
    "/etc",
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/root",
    "/boot",
    "/run",
    "/var/lib/docker",
    "/var/lib/containers",
];

/// Socket file names of container engines.
const ENGINE_SOCKETS: &[&str] = &[
    "docker.sock",
    "podman.sock",
    "containerd.sock",
    "crio.sock",
    "dockershim.sock",
    "buildkitd.sock",
];

#[derive(Debug, Default)]
pub(super) struct Compose {
    name: Option<String>,
    services: BTreeMap<String, Service>,
    /// Other top-level keys, but `version` and `x-…` extensions.
    top: BTreeMap<String, Value>,
}

#[derive(Debug, Default, PartialEq)]
struct Service {
    raw: Map<String, Value>,
    image: Option<String>,
    ports: BTreeSet<PortSpec>,
    privileged: bool,
    mounts: BTreeSet<Mount>,
    cap_add: BTreeSet<String>,
    cap_drop: BTreeSet<String>,
    security_opt: BTreeSet<String>,
    environment: BTreeMap<String, Option<String>>,
    user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortSpec {
    host_ip: Option<String>,
    published: Option<String>,
    target: String,
    protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Mount {
    source: String,
    target: String,
    read_only: bool,
}

/// Parses a compose file; an empty (or comment-only) text is an empty file.
pub(super) fn parse(text: &str) -> Result<Compose, String> {
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(short_error)?
    };
    let top = match value {
        Value::Null => return Ok(Compose::default()),
        Value::Object(map) => map,
        _ => return Err("the top level is not a mapping".into()),
    };
    let mut compose = Compose::default();
    for (key, value) in top {
        match key.as_str() {
            "name" => compose.name = scalar(&value),
            "services" => match value {
                Value::Null => {}
                Value::Object(services) => {
                    for (name, def) in services {
                        let service = match def {
                            Value::Null => Service::default(),
                            Value::Object(map) => Service::from_map(map),
                            _ => return Err(format!("service {name} is not a mapping")),
                        };
                        compose.services.insert(name, service);
                    }
                }
                _ => return Err("services is not a mapping".into()),
            },
            "version" => {}
            k if k.starts_with("x-") => {}
            _ => {
                compose.top.insert(key, value);
            }
        }
    }
    Ok(compose)
}

/// YAML as compose (and most tools today) read it: YAML 1.2 booleans only,
/// so `restart: no` is the string `no`, not `false`.
pub(super) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

/// The first line of a parser error, bounded.
pub(super) fn short_error(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}

/// Compares two versions of a compose file.
pub(super) fn compare(old: &str, new: &str) -> Result<Compared, String> {
    let old = parse(old).map_err(|e| format!("previous version: {e}"))?;
    let new = parse(new)?;
    let mut out = Compared {
        project: new.name.clone().or_else(|| old.name.clone()),
        ..Compared::default()
    };
    if old.name != new.name && old.name.is_some() {
        out.findings.push(Finding::new(
            "compose.project_name",
            Risk::Medium,
            format!(
                "project name {} → {}: its containers are recreated under another name",
                old.name.as_deref().unwrap_or("(folder name)"),
                new.name.as_deref().unwrap_or("(folder name)"),
            ),
        ));
    }
    let empty = Service::default();
    for (name, n) in &new.services {
        let before = out.findings.len();
        match old.services.get(name) {
            Some(o) => compare_service(name, o, n, false, &mut out.findings),
            None => {
                out.findings.push(Finding::new(
                    "compose.service_added",
                    Risk::Low,
                    match &n.image {
                        Some(image) => format!("service {name} added (image {image})"),
                        None => format!("service {name} added"),
                    },
                ));
                compare_service(name, &empty, n, true, &mut out.findings);
            }
        }
        if out.findings.len() > before {
            out.subjects.push(name.clone());
        }
    }
    for name in old.services.keys() {
        if !new.services.contains_key(name) {
            out.findings.push(Finding::new(
                "compose.service_removed",
                Risk::Medium,
                format!("service {name} removed (its containers run on as orphans)"),
            ));
            out.subjects.push(name.clone());
        }
    }
    let keys: BTreeSet<&String> = old.top.keys().chain(new.top.keys()).collect();
    let changed: Vec<&str> = keys
        .into_iter()
        .filter(|k| old.top.get(*k) != new.top.get(*k))
        .map(String::as_str)
        .collect();
    if !changed.is_empty() {
        out.findings.push(Finding::new(
            "compose.top_level",
            Risk::Low,
            format!("top-level {} changed", list(&changed)),
        ));
    }
    Ok(out)
}

/// The services a version defines (for a deleted file).
pub(super) fn subjects(text: &str) -> Compared {
    let compose = parse(text).unwrap_or_default();
    Compared {
        subjects: compose.services.keys().cloned().collect(),
        project: compose.name,
        ..Compared::default()
    }
}

fn compare_service(name: &str, o: &Service, n: &Service, added: bool, out: &mut Vec<Finding>) {
    let mut push = |rule, risk, detail: String| {
        out.push(Finding::new(
            rule,
            risk,
            format!("service {name}: {detail}"),
        ));
    };
    let mut high_privilege = false;
    let mut high_mount = false;

    // Ports.
    for p in n.ports.difference(&o.ports) {
        let shown = p.show();
        match p.exposure() {
            Exposure::All => push(
                "compose.port_public",
                Risk::High,
                format!("port {shown} published on all addresses"),
            ),
            Exposure::Loopback => push(
                "compose.port_loopback",
                Risk::Low,
                format!("port {shown} published on loopback"),
            ),
            Exposure::One => push(
                "compose.port_address",
                Risk::Medium,
                format!("port {shown} published"),
            ),
        }
    }
    for p in o.ports.difference(&n.ports) {
        push(
            "compose.port_removed",
            Risk::Low,
            format!("port {} no longer published", p.show()),
        );
    }

    // Privilege.
    if n.privileged && !o.privileged {
        high_privilege = true;
        push(
            "compose.privileged",
            Risk::High,
            "privileged: true added".into(),
        );
    } else if o.privileged && !n.privileged {
        push("compose.privileged", Risk::Low, "privileged removed".into());
    }
    for key in ["network_mode", "pid", "userns_mode", "ipc", "uts", "cgroup"] {
        let (was, now) = (
            o.raw.get(key).and_then(scalar),
            n.raw.get(key).and_then(scalar),
        );
        if was == now {
            continue;
        }
        let high = matches!(key, "network_mode" | "pid" | "userns_mode");
        if now.as_deref() == Some("host") {
            push(
                "compose.host_namespace",
                if high { Risk::High } else { Risk::Medium },
                format!("{key}: host (shares the host's namespace)"),
            );
        } else if !added {
            push(
                "compose.host_namespace",
                Risk::Medium,
                format!(
                    "{key} {} → {}",
                    was.as_deref().unwrap_or("default"),
                    now.as_deref().unwrap_or("default")
                ),
            );
        }
    }
    for cap in n.cap_add.difference(&o.cap_add) {
        let dangerous = DANGEROUS_CAPS.contains(&cap.as_str());
        push(
            "compose.cap_add",
            if dangerous { Risk::High } else { Risk::Medium },
            format!("cap_add {cap} added"),
        );
    }
    for cap in o.cap_drop.difference(&n.cap_drop) {
        push(
            "compose.cap_drop",
            Risk::Medium,
            format!("cap_drop {cap} removed"),
        );
    }
    for opt in n.security_opt.difference(&o.security_opt) {
        let weakens = opt.contains("unconfined")
            || opt.replace('=', ":") == "label:disable"
            || opt.replace('=', ":") == "no-new-privileges:false";
        push(
            "compose.security_opt",
            if weakens { Risk::High } else { Risk::Medium },
            format!("security_opt {opt} added"),
        );
    }
    for opt in o.security_opt.difference(&n.security_opt) {
        let nnp = opt.starts_with("no-new-privileges") && !opt.ends_with("false");
        push(
            "compose.security_opt",
            if nnp { Risk::High } else { Risk::Medium },
            format!("security_opt {opt} removed"),
        );
    }
    if o.user != n.user && !(added && n.user.is_none()) {
        let root = |u: &Option<String>| {
            u.as_deref().is_none_or(|u| {
                u == "root" || u == "0" || u.starts_with("root:") || u.starts_with("0:")
            })
        };
        let risk = if root(&n.user) && !root(&o.user) {
            Risk::High
        } else if added {
            Risk::Low
        } else {
            Risk::Medium
        };
        if !(added && risk == Risk::Low) {
            push(
                "compose.user",
                risk,
                format!(
                    "user {} → {}",
                    o.user.as_deref().unwrap_or("(image default)"),
                    n.user.as_deref().unwrap_or("(image default)")
                ),
            );
        }
    }

    // Mounts.
    let mut other_mounts = false;
    for m in n.mounts.difference(&o.mounts) {
        match sensitive(&m.source) {
            Some(what) => {
                high_mount |= what == "/" || what.ends_with(".sock") || what == "/run";
                push(
                    "compose.host_mount",
                    Risk::High,
                    format!(
                        "host path {} mounted at {}{}",
                        m.source,
                        m.target,
                        if m.read_only { " (read-only)" } else { "" }
                    ),
                );
            }
            None => other_mounts = true,
        }
    }
    if !added && (other_mounts || o.mounts.difference(&n.mounts).next().is_some()) {
        push("compose.volumes", Risk::Low, "volumes changed".into());
    }

    if n.privileged
        && n.mounts.iter().any(|m| {
            sensitive(&m.source).is_some_and(|w| w == "/" || w.ends_with(".sock") || w == "/run")
        })
        && (high_privilege || high_mount)
    {
        push(
            "compose.privileged_host_access",
            Risk::Critical,
            "privileged with the host's root or engine socket mounted: it controls the host".into(),
        );
    }

    if added {
        return;
    }
    // Behaviour.
    if o.image != n.image {
        push(
            "compose.image",
            Risk::Medium,
            format!(
                "image {} → {}",
                o.image.as_deref().unwrap_or("(none)"),
                n.image.as_deref().unwrap_or("(none)")
            ),
        );
    }
    let vars: BTreeSet<&String> = o.environment.keys().chain(n.environment.keys()).collect();
    for var in vars {
        let what = match (o.environment.get(var), n.environment.get(var)) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (a, b) if a != b => "changed",
            _ => continue,
        };
        push("compose.environment", Risk::Medium, format!("{var} {what}"));
    }
    for (key, rule) in [
        ("env_file", "compose.env_file"),
        ("restart", "compose.restart"),
        ("command", "compose.command"),
        ("entrypoint", "compose.command"),
    ] {
        let (was, now) = (o.raw.get(key), n.raw.get(key));
        if was == now {
            continue;
        }
        let detail = match (key, was.and_then(scalar), now.and_then(scalar)) {
            ("restart", a, b) => format!(
                "restart {} → {}",
                a.as_deref().unwrap_or("no"),
                b.as_deref().unwrap_or("no")
            ),
            _ => format!("{key} changed"),
        };
        push(rule, Risk::Medium, detail);
    }
    let keys: BTreeSet<&String> = o.raw.keys().chain(n.raw.keys()).collect();
    let other: Vec<&str> = keys
        .into_iter()
        .filter(|k| !HANDLED.contains(&k.as_str()) && o.raw.get(*k) != n.raw.get(*k))
        .map(String::as_str)
        .collect();
    if !other.is_empty() {
        push(
            "compose.other",
            Risk::Low,
            format!("{} changed", list(&other)),
        );
    }
}

/// At most a few names, then a count.
pub(super) fn list(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// A scalar as text (`null` is none).
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on"),
        _ => false,
    }
}

/// A list of scalars, or a single one.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().collect(),
        None => Vec::new(),
    }
}

impl Service {
    fn from_map(raw: Map<String, Value>) -> Service {
        let caps = |key| {
            strings(raw.get(key))
                .into_iter()
                .map(|c| {
                    let c = c.trim().to_ascii_uppercase();
                    c.strip_prefix("CAP_").map(str::to_string).unwrap_or(c)
                })
                .collect()
        };
        let mut environment = BTreeMap::new();
        match raw.get("environment") {
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    environment.insert(k.clone(), scalar(v));
                }
            }
            Some(Value::Array(items)) => {
                for item in items.iter().filter_map(scalar) {
                    match item.split_once('=') {
                        Some((k, v)) => environment.insert(k.to_string(), Some(v.to_string())),
                        None => environment.insert(item, None),
                    };
                }
            }
            _ => {}
        }
        let ports = match raw.get("ports") {
            Some(Value::Array(items)) => items.iter().filter_map(PortSpec::from_value).collect(),
            _ => BTreeSet::new(),
        };
        let mounts = match raw.get("volumes") {
            Some(Value::Array(items)) => items.iter().filter_map(Mount::from_value).collect(),
            _ => BTreeSet::new(),
        };
        Service {
            image: raw.get("image").and_then(scalar),
            privileged: truthy(raw.get("privileged")),
            cap_add: caps("cap_add"),
            cap_drop: caps("cap_drop"),
            security_opt: strings(raw.get("security_opt")).into_iter().collect(),
            user: raw.get("user").and_then(scalar),
            environment,
            ports,
            mounts,
            raw,
        }
    }
}

enum Exposure {
    All,
    Loopback,
    One,
}

impl PortSpec {
    fn from_value(v: &Value) -> Option<PortSpec> {
        if let Value::Object(m) = v {
            let get = |k| m.get(k).and_then(scalar).filter(|s| !s.is_empty());
            return Some(PortSpec {
                host_ip: get("host_ip").map(|ip| normalise_ip(&ip)),
                published: get("published"),
                target: get("target")?,
                protocol: get("protocol").unwrap_or_else(|| "tcp".into()),
            });
        }
        let s = scalar(v)?;
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((spec, proto)) => (spec, proto.to_string()),
            None => (s.as_str(), "tcp".to_string()),
        };
        let (host_ip, rest) = match spec.strip_prefix('[') {
            Some(r) => {
                let (ip, rest) = r.split_once(']')?;
                (Some(ip.to_string()), rest.strip_prefix(':')?)
            }
            None => (None, spec),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, published, target) = match (host_ip, parts.as_slice()) {
            (ip, [t]) => (ip, None, *t),
            (ip @ Some(_), [p, t]) => (ip, Some(*p), *t),
            (None, [p, t]) => (None, Some(*p), *t),
            (_, [.., p, t]) => (Some(parts[..parts.len() - 2].join(":")), Some(*p), *t),
            (_, []) => return None,
        };
        Some(PortSpec {
            host_ip: ip.map(|ip| normalise_ip(&ip)),
            published: published.filter(|p| !p.is_empty()).map(str::to_string),
            target: target.to_string(),
            protocol,
        })
    }

    fn exposure(&self) -> Exposure {
        match self.host_ip.as_deref() {
            None | Some("0.0.0.0" | "::" | "") => Exposure::All,
            Some(ip) if ip.starts_with("127.") || ip == "::1" || ip == "localhost" => {
                Exposure::Loopback
            }
            Some(_) => Exposure::One,
        }
    }

    fn show(&self) -> String {
        let mut s = String::new();
        if let Some(ip) = &self.host_ip {
            s.push_str(ip);
            s.push(':');
        }
        if let Some(p) = &self.published {
            s.push_str(p);
            s.push(':');
        }
        s.push_str(&self.target);
        if self.protocol != "tcp" {
            s.push('/');
            s.push_str(&self.protocol);
        }
        s
    }
}

fn normalise_ip(ip: &str) -> String {
    ip.trim_start_matches('[').trim_end_matches(']').to_string()
}

impl Mount {
    fn from_value(v: &Value) -> Option<Mount> {
        if let Value::Object(m) = v {
            let get = |k| m.get(k).and_then(scalar);
            let bind = get("type").is_none_or(|t| t == "bind");
            let source = get("source").filter(|_| bind).unwrap_or_default();
            return Some(Mount {
                source: normalise_path(&source),
                target: get("target")?,
                read_only: truthy(m.get("read_only")),
            });
        }
        let s = scalar(v)?;
        // SOURCE:TARGET[:MODE] or TARGET (an anonymous volume).
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [t] => ("", *t, ""),
            [s, t] => (*s, *t, ""),
            [s, t, m, ..] => (*s, *t, *m),
            [] => return None,
        };
        Some(Mount {
            source: normalise_path(source),
            target: target.to_string(),
            read_only: mode.split(',').any(|m| m == "ro"),
        })
    }
}

/// Host paths normalised (`.`/`..` resolved, `/var/run` is `/run`); named
/// volumes and relative paths are kept as written.
fn normalise_path(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut s = format!("/{}", parts.join("/"));
    if s == "/var/run" || s.starts_with("/var/run/") {
        s.replace_range(..8, "/run");
    }
    s
}

/// Why mounting this host path is dangerous: the sensitive path it is, or
/// the engine socket's name.
fn sensitive(source: &str) -> Option<&str> {
    if !source.starts_with('/') {
        return None;
    }
    if SENSITIVE_PATHS.contains(&source) || source.starts_with("/root/") {
        return Some(source);
    }
    let file = source.rsplit('/').next().unwrap_or("");
    if ENGINE_SOCKETS.contains(&file)
        || ["/run/docker", "/run/podman", "/run/containerd"]
            .iter()
            .any(|d| source == *d || source.starts_with(&format!("{d}/")))
    {
        return Some(if file.ends_with(".sock") {
            file
        } else {
            "docker.sock"
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(s: &str) -> PortSpec {
        PortSpec::from_value(&Value::String(s.into())).unwrap()
    }

    #[test]
    fn ports_parse_in_every_short_form() {
        assert!(matches!(port("8080:80").exposure(), Exposure::All));
        assert!(matches!(port("80").exposure(), Exposure::All));
        assert!(matches!(port("0.0.0.0:8080:80").exposure(), Exposure::All));
        assert!(matches!(port("[::]:8080:80/udp").exposure(), Exposure::All));
        assert!(matches!(
            port("127.0.0.1:8080:80").exposure(),
            Exposure::Loopback
        ));
        assert!(matches!(
            port("[::1]:8080:80").exposure(),
            Exposure::Loopback
        ));
        assert!(matches!(port("::1:8080:80").exposure(), Exposure::Loopback));
        assert!(matches!(
            port("192.168.1.5:8080:80").exposure(),
            Exposure::One
        ));
        assert_eq!(
            port("127.0.0.1:8080:80/udp").show(),
            "127.0.0.1:8080:80/udp"
        );
    }

    #[test]
    fn paths_normalise_before_they_are_judged() {
        assert_eq!(normalise_path("/var/run/docker.sock"), "/run/docker.sock");
        assert_eq!(normalise_path("/srv/../etc/"), "/etc");
        assert_eq!(normalise_path("//"), "/");
        assert!(sensitive("/").is_some());
        assert!(sensitive(&normalise_path("/var/run/docker.sock")).is_some());
        assert!(sensitive("/run/user/1000/podman/podman.sock").is_some());
        assert!(sensitive("/etc/nginx").is_none());
        assert!(sensitive("./data").is_none());
    }
}
