use proptest::prelude::*;

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
        producer: false,
        consumer: false,
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
            allow_leading_dash: false,
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
        allow_leading_dash: false,
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
        version: None,
        arch: None,
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
        version: None,
        arch: None,
    };
    assert!(matches!(
        stop_agent.authorize(&p, Role::Admin),
        Err(Refusal::NotAllowed(_))
    ));
    // update: the agent only, with a version, by operators.
    let update = |kind, version: Option<&str>, arch: Option<&str>| Op::Lifecycle {
        target: Target {
            kind,
            name: if kind == TargetKind::Agent { "" } else { "web" }.into(),
        },
        verb: Verb::Update,
        lines: None,
        follow: false,
        version: version.map(String::from),
        arch: arch.map(String::from),
    };
    let d = Policy::default();
    let ok = update(TargetKind::Agent, Some("1.2.0"), None);
    assert!(ok.authorize(&d, Role::Operator).is_ok());
    assert_eq!(ok.summary(), "update agent to 1.2.0");
    assert_eq!(
        ok.authorize(&d, Role::Viewer).unwrap_err(),
        Refusal::Role(Role::Operator)
    );
    for bad in [
        update(TargetKind::Agent, None, None),
        update(TargetKind::Agent, Some("v1"), None),
        update(TargetKind::Agent, Some("1.2.0"), Some("../x")),
        update(TargetKind::Container, Some("1.2.0"), None),
    ] {
        assert!(
            matches!(bad.authorize(&d, Role::Admin), Err(Refusal::BadRequest(_))),
            "{bad:?}"
        );
    }
    let mut versioned_restart = restart(TargetKind::Agent, "");
    if let Op::Lifecycle { version, .. } = &mut versioned_restart {
        *version = Some("1.0.0".into());
    }
    assert!(matches!(
        versioned_restart.authorize(&d, Role::Admin),
        Err(Refusal::BadRequest(_))
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
    let mut p = policy();
    p.lifecycle.insert(TargetKind::Unit, vec![Verb::Update]);
    assert!(p.validate().unwrap_err().contains("only for the agent"));
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
            version: None,
            arch: None,
        },
    };
    let json = serde_json::to_value(&cmd).unwrap();
    assert_eq!(json["op"], "lifecycle");
    assert_eq!(json["target"]["kind"], "container");
    let back: Command = serde_json::from_value(json).unwrap();
    assert_eq!(back, cmd);
    assert_eq!(back.op.summary(), "logs container web (follow)");
}

/// An action `echo -- {word}`-like: one string argument, one int, one enum.
fn echo(pattern: Option<&str>, allow_leading_dash: bool, min: Option<i64>) -> ActionSpec {
    let arg = |name: &str, kind| ArgSpec {
        name: name.into(),
        kind,
        description: String::new(),
        required: false,
        default: None,
    };
    ActionSpec {
        description: String::new(),
        argv: vec![
            "echo".into(),
            "{word}".into(),
            "{n}".into(),
            "{flag}".into(),
        ],
        args: vec![
            arg(
                "word",
                ArgType::String {
                    pattern: pattern.map(String::from),
                    max_len: 256,
                    allow_leading_dash,
                },
            ),
            arg("n", ArgType::Int { min, max: None }),
            arg(
                "flag",
                ArgType::Enum {
                    values: vec!["-n".into(), "-e".into()],
                },
            ),
        ],
        role: Role::Operator,
        timeout_secs: 10,
        output_cap: 1024,
        producer: false,
        consumer: false,
    }
}

fn authorize_echo(spec: ActionSpec, a: &[(&str, &str)]) -> Result<Vec<String>, Refusal> {
    let mut p = Policy::default();
    p.actions.insert("echo".into(), spec);
    p.validate().unwrap();
    action("echo", a)
        .authorize(&p, Role::Operator)
        .map(Option::unwrap)
}

// Issue 13, defect 6: `word=--version` made `echo` print its version.
#[test]
fn a_value_that_would_read_as_an_option_is_refused() {
    let err = authorize_echo(echo(None, false, None), &[("word", "--version")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "argument \"word\" \"--version\" starts with '-', which the program would read as an option"
    );
    // A pattern that allows the dash does not allow it alone.
    assert!(authorize_echo(echo(Some("-?[a-z-]+"), false, None), &[("word", "-rf")]).is_err());
    // A dash inside is fine; so is one the policy opts into.
    assert_eq!(
        authorize_echo(echo(None, false, None), &[("word", "a-b")]).unwrap(),
        ["echo", "a-b"]
    );
    assert_eq!(
        authorize_echo(echo(None, true, None), &[("word", "--version")]).unwrap(),
        ["echo", "--version"]
    );
    // Negative numbers only where the schema's min is below 0; `-0` too.
    for n in ["-1", "-0", "-5"] {
        let err = authorize_echo(echo(None, false, None), &[("n", n)]).unwrap_err();
        assert!(err.to_string().contains("starts with '-'"), "{n}: {err}");
        let err = authorize_echo(echo(None, false, Some(0)), &[("n", n)]).unwrap_err();
        assert!(err.to_string().contains("starts with '-'"), "{n}: {err}");
    }
    assert_eq!(
        authorize_echo(echo(None, false, Some(-10)), &[("n", "-5")]).unwrap(),
        ["echo", "-5"]
    );
    // Enum values are the policy's own words, dashes and all.
    assert_eq!(
        authorize_echo(echo(None, false, None), &[("flag", "-n")]).unwrap(),
        ["echo", "-n"]
    );
    // A path is absolute, so it can never start with '-'.
    assert!(du().bind(&args(&[("path", "-/var")])).is_err());
    // A default that starts with '-' fails the policy's check at load.
    let mut spec = echo(None, false, None);
    spec.args[0].default = Some("-v".into());
    let mut p = Policy::default();
    p.actions.insert("echo".into(), spec);
    assert!(p.validate().unwrap_err().contains("starts with '-'"));
}

proptest! {
    /// Whatever follows the dash, and whatever the pattern allows, a string
    /// argument starting with '-' is refused unless its schema allows it.
    #[test]
    fn no_string_argument_starts_with_a_dash_unless_allowed(
        rest in "[a-zA-Z0-9=._:/-]{0,40}",
        pattern in prop::option::of(Just(".*")),
    ) {
        let value = format!("-{rest}");
        let refused = authorize_echo(echo(pattern, false, None), &[("word", &value)]);
        prop_assert!(
            matches!(&refused, Err(Refusal::BadArgument(e)) if e.reason.contains("starts with '-'")),
            "{:?}", refused
        );
        let allowed = authorize_echo(echo(pattern, true, None), &[("word", &value)]);
        prop_assert_eq!(allowed, Ok(vec!["echo".to_string(), value]));
    }

    /// Any bound argv: no element that came from a value starts with '-'.
    #[test]
    fn bound_values_never_start_with_a_dash(
        word in "\\PC{0,12}",
        n in "-?[0-9]{1,5}",
    ) {
        if let Ok(argv) = authorize_echo(echo(Some(".*"), false, None), &[("word", &word), ("n", &n)]) {
            prop_assert!(argv[1..].iter().all(|e| !e.starts_with('-')), "{:?}", argv);
        }
    }
}

#[test]
fn bind_with_resolves_only_path_arguments() {
    let mut spec = du();
    spec.args.push(ArgSpec {
        name: "label".into(),
        kind: ArgType::String {
            pattern: None,
            max_len: 16,
            allow_leading_dash: false,
        },
        description: String::new(),
        required: false,
        default: None,
    });
    spec.argv.push("{label}".into());
    let mut seen = Vec::new();
    let argv = spec
        .bind_with(
            &args(&[("path", "/var/lib"), ("label", "x")]),
            |under, v| {
                seen.push((under.to_string(), v.to_string()));
                Ok("/srv/lib".into())
            },
        )
        .unwrap();
    assert_eq!(argv, ["du", "-sh", "/srv/lib", "x"]);
    assert_eq!(seen, [("/var".to_string(), "/var/lib".to_string())]);
    // The textual check comes first: resolve never sees a path that fails it.
    let err = spec
        .bind_with(&args(&[("path", "/etc")]), |_, _| panic!("resolved"))
        .unwrap_err();
    assert!(err.reason.contains("not inside"), "{err}");
    let err = spec
        .bind_with(&args(&[("path", "/var/l")]), |_, v| {
            Err(format!("{v:?} leads outside /var through a symlink"))
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "argument \"path\" \"/var/l\" leads outside /var through a symlink"
    );
}

fn vacuum() -> ActionSpec {
    let arg = |name: &str, kind: ArgType| ArgSpec {
        name: name.into(),
        kind,
        description: String::new(),
        required: false,
        default: None,
    };
    ActionSpec {
        description: "vacuum".into(),
        argv: vec!["vacuum".into(), "{n}".into(), "{full}".into()],
        args: vec![
            arg(
                "n",
                ArgType::Int {
                    min: Some(1),
                    max: Some(100),
                },
            ),
            arg("full", ArgType::Bool),
        ],
        role: Role::Operator,
        timeout_secs: 30,
        output_cap: 1 << 20,
        producer: false,
        consumer: false,
    }
}

fn action_json(args: serde_json::Value) -> Result<Op, serde_json::Error> {
    serde_json::from_value(serde_json::json!({"op": "action", "name": "vacuum", "args": args}))
}

#[test]
fn typed_arguments_are_read_as_their_text_and_checked_by_the_same_schema() {
    let mut p = Policy::default();
    p.actions.insert("vacuum".into(), vacuum());
    let bind = |op: Op| op.authorize(&p, Role::Operator);
    // JSON numbers and booleans, and the same as strings: one argv.
    let typed = action_json(serde_json::json!({"n": 30, "full": true})).unwrap();
    let text = action_json(serde_json::json!({"n": "30", "full": "true"})).unwrap();
    assert_eq!(typed, text);
    assert_eq!(
        bind(typed).unwrap().unwrap(),
        ["vacuum", "30", "true"].map(String::from)
    );
    // 30.0 is the integer 30 (JSON has one number type).
    assert_eq!(
        action_json(serde_json::json!({"n": 30.0})).unwrap(),
        action_json(serde_json::json!({"n": "30"})).unwrap()
    );
    // The schema still decides: out of range, a fraction, a number for a bool.
    for bad in [
        serde_json::json!({"n": 500}),
        serde_json::json!({"n": 2.5}),
        serde_json::json!({"n": -3}),
        serde_json::json!({"full": 1}),
        serde_json::json!({"n": true}),
    ] {
        let op = action_json(bad.clone()).unwrap();
        assert!(
            matches!(bind(op), Err(Refusal::BadArgument(_))),
            "{bad} was accepted"
        );
    }
    // Neither null, arrays nor objects are arguments.
    for bad in [
        serde_json::json!({"n": null}),
        serde_json::json!({"n": [1]}),
        serde_json::json!({"n": {"v": 1}}),
        serde_json::json!([1]),
    ] {
        let err = action_json(bad.clone()).unwrap_err().to_string();
        assert!(
            err.contains("a string, a number or a boolean") || err.contains("an object"),
            "{bad}: {err}"
        );
    }
    // On the wire to the agent they are strings, as before.
    let wire = serde_json::to_value(action_json(serde_json::json!({"n": 7})).unwrap()).unwrap();
    assert_eq!(wire["args"]["n"], "7");
}

proptest! {
    /// Any integer as a JSON number and as a string reads the same, and
    /// the Int schema accepts it exactly when it is in range.
    #[test]
    fn numbers_and_their_text_bind_alike(n in any::<i64>(), b in any::<bool>()) {
        let mut p = Policy::default();
        p.actions.insert("vacuum".into(), vacuum());
        let typed = action_json(serde_json::json!({"n": n, "full": b})).unwrap();
        let text = action_json(serde_json::json!({"n": n.to_string(), "full": b.to_string()})).unwrap();
        prop_assert_eq!(&typed, &text);
        let ok = typed.authorize(&p, Role::Operator).is_ok();
        prop_assert_eq!(ok, (1..=100).contains(&n));
    }
}

fn backup_policy() -> Policy {
    let mut p = policy();
    p.backup = Some(crate::backup::BackupPolicy {
        roots: vec!["/srv".into(), "/var/lib/app".into()],
        volumes: vec!["immich-db".into()],
        role: Role::Viewer,
    });
    let mut dump = du();
    dump.producer = true;
    p.actions.insert("dump".into(), dump);
    p
}

fn dir_backup(path: &str, exclude: &[&str]) -> Op {
    Op::Backup {
        job: "nightly".into(),
        source: crate::backup::BackupSource::Dir {
            path: path.into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        },
        keep: None,
    }
}

#[test]
fn dir_backups_stay_under_a_root_and_need_an_operator() {
    let p = backup_policy();
    assert_eq!(
        dir_backup("/srv/data", &["*.tmp"]).authorize(&p, Role::Operator),
        Ok(None)
    );
    assert_eq!(
        dir_backup("/var/lib/app", &[]).authorize(&p, Role::Admin),
        Ok(None)
    );
    // The policy's role is raised to operator: a viewer never runs a backup.
    assert_eq!(
        dir_backup("/srv/data", &[]).authorize(&p, Role::Viewer),
        Err(Refusal::Role(Role::Operator))
    );
    assert!(matches!(
        dir_backup("/etc", &[]).authorize(&p, Role::Admin),
        Err(Refusal::BadArgument(_))
    ));
    assert!(matches!(
        dir_backup("/srv/../etc", &[]).authorize(&p, Role::Admin),
        Err(Refusal::BadArgument(_))
    ));
    assert!(matches!(
        dir_backup("/srv/x", &["$(rm)"]).authorize(&p, Role::Admin),
        Err(Refusal::BadRequest(_))
    ));
    // No backup section: refused (and so never sent to an older agent).
    assert!(matches!(
        dir_backup("/srv/data", &[]).authorize(&policy(), Role::Admin),
        Err(Refusal::NotAllowed(_))
    ));
}

#[test]
fn producer_actions_run_only_as_backups() {
    let p = backup_policy();
    let backup = |name: &str| Op::Backup {
        job: "db".into(),
        source: crate::backup::BackupSource::Action {
            name: name.into(),
            args: args(&[("path", "/var/log")]),
        },
        keep: Some(crate::backup::Keep {
            last: 3,
            ..Default::default()
        }),
    };
    assert!(matches!(
        backup("dump").authorize(&p, Role::Operator),
        Ok(Some(_))
    ));
    assert!(matches!(
        backup("disk-usage").authorize(&p, Role::Operator),
        Err(Refusal::NotAllowed(_))
    ));
    assert!(matches!(
        action("dump", &[("path", "/var/log")]).authorize(&p, Role::Admin),
        Err(Refusal::NotAllowed(_))
    ));
    let json = serde_json::to_value(backup("dump")).unwrap();
    assert_eq!(json["op"], "backup");
    assert_eq!(json["source"]["kind"], "action");
    assert_eq!(serde_json::from_value::<Op>(json).unwrap(), backup("dump"));
    assert!(matches!(
        Op::Backup {
            job: "Bad Job".into(),
            source: crate::backup::BackupSource::Dir {
                path: "/srv".into(),
                exclude: vec![]
            },
            keep: None
        }
        .check_shape(),
        Err(Refusal::BadRequest(_))
    ));
}

#[test]
fn volume_backups_need_the_volume_named_in_the_policy() {
    let p = backup_policy();
    let backup = |name: &str| Op::Backup {
        job: "db".into(),
        source: crate::backup::BackupSource::Volume {
            name: name.into(),
            exclude: vec![],
        },
        keep: None,
    };
    let restore = |name: &str| Op::Restore {
        backup_id: "bk_1".into(),
        target: crate::backup::RestoreTarget::Volume { name: name.into() },
    };
    assert_eq!(backup("immich-db").authorize(&p, Role::Operator), Ok(None));
    assert_eq!(restore("immich-db").authorize(&p, Role::Operator), Ok(None));
    assert_eq!(
        backup("immich-db").authorize(&p, Role::Viewer),
        Err(Refusal::Role(Role::Operator))
    );
    assert_eq!(backup("immich-db").min_role(&p), Some(Role::Operator));
    assert!(matches!(
        backup("other").authorize(&p, Role::Admin),
        Err(Refusal::NotAllowed(m)) if m.contains("backup.volumes")
    ));
    assert!(matches!(
        restore("other").authorize(&p, Role::Admin),
        Err(Refusal::NotAllowed(_))
    ));
    for bad in ["../etc", "", "-x", "a/b", "a b"] {
        assert!(
            matches!(backup(bad).check_shape(), Err(Refusal::BadRequest(_))),
            "{bad:?}"
        );
    }
    let mut all = p.clone();
    all.backup.as_mut().unwrap().volumes = vec!["*".into()];
    assert_eq!(backup("anything").authorize(&all, Role::Operator), Ok(None));
    assert!(all.validate().is_ok());
    all.backup.as_mut().unwrap().volumes = vec!["../x".into()];
    assert!(all.validate().unwrap_err().contains("backup.volumes"));
    let json = serde_json::to_value(backup("immich-db")).unwrap();
    assert_eq!(
        json["source"],
        serde_json::json!({"kind": "volume", "name": "immich-db"})
    );
}
