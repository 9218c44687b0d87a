//! Fuzzes the agent's decoder for hub frames and the policy check on every
//! command it accepts: whatever a (compromised) hub sends, the argv that
//! comes out runs the policy's program with arguments inside their schema,
//! none of which starts with '-'.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use twinbay_proto::codec::decode_hub_frame;
use twinbay_proto::command::{ActionSpec, ArgSpec, ArgType, Op, Policy, Role};
use twinbay_proto::message::HubMessage;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let arg = |name: &str, kind| ArgSpec {
            name: name.into(),
            kind,
            description: String::new(),
            required: false,
            default: None,
        };
        let show = ActionSpec {
            description: String::new(),
            argv: vec![
                "ls".into(),
                "--".into(),
                "{path}".into(),
                "m={msg}".into(),
                "{n}".into(),
            ],
            args: vec![
                arg("path", ArgType::Path { under: "/srv".into(), max_len: 4096 }),
                arg(
                    "msg",
                    ArgType::String { pattern: None, max_len: 64, allow_leading_dash: false },
                ),
                arg("n", ArgType::Int { min: None, max: None }),
            ],
            role: Role::Operator,
            timeout_secs: 10,
            output_cap: 1024,
            producer: false,
            consumer: false,
        };
        let mut p = Policy::default();
        p.actions = BTreeMap::from([("show".to_string(), show)]);
        p.validate().expect("the fuzz policy is valid");
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode_hub_frame(data) else {
        return;
    };
    let text = serde_json::to_vec(&msg).expect("serialize a decoded message");
    assert_eq!(decode_hub_frame(&text).expect("re-decode"), msg);
    let HubMessage::Command(cmd) = msg else {
        return;
    };
    let _ = cmd.op.summary();
    match cmd.op.authorize(policy(), cmd.role) {
        Err(refusal) => {
            let _ = refusal.to_string();
        }
        Ok(None) => assert!(matches!(cmd.op, Op::Lifecycle { .. })),
        Ok(Some(argv)) => {
            assert!(cmd.role >= Role::Operator);
            assert_eq!(&argv[..2], ["ls", "--"], "{argv:?}");
            for element in &argv[2..] {
                match element.strip_prefix("m=") {
                    Some(msg) => assert!(
                        !msg.starts_with('-')
                            && msg.chars().all(|c| c.is_alphanumeric() || " ._-:/@+=,%".contains(c)),
                        "unsafe msg in {argv:?}"
                    ),
                    None if element.starts_with('/') => {
                        assert!(element == "/srv" || element.starts_with("/srv/"), "{argv:?}");
                        assert!(
                            !element.split('/').any(|c| c == ".." || c == "."),
                            "{argv:?}"
                        );
                    }
                    // `n`: no negative number without a negative min.
                    None => assert!(element.parse::<u64>().is_ok(), "{argv:?}"),
                }
            }
        }
    }
});
