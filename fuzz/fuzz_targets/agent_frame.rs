//! Fuzzes the hub's decoder for untrusted agent frames, and the diff
//! invariants on whatever it accepts. Any panic is a bug.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use twinbay_proto::codec::decode_agent_frame;
use twinbay_proto::diff::{apply, diff};
use twinbay_proto::message::AgentMessage;
use twinbay_proto::model::NodeState;

thread_local! {
    /// The state of the last valid `sync_full` seen, as a second baseline
    /// for diffs (libFuzzer runs inputs one after another on one thread).
    static BASELINE: RefCell<NodeState> = RefCell::new(NodeState::default());
}

fuzz_target!(|data: &[u8]| {
    let msg = match decode_agent_frame(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.code();
            let _ = e.to_string();
            return;
        }
    };

    // Round trip: what we accepted, we can write and read back unchanged.
    let text = serde_json::to_vec(&msg).expect("serialize a decoded message");
    match decode_agent_frame(&text) {
        Ok(again) => assert_eq!(
            again,
            msg,
            "round trip changed the message: {}",
            show(&text)
        ),
        Err(e) => panic!("re-encoded message does not decode: {e}: {}", show(&text)),
    }

    match msg {
        AgentMessage::SyncFull { state, .. } => {
            if state.validate().is_ok() {
                BASELINE.with(|b| *b.borrow_mut() = *state);
            }
        }
        AgentMessage::SyncDiff { changes, .. } => {
            check_diff(NodeState::default(), &changes);
            check_diff(BASELINE.with(|b| b.borrow().clone()), &changes);
        }
        // What decodes is in range: the hub assembles it without checks of its own.
        AgentMessage::FileChunk(chunk) => {
            assert!(chunk.validate().is_ok(), "{chunk:?}");
            assert!(chunk.offset + chunk.data.len() as u64 <= chunk.total);
        }
        // The decoder checked it: the hub words and stores it as it is.
        AgentMessage::UpdateReport(report) => {
            assert!(report.validate().is_ok(), "{report:?}");
        }
        AgentMessage::Hello(_)
        | AgentMessage::Metrics { .. }
        | AgentMessage::Heartbeat { .. }
        | AgentMessage::CommandOutput { .. }
        | AgentMessage::CommandResult(_) => {}
    }
});

fn check_diff(before: NodeState, changes: &[twinbay_proto::diff::Change]) {
    let mut after = before.clone();
    if apply(&mut after, changes).is_err() {
        // A failed apply must leave the state untouched.
        assert_eq!(after, before, "failed apply modified the state");
        return;
    }
    after.validate().expect("applied state is valid");

    // Idempotence: applying the same changes again changes nothing.
    let mut twice = after.clone();
    apply(&mut twice, changes).expect("second apply of the same changes");
    assert_eq!(twice, after, "changes are not idempotent");

    // apply(before, diff(before, after)) == after.
    let mut rebuilt = before.clone();
    apply(&mut rebuilt, &diff(&before, &after)).expect("apply a computed diff");
    assert_eq!(rebuilt, after, "diff/apply does not rebuild the state");
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
