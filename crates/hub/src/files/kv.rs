//! `.env` files, plain YAML and everything else: which keys (or lines)
//! changed, and whether any of them looks like a secret (the rules are listed
//! in [`super::risk`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::compose::{list, short_error, yaml_options};
use super::risk::{Compared, Finding, Risk};

/// Parts of a name that mark it as holding a secret.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "CERT",
    "SALT",
    "DSN",
];

/// Paths deeper than this in a YAML document are compared as a whole.
const MAX_DEPTH: usize = 16;

/// Whether a variable or key name looks like it holds a secret.
pub(super) fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| {
            part.ends_with("APIKEY")
                || SECRET_WORDS
                    .iter()
                    .any(|w| part == *w || (w.len() >= 5 && part.ends_with(w)))
        })
}

/// A value the agent replaced by a marker (`«redacted:1a2b3c4d»`).
fn redacted(value: &str) -> bool {
    value.contains("«redacted:")
}

/// `KEY=VALUE` lines (`export`, quotes and comments understood).
fn parse_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=VALUE", n + 1))?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {}: expected KEY=VALUE", n + 1));
        }
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &value[1..];
                inner.find(q).map_or(inner, |end| &inner[..end])
            }
            _ => value.find(" #").map_or(value, |c| value[..c].trim_end()),
        };
        vars.insert(key.to_string(), value.to_string());
    }
    Ok(vars)
}

pub(super) fn compare_env(old: &str, new: &str) -> Result<Compared, String> {
    let old = parse_env(old).map_err(|e| format!("previous version: {e}"))?;
    let new = parse_env(new)?;
    let mut secret = Vec::new();
    let mut plain: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        let what = match (a, b) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (a, b) if a != b => "changed",
            _ => continue,
        };
        let is_secret =
            secret_name(key) || a.is_some_and(|v| redacted(v)) || b.is_some_and(|v| redacted(v));
        if is_secret {
            secret.push(format!("{key} {what}"));
        } else {
            plain.entry(what).or_default().push(key.as_str());
        }
    }
    let mut out = Compared::default();
    if !secret.is_empty() {
        let names: Vec<&str> = secret.iter().map(String::as_str).collect();
        out.findings
            .push(Finding::new("env.secret", Risk::Medium, list(&names)));
    }
    if !plain.is_empty() {
        let parts: Vec<String> = plain
            .iter()
            .map(|(what, keys)| format!("{what}: {}", list(keys)))
            .collect();
        out.findings
            .push(Finding::new("env.changed", Risk::Low, parts.join("; ")));
    }
    Ok(out)
}

fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let docs: Vec<Value> =
        serde_saphyr::from_str_multiple_with_options::<Value, Vec<Value>>(text, yaml_options())
            .map_err(short_error)?;
    Ok(match docs.len() {
        0 => Value::Null,
        1 => docs.into_iter().next().unwrap_or(Value::Null),
        _ => Value::Array(docs),
    })
}

/// Collects the paths where `a` and `b` differ.
fn differences(a: &Value, b: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if path.len() < MAX_DEPTH => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(k.clone());
                differences(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    path,
                    out,
                );
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() && path.len() < MAX_DEPTH => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                path.push(i.to_string());
                differences(p, q, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

/// Secret-looking names anywhere under a value (its keys).
fn holds_secret(v: &Value, depth: usize) -> bool {
    match v {
        Value::Object(m) if depth < MAX_DEPTH => m
            .iter()
            .any(|(k, v)| secret_name(k) || holds_secret(v, depth + 1)),
        Value::Array(items) if depth < MAX_DEPTH => {
            items.iter().any(|v| holds_secret(v, depth + 1))
        }
        Value::String(s) => redacted(s),
        _ => false,
    }
}

fn at<'v>(v: &'v Value, path: &[String]) -> &'v Value {
    path.iter().fold(v, |v, k| match v {
        Value::Object(m) => m.get(k).unwrap_or(&Value::Null),
        Value::Array(a) => k
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get(i))
            .unwrap_or(&Value::Null),
        _ => &Value::Null,
    })
}

pub(super) fn compare_yaml(old: &str, new: &str) -> Result<Compared, String> {
    let old = parse_yaml(old).map_err(|e| format!("previous version: {e}"))?;
    let new = parse_yaml(new)?;
    let mut paths = Vec::new();
    differences(&old, &new, &mut Vec::new(), &mut paths);
    let mut out = Compared::default();
    if paths.is_empty() {
        return Ok(out);
    }
    let secret: BTreeSet<String> = paths
        .iter()
        .filter(|p| {
            p.iter().any(|k| secret_name(k))
                || holds_secret(at(&old, p), 0)
                || holds_secret(at(&new, p), 0)
        })
        .map(|p| p.join("."))
        .collect();
    if !secret.is_empty() {
        let names: Vec<&str> = secret.iter().map(String::as_str).collect();
        out.findings.push(Finding::new(
            "yaml.secret",
            Risk::Medium,
            format!("secret-looking {} changed", list(&names)),
        ));
    }
    let top: BTreeSet<&str> = paths
        .iter()
        .map(|p| p.first().map_or("(the document)", String::as_str))
        .collect();
    let names: Vec<&str> = top.into_iter().collect();
    out.findings.push(Finding::new(
        "yaml.changed",
        Risk::Low,
        format!("{} changed", list(&names)),
    ));
    Ok(out)
}

/// Lines added and removed, whitespace at the ends ignored (and, for
/// `comments`, `#` comment lines and indentation too).
pub(super) fn compare_lines(old: &str, new: &str, comments: bool) -> Compared {
    let lines = |text: &'_ str| -> BTreeMap<String, i64> {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let line = if comments {
                line.trim()
            } else {
                line.trim_end()
            };
            if line.trim().is_empty() || (comments && line.starts_with('#')) {
                continue;
            }
            *counts.entry(line.to_string()).or_insert(0) += 1;
        }
        counts
    };
    let (a, b) = (lines(old), lines(new));
    let mut out = Compared::default();
    let (mut added, mut removed) = (0, 0);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let d = b.get(k).unwrap_or(&0) - a.get(k).unwrap_or(&0);
        if d > 0 {
            added += d;
        } else {
            removed -= d;
        }
    }
    let order_changed = {
        let seq = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| if comments { l.trim() } else { l.trim_end() })
                .filter(|l| !l.trim().is_empty() && (!comments || !l.starts_with('#')))
                .map(str::to_string)
                .collect()
        };
        seq(old) != seq(new)
    };
    if added + removed > 0 {
        out.findings.push(Finding::new(
            "content.lines",
            Risk::Low,
            format!("{added} lines added, {removed} removed"),
        ));
    } else if order_changed {
        out.findings
            .push(Finding::new("content.lines", Risk::Low, "lines reordered"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for s in [
            "DB_PASSWORD",
            "api_key",
            "APIKEY",
            "DBPASSWORD",
            "GITHUB_TOKEN",
            "AUTH",
            "db.password",
            "SECRET_KEY_BASE",
        ] {
            assert!(secret_name(s), "{s}");
        }
        for s in ["LOG_LEVEL", "PORT", "HOSTNAME", "MONKEY_COUNT", "PWD"] {
            assert!(!secret_name(s), "{s}");
        }
    }

    #[test]
    fn env_parsing() {
        let vars = parse_env("# c\nexport A=1\nB=\"two words\" \nC=x # note\n\n").unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x");
        assert!(parse_env("just text").is_err());
    }
}
