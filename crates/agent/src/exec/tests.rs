//! The executor with a real policy, real processes and a real directory.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

use twinbay_proto::command::Role;

use super::*;

/// A directory removed when the test ends, passed or not; its path is
/// canonical, so tests can compare resolved paths with it.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("twinbay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(std::fs::canonicalize(&dir).unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs action `name` with `args` as an operator; its result and output.
async fn run_action(policy: &str, name: &str, args: &[(&str, &str)]) -> (CommandResult, String) {
    let loaded = policy::parse(policy).unwrap();
    let Channel {
        executor,
        mut events,
    } = Executor::channel(loaded, None, CancellationToken::new());
    executor.start(Command {
        id: "c1".into(),
        role: Role::Operator,
        actor: "test".into(),
        op: Op::Action {
            name: name.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        },
    });
    let mut output = String::new();
    loop {
        match events.recv().await.expect("a result") {
            Event::Output(chunk) => output.push_str(&chunk.data),
            Event::Result(result) => return (result, output),
        }
    }
}

// Issue 13, defect 7: `ls {dir}` with `under` holding a symlink to /etc
// listed /etc.
#[tokio::test]
async fn a_path_argument_through_a_symlink_out_of_under_is_refused() {
    let tmp = TempDir::new("exec-links");
    let base = &tmp.0;
    std::fs::create_dir_all(base.join("shared/sub")).unwrap();
    std::fs::write(base.join("shared/sub/inner-file"), "x").unwrap();
    symlink("/etc", base.join("shared/etclink")).unwrap();
    symlink("sub", base.join("shared/inside")).unwrap();
    let shared = base.join("shared");
    let shared = shared.to_str().unwrap();
    let policy = format!(
        "actions:\n  list:\n    argv: [ls, \"--\", \"{{dir}}\"]\n    args:\n      - {{ name: dir, type: path, under: {shared}, required: true }}\n"
    );

    for dir in [format!("{shared}/etclink/"), format!("{shared}/etclink")] {
        let (result, output) = run_action(&policy, "list", &[("dir", &dir)]).await;
        assert_eq!(result.status, Status::Refused, "{dir}: {result:?} {output}");
        assert_eq!(
            result.error.as_deref(),
            Some(
                format!("argument \"dir\" \"{dir}\" leads outside {shared} through a symlink")
                    .as_str()
            )
        );
        assert_eq!(output, "", "nothing ran");
    }
    // A symlink that stays inside is followed.
    let (result, output) =
        run_action(&policy, "list", &[("dir", &format!("{shared}/inside"))]).await;
    assert_eq!(result.status, Status::Ok, "{result:?} {output}");
    assert_eq!(output, "inner-file\n");
}
