//! `podman ps -a --format json` (one JSON array) and
//! `docker ps -a --no-trunc --format '{{json .}}'` (one object a line).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use twinbay_proto::model::Container;

use crate::{ParseError, excerpt};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanPs {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(default, rename = "ImageID")]
    image_id: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    restarts: Option<u32>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ports: Option<Vec<Value>>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    started_at: Option<i64>,
}

/// The health in a status like `Up 41 minutes (healthy)`.
fn health(status: &str) -> Option<String> {
    let inner = status.rsplit_once('(')?.1.strip_suffix(')')?;
    matches!(
        inner,
        "healthy" | "unhealthy" | "starting" | "health: starting"
    )
    .then(|| inner.trim_start_matches("health: ").to_string())
}

/// Unix seconds as RFC 3339 (UTC), without a date library.
fn rfc3339(secs: i64) -> Option<String> {
    if !(0..=253_402_300_799).contains(&secs) {
        return None;
    }
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

fn with_compose(mut c: Container) -> Container {
    c.compose_project = c.labels.get("com.docker.compose.project").cloned();
    c.compose_service = c.labels.get("com.docker.compose.service").cloned();
    c
}

/// Exit code from a status like `Exited (3) 2 hours ago`.
fn exit_code(status: &str) -> Option<i64> {
    status
        .strip_prefix("Exited (")?
        .split_once(')')?
        .0
        .parse()
        .ok()
}

/// Parses `podman ps -a --format json`.
pub fn podman_ps(text: &str) -> Result<Vec<Container>, ParseError> {
    let list: Vec<PodmanPs> = serde_json::from_str(text.trim()).map_err(|e| {
        ParseError::new(
            "podman ps",
            format!("not podman's JSON ({e}): {}", excerpt(text)),
        )
    })?;
    Ok(list
        .into_iter()
        .map(|p| {
            let ports = p
                .ports
                .unwrap_or_default()
                .iter()
                .filter_map(|v| {
                    let host = v.get("host_port")?.as_u64()?;
                    let inner = v.get("container_port")?.as_u64()?;
                    let proto = v.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
                    let ip = v
                        .get("host_ip")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("0.0.0.0");
                    Some(format!("{ip}:{host}->{inner}/{proto}"))
                })
                .collect();
            let exited = p.state == "exited";
            with_compose(Container {
                id: p.id,
                name: p.names.into_iter().next().unwrap_or_default().into(),
                image: p.image.into(),
                health: health(&p.status).map(Into::into),
                state: p.state.into(),
                exit_code: if exited { p.exit_code } else { None },
                restart_count: p.restarts.unwrap_or(0),
                ports,
                labels: p
                    .labels
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
                created: p.created.and_then(rfc3339),
                started_at: p.started_at.and_then(rfc3339),
                image_id: p.image_id.map(|i| {
                    if i.starts_with("sha256:") {
                        i
                    } else {
                        format!("sha256:{i}")
                    }
                    .into()
                }),
                ..Default::default()
            })
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerPs {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    names: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: String,
    #[serde(default)]
    ports: String,
    #[serde(default)]
    created_at: String,
}

/// Parses `docker ps -a --format '{{json .}}'`: one object a line.
pub fn docker_ps(text: &str) -> Result<Vec<Container>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let d: DockerPs = serde_json::from_str(line).map_err(|e| {
            ParseError::new(
                "docker ps",
                format!("line {}: not docker's JSON ({e}): {}", i + 1, excerpt(line)),
            )
        })?;
        // Labels are `k=v,k2=v2`; a value may itself hold commas, which
        // then belong to the previous value.
        let mut labels = BTreeMap::new();
        let mut last: Option<String> = None;
        for part in d.labels.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => {
                    labels.insert(k.to_string(), v.to_string());
                    last = Some(k.to_string());
                }
                None => {
                    if let Some(v) = last.as_ref().and_then(|k| labels.get_mut(k)) {
                        v.push(',');
                        v.push_str(part);
                    }
                }
            }
        }
        out.push(with_compose(Container {
            id: d.id,
            name: d.names.split(',').next().unwrap_or_default().into(),
            image: d.image.into(),
            health: health(&d.status).map(Into::into),
            exit_code: exit_code(&d.status),
            state: d.state.into(),
            ports: d
                .ports
                .split(", ")
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            labels: labels
                .into_iter()
                .map(|(k, v): (String, String)| (k.into(), v.into()))
                .collect(),
            created: (!d.created_at.is_empty()).then_some(d.created_at),
            ..Default::default()
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_recorded() {
        let c = podman_ps(include_str!("../testdata/debian/podman_ps.json")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "web-proxy-1");
        assert_eq!(c[0].state, "running");
        assert_eq!(c[0].compose_service.as_deref(), Some("proxy"));
        assert_eq!(c[0].ports, ["0.0.0.0:8080->80/tcp"]);
        assert_eq!(c[0].restart_count, 2);
        assert_eq!(c[0].exit_code, None);
        assert_eq!(c[0].started_at.as_deref(), Some("2024-12-04T02:40:00Z"));
        assert_eq!((c[1].state.as_str(), c[1].exit_code), ("exited", Some(3)));
        assert_eq!(podman_ps("[]").unwrap(), vec![]);
    }

    #[test]
    fn docker_recorded() {
        let c = docker_ps(include_str!("../testdata/debian/docker_ps.jsonl")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].health.as_deref(), Some("healthy"));
        assert_eq!(c[0].compose_project.as_deref(), Some("web"));
        assert_eq!(
            c[0].labels.get("maintainer").unwrap(),
            "NGINX Docker Maintainers <docker-maint@nginx.com>"
        );
        assert_eq!(c[0].ports.len(), 2);
        assert_eq!(c[1].exit_code, Some(3));
        assert_eq!(docker_ps("").unwrap(), vec![]);
    }

    #[test]
    fn garbage_and_truncated() {
        let p = include_str!("../testdata/debian/podman_ps.json");
        assert!(
            podman_ps(&p[..p.len() / 2])
                .unwrap_err()
                .to_string()
                .starts_with("podman ps: not podman's JSON")
        );
        let e = docker_ps("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
            .unwrap_err();
        assert!(e.to_string().starts_with("docker ps: line 1"), "{e}");
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339(-62135596800), None);
    }
}
