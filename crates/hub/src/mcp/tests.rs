use proptest::prelude::*;
use serde_json::{Value, json};

use super::audit::{ACTS, action, redact};
use super::decode::{RunCommandArgs, command_body, parse_target};
use super::read::{HostList, HostOut, changes_out, cut, summarize, thin};
use super::{McpServer, Mode};

fn args(v: Value) -> Result<RunCommandArgs, serde_json::Error> {
    serde_json::from_value(v)
}

#[test]
fn modes_parse_and_read_only_registers_no_act_tools() {
    assert_eq!("on".parse::<Mode>(), Ok(Mode::On));
    assert_eq!("read-only".parse::<Mode>(), Ok(Mode::ReadOnly));
    assert_eq!("off".parse::<Mode>(), Ok(Mode::Off));
    assert!("yes".parse::<Mode>().is_err());
    let on = McpServer::tool_set(Mode::On);
    let ro = McpServer::tool_set(Mode::ReadOnly);
    assert!(on.has_route("run_command"));
    assert!(!ro.has_route("run_command"));
    for tool in ro.list_all() {
        let a = tool.annotations.as_ref().expect("annotations");
        assert_eq!(a.read_only_hint, Some(true), "{}", tool.name);
        assert!(
            tool.output_schema.is_some(),
            "{} has an output schema",
            tool.name
        );
    }
    let run = on.get("run_command").unwrap();
    let a = run.annotations.as_ref().unwrap();
    assert_eq!(
        (a.read_only_hint, a.destructive_hint),
        (Some(false), Some(true))
    );
    for read in ["list_schedules", "list_backups", "list_alerts"] {
        assert!(ro.has_route(read) && on.has_route(read), "{read}");
    }
}

/// The act tools are exactly the ones audited as acts and hidden from a
/// read-only token; each says honestly what it does.
#[test]
fn act_tools_are_the_audited_acts_with_honest_annotations() {
    let acts = McpServer::act_set();
    let mut names: Vec<String> = acts.list_all().iter().map(|t| t.name.to_string()).collect();
    names.sort();
    let mut listed: Vec<String> = ACTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(names, listed);
    let on = McpServer::tool_set(Mode::On);
    for tool in on.list_all() {
        let a = tool.annotations.as_ref().expect("annotations");
        let act = ACTS.contains(&tool.name.as_ref());
        assert_eq!(a.read_only_hint, Some(!act), "{}", tool.name);
        assert!(tool.output_schema.is_some(), "{}", tool.name);
        if act {
            assert!(a.destructive_hint.is_some() && a.idempotent_hint.is_some());
        }
    }
    let hint = |name: &str| {
        let a = on.get(name).unwrap().annotations.clone().unwrap();
        (a.destructive_hint, a.idempotent_hint)
    };
    assert_eq!(hint("acknowledge_alert"), (Some(false), Some(true)));
    assert_eq!(hint("silence_alert"), (Some(false), Some(false)));
    assert_eq!(hint("run_schedule_now"), (Some(true), Some(false)));
    assert_eq!(action("silence_alert"), "mcp.silence_alert");
    assert_eq!(action("list_backups"), "mcp.read");
}

#[test]
fn targets_and_bodies() {
    assert_eq!(
        parse_target("container:web").unwrap(),
        ("container", "web".into())
    );
    assert_eq!(parse_target("web").unwrap(), ("container", "web".into()));
    assert_eq!(parse_target("agent").unwrap(), ("agent", String::new()));
    assert_eq!(
        parse_target("user-unit:x.service").unwrap(),
        ("user_unit", "x.service".into())
    );
    assert!(parse_target("disk:sda").is_err());
    assert!(parse_target("unit:").is_err());

    let a = args(json!({"node": "n1", "verb": "restart", "target": "container:web"})).unwrap();
    assert_eq!(
        command_body(&a).unwrap(),
        json!({"op": "lifecycle", "verb": "restart", "target": {"kind": "container", "name": "web"}})
    );
    let a =
        args(json!({"node": "n1", "action": "vacuum", "args": {"n": 30, "full": true}})).unwrap();
    assert_eq!(
        command_body(&a).unwrap(),
        json!({"op": "action", "name": "vacuum", "args": {"n": 30, "full": true}})
    );
    for bad in [
        json!({"node": "n1"}),
        json!({"node": "n1", "verb": "stop", "action": "x"}),
        json!({"node": "n1", "verb": "stop"}),
        json!({"node": "n1", "verb": "stop", "target": "web", "args": {}}),
        json!({"node": "n1", "action": "x", "args": {"v": "x".repeat(5000)}}),
    ] {
        assert!(command_body(&args(bad.clone()).unwrap()).is_err(), "{bad}");
    }
    assert!(args(json!({"node": "n1", "verb": "explode", "target": "web"})).is_err());
    assert!(args(json!({"node": 5, "verb": "stop"})).is_err());
    assert!(args(json!({"node": "n1", "verb": "stop", "extra": 1})).is_err());
}

#[test]
fn secrets_are_redacted_and_actions_named() {
    let v = redact(&json!({"node": "n1", "args": {"password": "p", "api_token": 5, "n": 3}}));
    assert_eq!(
        v,
        json!({"node": "n1", "args": {"password": "«redacted»", "api_token": "«redacted»", "n": 3}})
    );
    assert_eq!(action("run_command"), "mcp.run_command");
    assert_eq!(action("get_host"), "mcp.read");
}

#[test]
fn caps_cut_and_say_so() {
    let mut s = "ab€".repeat(10);
    assert!(cut(&mut s, 7, true));
    assert!(s.len() <= 7 && s.ends_with('€'));
    let mut s = "short".to_string();
    assert!(!cut(&mut s, 7, false));
    let points: Vec<[f64; 4]> = (0..1000).map(|i| [i as f64, 1.0, 2.0, 3.0]).collect();
    let (thinned, cut) = thin(points.clone(), 100);
    assert!(cut);
    assert_eq!(thinned.len(), 100);
    assert_eq!(thinned.last().unwrap()[0], 999.0);
    let s = summarize(&points);
    assert_eq!(
        (s.min, s.avg, s.max, s.points),
        (Some(1.0), Some(2.0), Some(3.0), 1000)
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever an assistant sends, decoding answers (a body or a clear
    /// error) and never panics; a body is always one the commands API
    /// reads as an object with an `op`.
    #[test]
    fn decoding_any_arguments_is_total(
        node in ".{0,20}",
        verb in prop::option::of(prop_oneof![Just("restart"), Just("logs"), Just("nope")]),
        target in prop::option::of(".{0,30}"),
        action in prop::option::of("[a-z]{1,10}"),
        extra in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..5),
        lines in prop::option::of(any::<u32>()),
    ) {
        let mut v = json!({"node": node});
        if let Some(verb) = verb { v["verb"] = json!(verb); }
        if let Some(t) = target { v["target"] = json!(t); }
        if let Some(a) = action { v["action"] = json!(a); v["args"] = json!(extra); }
        if let Some(l) = lines { v["lines"] = json!(l); }
        if let Ok(a) = args(v)
            && let Ok(body) = command_body(&a)
        {
            prop_assert!(body["op"] == "lifecycle" || body["op"] == "action");
        }
        prop_assert!(redact(&json!(extra)).is_object());
    }
}

#[test]
fn twin_changes_are_told_apart_from_samples() {
    use super::watch::changed;
    assert_eq!(
        changed(r#"{"type":"diff","id":"n_a","seq":3,"applied_ms":1,"changes":[]}"#),
        Some("n_a")
    );
    // `json!` sorts its keys: `type` is not first.
    assert_eq!(
        changed(r#"{"agent_version":"1","connected":false,"id":"n_b","type":"status"}"#),
        Some("n_b")
    );
    assert_eq!(
        changed(r#"{"type":"node","node":{"hostname":"x","id":"n_c"}}"#),
        Some("n_c")
    );
    for other in [
        r#"{"type":"metrics","id":"n_a","sample":{}}"#,
        r#"{"type":"event","event":{"node_id":"n_a"}}"#,
        r#"{"type":"snapshot","nodes":[]}"#,
        r#"{"alert":{},"id":"n_a","type":"alert"}"#,
        r#"{"type":"diff","#,
        "",
    ] {
        assert_eq!(changed(other), None, "{other}");
    }
}

/// The big reads print their answer once and hand that text over as the
/// text content: it must be exactly the structured content's JSON.
#[test]
fn answers_text_is_their_structured_content() {
    let host =
        json!({"id": "n_1", "containers": {"b": {"name": "web", "cpu": 1.5}}, "a": [1, "é\"\n"]});
    let out = HostOut {
        host: host.clone(),
        omitted: vec!["processes".into()],
        truncated: true,
    }
    .answer(host.to_string());
    assert_eq!(out.text, out.value.to_string());
    assert_eq!(out.value["host"], host);
    assert_eq!(out.value["omitted"], json!(["processes"]));
    let rows = vec![
        json!({"id": "n_1", "labels": {"z": "1", "a": "2"}}),
        json!({"id": "n_2"}),
    ];
    let joined = rows
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let list = HostList::answer(rows.clone(), joined, 3);
    assert_eq!(list.text, list.value.to_string());
    assert_eq!(
        list.value,
        json!({"hosts": rows, "matched": 3, "truncated": true})
    );
    let none = HostList::answer(Vec::new(), String::new(), 0);
    assert_eq!(none.text, r#"{"hosts":[],"matched":0,"truncated":false}"#);
    assert_eq!(none.text, none.value.to_string());
}

/// `what_changed` answers the list as JSON (the structured content, also
/// the first text) and as lines to read; past the cap it drops whole hosts
/// and says so in both.
#[test]
fn change_lists_answer_as_json_and_as_lines() {
    use crate::api::past::{FleetChanges, NodeChanges};
    use crate::journal::changes::{SubjectChanges, Transition};
    let node = |i: usize, steps: usize| NodeChanges {
        node_id: format!("n_{i}"),
        hostname: format!("host-{i}"),
        since: Some(0),
        subjects: vec![SubjectChanges {
            subject: "container web".into(),
            collection: "containers".into(),
            name: "web".into(),
            summary: "state running → exited".into(),
            transitions: (0..steps)
                .map(|t| Transition {
                    ts: t as i64,
                    change: "state running → exited".into(),
                })
                .collect(),
        }],
    };
    let mut small = FleetChanges {
        from: 0,
        to: 1000,
        nodes: vec![node(1, 1)],
    };
    let out = changes_out(&mut small);
    assert_eq!(out.text, out.value.to_string());
    assert_eq!(out.value["truncated"], false);
    assert_eq!(
        out.value["nodes"][0]["subjects"][0]["subject"],
        "container web"
    );
    let readable = out.readable.unwrap();
    assert!(
        readable.contains("host-1 (n_1)\n  container web: state running → exited"),
        "{readable}"
    );
    // Each host about 40 KB: 200 KB holds four of ten.
    let mut big = FleetChanges {
        from: 0,
        to: 1000,
        nodes: (0..10).map(|i| node(i, 1000)).collect(),
    };
    let out = changes_out(&mut big);
    assert_eq!(out.value["truncated"], true);
    let kept = out.value["nodes"].as_array().unwrap().len();
    assert!((1..10).contains(&kept), "{kept}");
    assert!(out.text.len() <= super::read::MAX_LIST_BYTES + 100);
    let readable = out.readable.unwrap();
    assert!(readable.contains("more hosts changed"));
    assert!(!readable.contains(&format!("(n_{kept})")));
}
