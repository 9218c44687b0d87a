//! The command-line contract: one line of output where promised, one-line errors.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_input_gives_one_line_on_stderr_and_a_nonzero_exit() {
    let missing = temp_dir("cli-missing").join("nothing-here");
    let missing = missing.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["hub", "--listen", "not-an-address"], "invalid value"),
        (
            vec!["agent", "--interval", "soon", "--state-dir", "/tmp/x"],
            "invalid value",
        ),
        (
            vec!["ctl", "--data-dir", missing, "join-token", "create"],
            "no hub has run",
        ),
        (
            vec![
                "ctl",
                "--data-dir",
                missing,
                "api-token",
                "create",
                "--role",
                "root",
            ],
            "invalid value",
        ),
        (vec!["agent", "--state-dir", missing], "not enrolled"),
        (
            vec!["agent", "--state-dir", missing, "--join", "garbage"],
            "not a twinbay join string",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let (ok, stdout, stderr) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(stdout.is_empty(), "{args:?} printed {stdout:?}");
        let lines: Vec<_> = stderr.lines().filter(|l| !l.contains(" WARN ")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr:?}");
        assert!(lines[0].contains(needle), "{args:?}: {stderr:?}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let dir = temp_dir("cli-busy");
    let hub = Hub::start(&dir.join("a"));
    let addr = hub.addr.to_string();
    let other = dir.join("b");
    let (ok, _, stderr) = run(&[
        "hub",
        "--listen",
        &addr,
        "--data-dir",
        other.to_str().unwrap(),
    ]);
    assert!(!ok);
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: cannot listen on") && last.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn the_hub_serves_the_ui_openapi_and_metrics() {
    let dir = temp_dir("cli-surface");
    let hub = Hub::start(&dir.join("hub"));
    let (status, page) = http(hub.addr, "GET", "/", &[], "").unwrap();
    assert_eq!(status, 200);
    // The built web UI (crates/hub/build.rs): its page loads a hashed bundle.
    assert!(
        page.contains("<div id=\"app\">") && page.contains("src=\"/assets/index-"),
        "{page}"
    );

    // A mistyped address: the app's "no such page" to a browser, JSON to the rest.
    let html = [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    let (status, page) = http(hub.addr, "GET", "/hostz/nope", &html, "").unwrap();
    assert_eq!(status, 404);
    assert!(page.contains("<div id=\"app\">"), "{page}");
    for (path, headers) in [("/hostz/nope", &[][..]), ("/api/v1/nope", &html[..])] {
        let (status, body) = http(hub.addr, "GET", path, headers, "").unwrap();
        assert_eq!(status, 404, "{path}");
        assert!(body.starts_with("{\"error\":"), "{path}: {body}");
    }

    let token = hub.token("admin");
    let (status, spec) = hub.get("/api/v1/openapi.json", &token);
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/api/v1/nodes",
        "/api/v1/nodes/{id}",
        "/api/v1/session",
        "/api/v1/stream",
        "/api/v1/agent/connect",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert!(spec["components"]["schemas"]["NodeView"].is_object());

    let (status, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("twinbay_nodes 0"), "{metrics}");
    assert!(metrics.contains("twinbay_agents_connected 0"));
}

/// `up --demo 30` in its first 10 s: the address, how to sign in and a
/// summary, not a line per agent; `-v` is the full log.
#[test]
fn up_with_a_demo_fleet_is_quiet_unless_asked() {
    let first_ten_seconds = |verbose: bool| {
        let dir = temp_dir(if verbose {
            "cli-up-loud"
        } else {
            "cli-up-quiet"
        });
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.join("out.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["up", "--demo", "30", "--listen", &listen, "--data-dir"])
            .arg(dir.join("data"))
            .env_remove("RUST_LOG")
            .env_remove("TWINBAY_ADMIN_PASSWORD")
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if verbose {
            cmd.arg("-v");
        }
        let up = Proc {
            child: cmd.spawn().unwrap(),
            name: "up",
        };
        std::thread::sleep(Duration::from_secs(10));
        up.signal("-INT");
        let _ = up.wait_exit(Duration::from_secs(10));
        std::fs::read_to_string(&log).unwrap()
    };
    let quiet = first_ten_seconds(false);
    let lines: Vec<&str> = quiet.lines().collect();
    // Up to the Ctrl-C (after which it says it is shutting down, at most).
    let shown = lines
        .iter()
        .take_while(|l| !l.contains("shutting down"))
        .count();
    assert!(shown <= 10, "{shown} lines:\n{quiet}");
    assert!(
        lines[0].starts_with("twinbay is up: open http://"),
        "{quiet}"
    );
    assert!(
        quiet.contains("Created user admin with password "),
        "{quiet}"
    );
    assert!(
        quiet.contains(" hosts connected, "),
        "the summary, 5 s in:\n{quiet}"
    );
    assert!(
        !quiet.contains('\u{1b}'),
        "no colour codes in a file: {quiet}"
    );

    let loud = first_ten_seconds(true);
    assert!(loud.lines().count() > 31, "-v logs each agent:\n{loud}");
}

#[test]
fn up_runs_hub_and_local_agent_and_stops_cleanly_on_ctrl_c() {
    let dir = temp_dir("cli-up");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        let child = Command::new(BIN)
            .args(["up", "--interval", "1s", "--listen", &listen, "--data-dir"])
            .arg(&dir)
            .env_remove("TWINBAY_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Proc { child, name: "up" }
    };
    let up = start();
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    wait_for("up to serve", std::time::Duration::from_secs(10), || {
        http(addr, "GET", "/healthz", &[], "")
            .ok()
            .filter(|r| r.0 == 200)
    });
    // A view of up's hub for the harness helpers (the process is `up` itself).
    let hub = Hub {
        proc: Proc {
            child: Command::new("true").spawn().unwrap(),
            name: "no-op",
        },
        addr,
        dir: dir.clone(),
    };
    let token = hub.token("viewer");
    let node = wait_for(
        "the local node, synced",
        std::time::Duration::from_secs(5),
        || {
            hub.nodes(&token)
                .into_iter()
                .find(|n| n["connected"] == true && n["resources"].is_object())
        },
    );
    assert_eq!(
        node["hostname"],
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );

    up.signal("-INT");
    let out = up.wait_exit(std::time::Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("open http://{listen}")),
        "{stdout}"
    );
    // No default password: a random one is printed, once.
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Created user admin with password "))
        .expect("the first start prints the admin password");
    assert!(password.len() >= 16, "{password}");

    // The second start reuses the enrollment: still one node, and no new password.
    let again = start();
    wait_for(
        "up to serve again",
        std::time::Duration::from_secs(10),
        || {
            http(addr, "GET", "/healthz", &[], "")
                .ok()
                .filter(|r| r.0 == 200)
        },
    );
    let login = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        &login,
    )
    .unwrap();
    assert_eq!(status, 200, "the printed password signs in");
    let node2 = wait_for(
        "the local node again",
        std::time::Duration::from_secs(10),
        || {
            hub.nodes(&token)
                .into_iter()
                .find(|n| n["connected"] == true)
        },
    );
    assert_eq!(node2["id"], node["id"]);
    assert_eq!(hub.nodes(&token).len(), 1);
    again.signal("-INT");
    let out = again.wait_exit(std::time::Duration::from_secs(10));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Created user admin"));
}
