//! The hub on PostgreSQL (`--store postgres://…`): its records live there,
//! the data dir remembers the store, and `twinbay ctl` finds it.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// A PostgreSQL database of this test's own on the local server, dropped
/// when the test ends (even after a failed assertion).
pub struct Database {
    pub name: String,
    pub url: String,
}

fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-Atc", sql, database])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Database {
    pub fn create(name: &str) -> Database {
        let name = format!("twinbay_e2e_{name}_{}", std::process::id());
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(
            "postgres",
            &format!("CREATE DATABASE {name} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"),
        );
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Database { name, url }
    }

    pub fn query(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-qAtc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .arg("postgres")
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_on_postgresql_keeps_its_fleet_there_across_restarts() {
    let db = Database::create("hub");
    let dir = temp_dir("pg-hub");
    let hub_dir = dir.join("hub");
    let port = free_port();
    let hub = Hub::start_with(&hub_dir, port, &["--store", &db.url]);
    assert!(
        !hub_dir.join("twinbay.db").exists(),
        "no SQLite file beside a PostgreSQL store"
    );
    // `ctl` works on the data dir of a hub on PostgreSQL as on SQLite.
    let operator = hub.token("operator");
    let agent = agent(Some(&hub.join()), &dir.join("agent"));
    let node = tokio::task::block_in_place(|| {
        wait_for("the agent to connect", Duration::from_secs(10), || {
            hub.nodes(&operator)
                .into_iter()
                .find(|n| n["connected"] == true)
        })
    })["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A command runs on the agent and is recorded (with its output).
    let body = json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "version"});
    let (status, record) = tokio::task::block_in_place(|| {
        hub.post(&format!("/api/v1/nodes/{node}/commands"), &operator, &body)
    });
    assert_eq!(status, 202, "{record}");
    let id = record["id"].as_str().unwrap().to_string();
    let done =
        tokio::task::block_in_place(|| hub.wait_command(&operator, &id, Duration::from_secs(20)));
    assert_eq!(done["status"], "ok", "{done}");

    // The records are PostgreSQL's.
    assert_eq!(db.query("SELECT COUNT(*) FROM nodes"), "1");
    assert_eq!(
        db.query(&format!("SELECT status FROM commands WHERE id = '{id}'")),
        "ok"
    );

    // Killed and started again without --store: the data dir remembers.
    hub.proc.signal("-KILL");
    drop(hub);
    let hub = Hub::start_on(&hub_dir, port);
    tokio::task::block_in_place(|| {
        wait_for(
            "the agent to reconnect by itself",
            Duration::from_secs(20),
            || {
                hub.node(&operator, &node)
                    .filter(|n| n["connected"] == true)
            },
        )
    });
    let (_, history) = tokio::task::block_in_place(|| {
        hub.get(&format!("/api/v1/nodes/{node}/commands"), &operator)
    });
    assert!(
        history.to_string().contains(&id),
        "the command survived the restart: {history}"
    );
    assert!(!hub_dir.join("twinbay.db").exists());
    let verified = hub.ctl(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    drop(agent);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
