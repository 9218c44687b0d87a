//! Parsers fed real recordings from Podman 4.3's Docker-compatible API.

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, EventMessage};

use super::*;

fn inspect(json: &str) -> Container {
    let raw: ContainerInspectResponse = serde_json::from_str(json).unwrap();
    from_inspect(&raw).unwrap()
}

#[test]
fn maps_a_running_compose_container() {
    let c = inspect(include_str!("testdata/podman_inspect_running.json"));
    assert_eq!(c.name, "rec-web");
    assert_eq!(c.state, "running");
    assert_eq!(c.image, "localhost/twinbay-busybox:latest");
    assert_eq!(c.ports, ["127.0.0.1:18080->80/tcp"]);
    assert_eq!(c.compose_project.as_deref(), Some("homelab"));
    assert_eq!(c.compose_service.as_deref(), Some("web"));
    assert!(
        c.created.as_deref().is_some_and(|t| t.starts_with("2026-")),
        "{:?}",
        c.created
    );
    assert!(
        c.started_at
            .as_deref()
            .is_some_and(|t| t.starts_with("2026-")),
        "{:?}",
        c.started_at
    );
    assert_eq!(c.id.len(), 64);
    assert_eq!(c.health, None);
}

#[test]
fn keeps_the_exit_code_of_a_stopped_container() {
    let c = inspect(include_str!("testdata/podman_inspect_exited.json"));
    assert_eq!(c.state, "exited");
    assert_eq!(c.exit_code, Some(3));
}

#[test]
fn every_recorded_event_names_its_container() {
    let events: Vec<EventMessage> = include_str!("testdata/podman_events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 14);
    let named: Vec<(String, String)> = events.iter().filter_map(event_container).collect();
    assert_eq!(named.len(), 14);
    let actions: Vec<&str> = named.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(&actions[..3], ["create", "init", "start"]);
    assert!(actions.contains(&"die") && actions.ends_with(&["remove", "remove"]));
    // The last events are for containers that no longer exist: the source
    // re-inspects, gets a 404 and removes them.
    assert_eq!(named[12].0.len(), 64);
}

#[test]
fn ignores_events_about_other_things() {
    let image: EventMessage = serde_json::from_str(
        r#"{"Type":"image","Action":"pull","Actor":{"ID":"sha256:abc"},"time":1}"#,
    )
    .unwrap();
    assert_eq!(event_container(&image), None);
    let no_actor: EventMessage =
        serde_json::from_str(r#"{"Type":"container","Action":"start"}"#).unwrap();
    assert_eq!(event_container(&no_actor), None);
}

#[test]
fn computes_cpu_from_successive_stats() {
    let at = |total: u64, system: u64| -> ContainerStatsResponse {
        serde_json::from_value(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": 2},
            "memory_stats": {"usage": 5_000_000, "limit": 8_000_000_000u64}
        }))
        .unwrap()
    };
    let (first, counters) = stats_sample("c1", &at(1_000, 10_000), None);
    assert_eq!(first.cpu_pct, 0.0, "no rate from one reading");
    assert_eq!(first.mem_bytes, 5_000_000);
    let (second, _) = stats_sample("c1", &at(1_500, 12_000), counters);
    // 500 of 2000 system ticks, on 2 CPUs: half a core.
    assert_eq!(second.cpu_pct, 50.0);
}

#[test]
fn looks_for_sockets_in_the_usual_places() {
    let c = candidate_sockets(
        Some("/custom.sock"),
        Some("unix:///run/user/1000/docker.sock"),
        Some("/run/user/1000"),
    );
    let c: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        c,
        [
            "/custom.sock",
            "/run/user/1000/docker.sock",
            "/var/run/docker.sock",
            "/run/user/1000/podman/podman.sock",
            "/run/podman/podman.sock"
        ]
    );
    // A TCP DOCKER_HOST is not a socket we can use.
    assert_eq!(
        candidate_sockets(None, Some("tcp://10.0.0.1:2375"), None).len(),
        2
    );
}

#[test]
fn an_event_updates_the_container_before_any_inspect() {
    let events: Vec<EventMessage> = include_str!("testdata/podman_events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut c = inspect(include_str!("testdata/podman_inspect_exited.json"));
    c.state = "created".into();
    c.exit_code = None;
    // rec-exit's recorded "start", then its "die" with exit code 3.
    let start = events
        .iter()
        .find(|e| e.action.as_deref() == Some("start") && event_name(e) == "rec-exit")
        .unwrap();
    assert!(apply_event(&mut c, "start", start));
    assert_eq!(c.state, "running");
    let die = events
        .iter()
        .find(|e| e.action.as_deref() == Some("die") && event_name(e) == "rec-exit")
        .unwrap();
    assert!(apply_event(&mut c, "die", die));
    assert_eq!((c.state.as_str(), c.exit_code), ("exited", Some(3)));
    assert!(
        !apply_event(&mut c, "die", die),
        "the same event twice changes nothing"
    );
    assert!(!apply_event(&mut c, "cleanup", die));
}

fn event_name(e: &EventMessage) -> &str {
    e.actor
        .as_ref()
        .and_then(|a| a.attributes.as_ref())
        .and_then(|a| a.get("name"))
        .map(String::as_str)
        .unwrap_or("")
}

#[test]
fn an_event_handled_from_the_log_file_is_skipped_once_when_the_api_brings_it() {
    let mut seen = Seen::default();
    seen.add("a", "start", None);
    seen.add("a", "die", None);
    seen.add("a", "start", None);
    assert!(seen.take("a", "die", Some(5)));
    assert!(!seen.take("a", "die", None), "each copy once");
    assert!(seen.take("a", "start", None) && seen.take("a", "start", None));
    assert!(!seen.take("a", "start", None));
    assert!(!seen.take("b", "start", None));
    // With times, only the very same event matches.
    seen.add("a", "start", Some(10));
    seen.add("a", "start", Some(30));
    assert!(
        !seen.take("a", "start", Some(20)),
        "an event the file missed"
    );
    assert!(seen.take("a", "start", Some(30)));
    assert!(seen.take("a", "start", Some(10)));
    for i in 0..MAX_SEEN + 10 {
        seen.add(&i.to_string(), "create", None);
    }
    assert_eq!(seen.events.len(), MAX_SEEN, "bounded");
    assert!(!seen.take("0", "create", None), "the oldest forgotten");
    assert!(seen.take(&(MAX_SEEN + 9).to_string(), "create", None));
}
