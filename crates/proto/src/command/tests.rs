use super::*;

fn du() -> ActionSpec {
    ActionSpec {
        description: "disk usage".into(),
        argv: vec!["du".into(), "-sh".into(), "{path}".into()],
        args: vec![ArgSpec {
            name: "path".into(),
            kind: ArgType::Path {
                under: "/var".into(),
                max_len: 4096,
            },
            description: String::new(),
            required: true,
            default: None,
        }],
        role: Role::Operator,
        timeout_secs: 30,
        output_cap: 1 << 20,
    }
}

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn policy() -> Policy {
    let mut p = Policy::default();
    p.actions.insert("disk-usage".into(), du());
    p
}

fn action(name: &str, a: &[(&str, &str)]) -> Op {
    Op::Action {
        name: name.into(),
        args: args(a),
    }
}

#[test]
fn binds_arguments_into_argv_without_splitting() {
    let argv = du().bind(&args(&[("path", "/var/lib/my data")])).unwrap();
    assert_eq!(argv, ["du", "-sh", "/var/lib/my data"]);
}

#[test]
fn refuses_paths_that_leave_their_directory() {
    for bad in [
        "/var/../etc/shadow",
        "/var/lib/../../etc",
        "/etc/passwd",
        "/variable",
        "var/lib",
        "/var//lib",
        "/var/./lib",
        "/var/lib\n",
    ] {
        let err = du().bind(&args(&[("path", bad)])).unwrap_err();
        assert_eq!(err.arg, "path", "{bad:?}");
    }
    assert!(du().bind(&args(&[("path", "/var")])).is_ok());
    assert!(du().bind(&args(&[("path", "/var/lib/")])).is_ok());
}

#[test]
fn refuses_shell_metacharacters_overlong_and_unknown_arguments() {
    let mut spec = du();
    spec.args.push(ArgSpec {
        name: "label".into(),
        kind: ArgType::String {
            pattern: None,
            max_len: 16,
        },
        description: String::new(),
        required: false,
        default: None,
    });
    spec.argv.push("--label={label}".into());
    for bad in [
        "a;reboot", "$(id)", "`id`", "a|b", "a&b", "a>b", "x'y", "a\nb",
    ] {
        let err = spec
            .bind(&args(&[("path", "/var"), ("label", bad)]))
            .unwrap_err();
        assert!(err.to_string().contains("allowed are"), "{bad:?}: {err}");
    }
    let err = spec
        .bind(&args(&[("path", "/var"), ("label", &"x".repeat(17))]))
        .unwrap_err();
    assert!(err.to_string().contains("longer than 16"), "{err}");
    let err = spec
        .bind(&args(&[("path", "/var"), ("other", "1")]))
        .unwrap_err();
    assert!(err.to_string().contains("not an argument"), "{err}");
    // An optional argument left out drops its element.
    assert_eq!(
        spec.bind(&args(&[("path", "/var")])).unwrap(),
        ["du", "-sh", "/var"]
    );
    assert_eq!(
        spec.bind(&args(&[("path", "/var"), ("label", "nightly")]))
            .unwrap(),
        ["du", "-sh", "/var", "--label=nightly"]
    );
    let err = spec.bind(&args(&[])).unwrap_err();
    assert!(err.to_string().contains("required"), "{err}");
}

#[test]
fn checks_ints_enums_bools_and_patterns() {
    let arg = |kind| ArgSpec {
        name: "x".into(),
        kind,
        description: String::new(),
        required: true,
        default: None,
    };
    let int = arg(ArgType::Int {
        min: Some(1),
        max: Some(10),
    });
    assert!(int.check("5").is_ok());
    assert!(int.check("11").is_err());
    assert!(int.check("0x5").is_err());
    let en = arg(ArgType::Enum {
        values: vec!["fast".into(), "slow".into()],
    });
    assert!(en.check("slow").is_ok());
    assert!(en.check("medium").is_err());
    let b = arg(ArgType::Bool);
    assert!(b.check("true").is_ok() && b.check("yes").is_err());
    let pat = arg(ArgType::String {
        pattern: Some("[a-z]+".into()),
        max_len: 256,
    });
    assert!(pat.check("abc").is_ok());
    // The pattern is anchored: a match inside the value is not enough.
    assert!(pat.check("abc;rm").is_err());
}

#[test]
fn the_policy_decides_with_the_role() {
    let p = policy();
    let ok = action("disk-usage", &[("path", "/var/log")]);
    assert_eq!(
        ok.authorize(&p, Role::Operator).unwrap().unwrap(),
        ["du", "-sh", "/var/log"]
    );
    assert_eq!(
        ok.authorize(&p, Role::Viewer).unwrap_err(),
        Refusal::Role(Role::Operator)
    );
    assert!(matches!(
        action("rm-rf", &[]).authorize(&p, Role::Admin),
        Err(Refusal::NotAllowed(_))
    ));
    assert!(matches!(
        action("../x", &[]).authorize(&p, Role::Admin),
        Err(Refusal::BadRequest(_))
    ));
    let restart = |kind, name: &str| Op::Lifecycle {
        target: Target {
            kind,
            name: name.into(),
        },
        verb: Verb::Restart,
        lines: None,
        follow: false,
    };
    assert!(
        restart(TargetKind::Container, "web")
            .authorize(&p, Role::Operator)
            .is_ok()
    );
    assert_eq!(
        restart(TargetKind::Container, "web")
            .authorize(&p, Role::Viewer)
            .unwrap_err(),
        Refusal::Role(Role::Operator)
    );
    assert!(matches!(
        restart(TargetKind::Container, "web;reboot").authorize(&p, Role::Admin),
        Err(Refusal::BadRequest(_))
    ));
    assert!(matches!(
        restart(TargetKind::Unit, "../../x.service").authorize(&p, Role::Admin),
        Err(Refusal::BadRequest(_))
    ));
    let stop_agent = Op::Lifecycle {
        target: Target {
            kind: TargetKind::Agent,
            name: String::new(),
        },
        verb: Verb::Stop,
        lines: None,
        follow: false,
    };
    assert!(matches!(
        stop_agent.authorize(&p, Role::Admin),
        Err(Refusal::NotAllowed(_))
    ));
}

#[test]
fn validates_policies() {
    assert!(policy().validate().is_ok());
    let mut p = policy();
    p.actions.get_mut("disk-usage").unwrap().argv[0] = "{path}".into();
    assert!(p.validate().unwrap_err().contains("argv[0]"));
    let mut p = policy();
    p.actions
        .get_mut("disk-usage")
        .unwrap()
        .argv
        .push("{nope}".into());
    assert!(p.validate().unwrap_err().contains("{nope}"));
    let mut p = policy();
    p.actions.get_mut("disk-usage").unwrap().timeout_secs = 0;
    assert!(p.validate().unwrap_err().contains("timeout"));
    let mut p = policy();
    p.lifecycle
        .insert(TargetKind::Agent, vec![Verb::Status, Verb::Stop]);
    assert!(p.validate().unwrap_err().contains("lifecycle.agent"));
}

#[test]
fn commands_travel_as_flat_json() {
    let cmd = Command {
        id: "c1".into(),
        role: Role::Operator,
        actor: "alice".into(),
        op: Op::Lifecycle {
            target: Target {
                kind: TargetKind::Container,
                name: "web".into(),
            },
            verb: Verb::Logs,
            lines: Some(5),
            follow: true,
        },
    };
    let json = serde_json::to_value(&cmd).unwrap();
    assert_eq!(json["op"], "lifecycle");
    assert_eq!(json["target"]["kind"], "container");
    let back: Command = serde_json::from_value(json).unwrap();
    assert_eq!(back, cmd);
    assert_eq!(back.op.summary(), "logs container web (follow)");
}
