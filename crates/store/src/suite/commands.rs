//! Commands: started, finished with output, listed, pruned, lost.

use twinbay_proto::command::{Op, Status, Stream};

use crate::suite::{Fixture, store_test_suite};
use crate::*;

store_test_suite!(
    a_command_reads_back_with_its_output,
    running_commands_are_lost_when_the_hub_restarts,
);

fn command(id: &str, node: &str, started_ms: i64) -> CommandRecord {
    CommandRecord {
        id: id.into(),
        node_id: node.into(),
        op: Op::Action {
            name: "restart".into(),
            args: [("unit".to_string(), "nginx".to_string())].into(),
        },
        summary: "action restart unit=nginx".into(),
        actor: "alice".into(),
        actor_kind: "user".into(),
        role_needed: Role::Operator,
        status: Status::Running,
        exit_code: None,
        error: None,
        started_ms,
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    }
}

async fn a_command_reads_back_with_its_output(f: &Fixture) {
    let store = f.store.clone();
    assert_eq!(store.command("cmd_none").await.unwrap(), None);
    let mut c = command("c1", "n1", 1_000);
    store.insert_command(&c).await.unwrap();
    let twin = store.insert_command(&c).await;
    assert!(
        matches!(&twin, Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation()),
        "{twin:?}"
    );
    assert_eq!(
        store.command("c1").await.unwrap(),
        Some((c.clone(), vec![]))
    );

    c.end(Status::Failed, Some(-9), Some("killed".into()), 4_500);
    c.truncated = true;
    let output = vec![
        Output {
            stream: Stream::Stdout,
            data: "line 1\nünïcode ✓\n".into(),
        },
        Output {
            stream: Stream::Stderr,
            data: "oops".into(),
        },
    ];
    store.finish_command(&c, &output).await.unwrap();
    let (got, out) = store.command("c1").await.unwrap().unwrap();
    assert_eq!(got, c);
    assert_eq!((got.exit_code, got.duration_ms), (Some(-9), Some(3_500)));
    assert_eq!(out, output);

    // A host's commands, newest first, without their output.
    store
        .insert_command(&command("c2", "n1", 3_000))
        .await
        .unwrap();
    store
        .insert_command(&command("c0", "n1", 3_000))
        .await
        .unwrap();
    store
        .insert_command(&command("c9", "n2", 9_000))
        .await
        .unwrap();
    let ids = |limit| {
        let store = store.clone();
        async move {
            store
                .node_commands("n1", limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(10).await, ["c2", "c0", "c1"]);
    assert_eq!(ids(1).await, ["c2"]);
    let listed = store.node_commands("n1", 10).await.unwrap();
    assert_eq!(listed[2], c);
    assert!(store.node_commands("n3", 10).await.unwrap().is_empty());
}

async fn running_commands_are_lost_when_the_hub_restarts(f: &Fixture) {
    let store = f.store.clone();
    let mut done = command("done", "n1", 1_000);
    store.insert_command(&done).await.unwrap();
    done.end(Status::Ok, Some(0), None, 2_000);
    store.finish_command(&done, &[]).await.unwrap();
    store
        .insert_command(&command("r1", "n1", 3_000))
        .await
        .unwrap();
    store
        .insert_command(&command("r2", "n2", 4_000))
        .await
        .unwrap();
    store.close().await;

    let store = f.reopen().await;
    assert_eq!(store.lose_running_commands(10_000).await.unwrap(), 2);
    assert_eq!(store.lose_running_commands(11_000).await.unwrap(), 0);
    let (r1, _) = store.command("r1").await.unwrap().unwrap();
    assert_eq!(
        (r1.status, r1.ended_ms, r1.duration_ms, r1.error.as_deref()),
        (
            Status::Lost,
            Some(10_000),
            Some(7_000),
            Some("the hub restarted while it ran")
        )
    );
    assert_eq!(store.command("done").await.unwrap().unwrap().0, done);
    // Lost ones are ended: the prune may take them.
    assert_eq!(store.prune_commands(0, 0).await.unwrap(), 3);
    store.close().await;
}
