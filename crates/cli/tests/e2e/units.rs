//! Issue 4: systemd units over a real dbus-daemon, with a test double of the
//! systemd Manager and Unit interfaces (there is no systemd as PID 1 here).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zbus::object_server::{ObjectServer, SignalEmitter};
use zbus::{OwnedObjectPath, connection};

use crate::harness::*;

type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

struct Manager {
    units: Vec<(String, OwnedObjectPath)>,
    jobs: std::sync::atomic::AtomicU32,
}

impl Manager {
    /// A job as systemd runs one: its path at once; the unit's state
    /// changes (with PropertiesChanged), then `JobRemoved` with the result.
    async fn job(
        &self,
        name: &str,
        verb: &str,
        server: &ObjectServer,
        emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let unit = server
            .interface::<_, UnitObject>(unit_path(name))
            .await
            .map_err(|_| zbus::fdo::Error::Failed(format!("Unit {name} not found.")))?;
        let id = self.jobs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let job = OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}")).unwrap();
        let (name, verb, emitter, path) = (
            name.to_string(),
            verb.to_string(),
            emitter.to_owned(),
            job.clone(),
        );
        tokio::spawn(async move {
            let mut steps: Vec<(&str, &str)> = match verb.as_str() {
                "stop" => vec![("inactive", "dead")],
                "restart" => vec![("inactive", "dead"), ("active", "running")],
                _ => vec![("active", "running")],
            };
            let broken = name.starts_with("broken");
            if broken {
                steps = vec![("failed", "failed")];
            }
            for (active, sub) in steps {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut u = unit.get_mut().await;
                u.active_state = active.into();
                u.sub_state = sub.into();
                u.active_state_changed(unit.signal_emitter()).await.unwrap();
            }
            let result = if broken { "failed" } else { "done" };
            Manager::job_removed(&emitter, id, path, &name, result)
                .await
                .unwrap();
        });
        Ok(job)
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    fn subscribe(&self) {}

    fn get_unit(&self, name: &str) -> zbus::fdo::Result<OwnedObjectPath> {
        self.units
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| zbus::fdo::Error::Failed(format!("Unit {name} not loaded.")))
    }

    async fn start_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        self.job(name, "start", server, emitter).await
    }

    async fn stop_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        self.job(name, "stop", server, emitter).await
    }

    async fn restart_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        self.job(name, "restart", server, emitter).await
    }

    /// `systemctl daemon-reload`: every unit's files loaded again.
    async fn reload(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<()> {
        Manager::reloading(&emitter, true).await?;
        for (name, _) in &self.units {
            let unit = server
                .interface::<_, UnitObject>(unit_path(name))
                .await
                .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
            let mut u = unit.get_mut().await;
            u.loaded = std::fs::read_to_string(&u.fragment).ok();
        }
        Manager::reloading(&emitter, false).await?;
        Ok(())
    }

    #[zbus(signal)]
    async fn reloading(emitter: &SignalEmitter<'_>, active: bool) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> String {
        "255-test-double".into()
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: OwnedObjectPath,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;

    fn list_units(&self) -> Vec<UnitRow> {
        let none = OwnedObjectPath::try_from("/").unwrap();
        self.units
            .iter()
            .map(|(name, path)| {
                let row = (
                    name.clone(),
                    String::new(),
                    "loaded".into(),
                    "active".into(),
                    "running".into(),
                    String::new(),
                );
                (
                    row.0,
                    row.1,
                    row.2,
                    row.3,
                    row.4,
                    row.5,
                    path.clone(),
                    0,
                    String::new(),
                    none.clone(),
                )
            })
            .collect()
    }

    #[zbus(signal)]
    async fn unit_new(
        emitter: &SignalEmitter<'_>,
        id: &str,
        unit: OwnedObjectPath,
    ) -> zbus::Result<()>;
}

struct UnitObject {
    id: String,
    active_state: String,
    sub_state: String,
    /// The unit file (`FragmentPath`), in the test's directory.
    fragment: String,
    /// The file's content when systemd last loaded it (`None`: missing).
    loaded: Option<String>,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl UnitObject {
    #[zbus(property)]
    fn id(&self) -> String {
        self.id.clone()
    }
    #[zbus(property)]
    fn description(&self) -> String {
        format!("test double of {}", self.id)
    }
    #[zbus(property)]
    fn load_state(&self) -> String {
        "loaded".into()
    }
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.active_state.clone()
    }
    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.sub_state.clone()
    }
    #[zbus(property)]
    fn active_enter_timestamp(&self) -> u64 {
        1_732_000_000_000_000
    }
    #[zbus(property)]
    fn fragment_path(&self) -> String {
        self.fragment.clone()
    }
    #[zbus(property)]
    fn drop_in_paths(&self) -> Vec<String> {
        vec![format!("{}.d/override.conf", self.fragment)]
    }
    /// As systemd computes it when read (it signals no change): the file
    /// on disk is not what was loaded.
    #[zbus(property)]
    fn need_daemon_reload(&self) -> bool {
        std::fs::read_to_string(&self.fragment).ok() != self.loaded
    }
}

fn unit_path(name: &str) -> OwnedObjectPath {
    // systemd escapes unit names in paths: '.' is _2e, '-' is _2d.
    let escaped = name.replace('.', "_2e").replace('-', "_2d");
    OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/unit/{escaped}")).unwrap()
}

async fn fail(conn: &zbus::Connection, name: &str) {
    let iface = conn
        .object_server()
        .interface::<_, UnitObject>(unit_path(name))
        .await
        .unwrap();
    let mut unit = iface.get_mut().await;
    unit.active_state = "failed".into();
    unit.sub_state = "failed".into();
    unit.active_state_changed(iface.signal_emitter())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_unit_reaches_the_twin_and_the_timeline_and_the_filter_holds() {
    let dir = temp_dir("units");
    let socket = dir.join("bus");
    let address = format!("unix:path={}", socket.display());
    let daemon = Command::new("dbus-daemon")
        .args([
            "--session",
            "--nofork",
            "--nopidfile",
            &format!("--address={address}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon is installed");
    let _daemon = Proc {
        child: daemon,
        name: "dbus-daemon",
    };
    wait_for("the bus socket", Duration::from_secs(5), || {
        socket.exists().then_some(())
    });

    let units = [
        "backup.service",
        "dev-sda.device",
        "web.service",
        "broken.service",
    ];
    let mut builder = connection::Builder::address(address.as_str())
        .name("org.freedesktop.systemd1")
        .serve_at(
            "/org/freedesktop/systemd1",
            Manager {
                units: units
                    .iter()
                    .map(|u| (u.to_string(), unit_path(u)))
                    .collect(),
                jobs: Default::default(),
            },
        );
    let unit_dir = dir.join("systemd");
    std::fs::create_dir_all(unit_dir.join("backup.service.d")).unwrap();
    std::fs::write(
        unit_dir.join("backup.service"),
        "[Service]\nEnvironment=DB_PASSWORD=hunter2\nExecStart=/usr/bin/backup\n",
    )
    .unwrap();
    std::fs::write(
        unit_dir.join("backup.service.d/override.conf"),
        "[Service]\nNice=10\n",
    )
    .unwrap();
    for u in units {
        builder = builder.serve_at(
            unit_path(u),
            UnitObject {
                id: u.into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                fragment: unit_dir.join(u).to_str().unwrap().into(),
                // web.service's file went after it was loaded.
                loaded: std::fs::read_to_string(unit_dir.join(u))
                    .ok()
                    .or((u == "web.service").then(|| "[Service]\n".into())),
            },
        );
    }
    let systemd = builder.build().await.unwrap();

    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let mut cmd = Command::new(BIN);
    cmd.args(["agent", "--interval", "1s", "--state-dir"])
        .arg(dir.join("agent"))
        .args(["--join", &hub.join()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/twinbay-test-bus",
        )
        .env("RUST_LOG", "twinbay_agent=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap());
    let _agent = Proc {
        child: cmd.spawn().unwrap(),
        name: "agent",
    };

    let (id, twin) = tokio::task::block_in_place(|| {
        hub.wait_twin(
            &token,
            "the units in the twin",
            Duration::from_secs(10),
            |twin| twin["sources"]["units"]["available"] == true,
        )
    });
    assert_eq!(twin["units"]["backup.service"]["active_state"], "active");
    assert_eq!(twin["units"]["backup.service"]["since"], 1_732_000_000);
    // The unit's files (FragmentPath, DropInPaths) and NeedDaemonReload.
    let fragment = unit_dir
        .join("backup.service")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        twin["units"]["backup.service"]["fragment_path"],
        fragment.as_str()
    );
    assert_eq!(twin["units"]["web.service"]["need_daemon_reload"], true);
    let (_, twin) = tokio::task::block_in_place(|| {
        hub.wait_twin(&token, "the unit files", Duration::from_secs(10), |twin| {
            twin["files"][fragment.as_str()]["state"] == "present"
                && twin["files"][format!("{fragment}.d/override.conf")]["state"] == "present"
        })
    });
    let file = &twin["files"][fragment.as_str()];
    assert_eq!(file["origin"], "unit");
    assert_eq!(file["kind"], "systemd_unit");
    assert_eq!(file["content"], "shipped");
    assert_eq!(file["redacted"], 1);
    assert_eq!(file["keyed"], true);
    assert_eq!(
        twin["files"][unit_dir.join("web.service").to_str().unwrap()]["state"],
        "missing"
    );
    assert!(
        twin["units"].get("dev-sda.device").is_none(),
        "the default filter keeps devices out"
    );
    assert_eq!(
        twin["sources"]["user-units"]["available"], false,
        "no user bus here"
    );

    // active → failed: in the twin and the timeline within a second.
    fail(&systemd, "backup.service").await;
    let failed_at = Instant::now();
    tokio::task::block_in_place(|| {
        wait_for("the failed unit", Duration::from_secs(3), || {
            let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
            (twin["units"]["backup.service"]["active_state"] == "failed").then_some(())
        })
    });
    tokio::task::block_in_place(|| {
        wait_for(
            "unit.failed on the timeline",
            Duration::from_secs(3),
            || {
                let (_, events) = hub.get(&format!("/api/v1/nodes/{id}/events"), &token);
                events
                    .as_array()?
                    .iter()
                    .find(|e| e["kind"] == "unit.failed" && e["target"] == "backup.service")
                    .map(|_| ())
            },
        )
    });
    assert!(
        failed_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        failed_at.elapsed()
    );

    // A filtered-out unit travels the moment it fails.
    fail(&systemd, "dev-sda.device").await;
    tokio::task::block_in_place(|| {
        wait_for("the failed device unit", Duration::from_secs(3), || {
            let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
            (twin["units"]["dev-sda.device"]["active_state"] == "failed").then_some(())
        })
    });

    // The lifecycle verbs go through systemd's jobs, and the twin follows.
    let operator = hub.token("operator");
    let run = |verb: &str, unit: &str| -> Value {
        let body =
            json!({"op": "lifecycle", "target": {"kind": "unit", "name": unit}, "verb": verb});
        let (status, cmd) = hub.post(&format!("/api/v1/nodes/{id}/commands"), &operator, &body);
        assert_eq!(status, 202, "{cmd}");
        hub.wait_command(
            &operator,
            cmd["id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
    };
    tokio::task::block_in_place(|| {
        let stopped = run("stop", "web.service");
        assert_eq!(stopped["status"], "ok", "{stopped}");
        assert_eq!(command_output(&stopped), "stopped web.service\n");
        wait_for(
            "the stopped unit in the twin",
            Duration::from_secs(3),
            || {
                let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
                (twin["units"]["web.service"]["active_state"] == "inactive").then_some(())
            },
        );
        let status = run("status", "web.service");
        assert!(
            command_output(&status).starts_with("web.service: inactive (dead), loaded"),
            "{status}"
        );
        let restarted = run("restart", "web.service");
        assert_eq!(restarted["status"], "ok", "{restarted}");
        wait_for(
            "the restarted unit in the twin",
            Duration::from_secs(3),
            || {
                let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
                (twin["units"]["web.service"]["active_state"] == "active").then_some(())
            },
        );
        let broken = run("start", "broken.service");
        assert_eq!(broken["status"], "failed", "{broken}");
        assert!(
            broken["error"]
                .as_str()
                .unwrap()
                .contains("the job ended with \"failed\""),
            "{broken}"
        );
        let missing = run("start", "nosuch.service");
        assert_eq!(missing["status"], "failed");
        assert!(
            missing["error"]
                .as_str()
                .unwrap()
                .contains("Unit nosuch.service not found"),
            "{missing}"
        );
        let version = run("version", "web.service");
        assert_eq!(command_output(&version), "systemd 255-test-double\n");
    });

    // A unit file edited on disk: systemd says nothing (NeedDaemonReload is
    // computed when read), but the agent sees the new version, reads the
    // unit again, and the hub shows drift until a daemon-reload.
    let operator = hub.token("operator");
    std::fs::write(
        &fragment,
        "[Service]\nEnvironment=DB_PASSWORD=hunter2\nExecStart=/usr/bin/backup --full\n",
    )
    .unwrap();
    let history = |path: &str| -> Vec<Value> {
        let (_, h) = hub.get(
            &format!("/api/v1/nodes/{id}/files/history?path={path}"),
            &operator,
        );
        h.as_array().cloned().unwrap_or_default()
    };
    let drift_of = |h: &[Value]| -> String { h[0]["assessment"]["drift"].to_string() };
    tokio::task::block_in_place(|| {
        wait_for(
            "NeedDaemonReload in the twin",
            Duration::from_secs(10),
            || {
                let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
                (twin["units"]["backup.service"]["need_daemon_reload"] == true).then_some(())
            },
        );
        let h = wait_for(
            "drift: needs daemon-reload",
            Duration::from_secs(15),
            || {
                let h = history(&fragment);
                (h.len() == 2 && drift_of(&h).contains("daemon-reload")).then_some(h)
            },
        );
        assert_eq!(h[0]["risk"], "medium", "ExecStart changed: {}", h[0]);
        assert!(
            h[0].to_string().contains("backup.service"),
            "the unit is named: {}",
            h[0]
        );
    });
    systemd
        .call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "Reload",
            &(),
        )
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        wait_for("NeedDaemonReload cleared", Duration::from_secs(10), || {
            let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
            twin["units"]["backup.service"]["need_daemon_reload"]
                .is_null()
                .then_some(())
        });
        // backup.service is failed, not running an old ExecStart: no drift left.
        wait_for("the drift resolved", Duration::from_secs(15), || {
            (drift_of(&history(&fragment)) == "[]").then_some(())
        });
        let (_, events) = hub.get(&format!("/api/v1/nodes/{id}/events?limit=200"), &token);
        let kinds: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == fragment.as_str())
            .filter_map(|e| e["kind"].as_str())
            .collect();
        assert!(
            kinds.contains(&"file.drift") && kinds.contains(&"file.drift_resolved"),
            "{kinds:?}"
        );
    });
}
