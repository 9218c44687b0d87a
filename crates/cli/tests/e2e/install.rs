//! Issue 21, acceptance 5: `twinbay agent install` copies the binary, writes
//! a user unit that `systemd-analyze verify` accepts, and that unit's command
//! line runs an agent that enrolls with the hub.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::harness::*;

/// `twinbay agent install ARGS` as a user whose home is `home`, with no
/// reachable user manager (XDG_RUNTIME_DIR points at an empty dir).
fn install(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["agent", "install"])
        .args(args)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", runtime_dir(home))
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("TWINBAY_JOIN")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .unwrap()
}

fn runtime_dir(home: &Path) -> PathBuf {
    let dir = home.with_file_name("run");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn sha256(path: &Path) -> String {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path).unwrap();
    let mut buf = vec![0; 1 << 20];
    loop {
        match file.read(&mut buf).unwrap() {
            0 => return hex::encode(hasher.finalize()),
            n => hasher.update(&buf[..n]),
        }
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `systemd-analyze verify --user UNIT` must pass without a word on stderr
/// (unknown keys are only warnings). Where it is not installed, a small
/// check of the sections and keys stands in, and the test says so.
fn verify_user_unit(unit: &Path, home: &Path) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok()
    {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(unit)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", runtime_dir(home))
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify: {stderr}"
        );
        return;
    }
    eprintln!("systemd-analyze is not installed: checking the unit with a small parser instead");
    let body = fs::read_to_string(unit).unwrap();
    let mut section = "";
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with('[') {
            section = line;
            assert!(
                ["[Unit]", "[Service]", "[Install]"].contains(&line),
                "{line}"
            );
            continue;
        }
        let (key, value) = line.split_once('=').expect("KEY=VALUE");
        assert!(
            !section.is_empty() && !key.is_empty() && !value.is_empty(),
            "{line}"
        );
    }
}

/// The unit's ExecStart= as words (the paths here have no spaces).
fn exec_start(unit: &Path) -> Vec<String> {
    let body = fs::read_to_string(unit).unwrap();
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn agent_install_copies_the_binary_and_writes_a_unit_that_runs_the_agent() {
    let dir = temp_dir("install");
    let signer = key();
    let secret = signer.save_secret(dir.join("signer.key"));
    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &["--update-key", &signer.public],
    );
    let token = hub.token("viewer");
    let join = hub.join();
    let join_token = twinbay_proto::join::JoinString::parse(&join).unwrap().token;
    let home = dir.join("home");
    let watched = dir.join("watched.conf");
    fs::write(&watched, "a = 1\n").unwrap();

    let out = install(
        &home,
        &[
            "--join",
            &join,
            "--watch",
            watched.to_str().unwrap(),
            "--no-enable",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("systemctl --user enable twinbay-agent.service"),
        "{stdout}"
    );

    // The binary: the same bytes as the one that ran, executable.
    let binary = home.join(".local/share/twinbay/bin/twinbay");
    assert_eq!(sha256(&binary), sha256(Path::new(BIN)));
    let mode = fs::metadata(&binary).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "{mode:o}");
    // And the lean agent that `twinbay agent` hands over to, beside it.
    let lean = home.join(".local/share/twinbay/bin/twinbay-agent");
    assert_eq!(sha256(&lean), sha256(Path::new(LEAN_BIN)));

    // The unit runs that binary as the agent on the state dir, and holds no token;
    // the token waits in the state dir, readable by the user only.
    let unit = home.join(".config/systemd/user/twinbay-agent.service");
    verify_user_unit(&unit, &home);
    let state = home.join(".local/state/twinbay-agent");
    let words = exec_start(&unit);
    assert_eq!(words[0], binary.to_str().unwrap());
    assert_eq!(
        words[1..4],
        ["agent", "--state-dir", state.to_str().unwrap()]
    );
    assert!(
        words.contains(&watched.to_str().unwrap().to_string()),
        "{words:?}"
    );
    let unit_text = fs::read_to_string(&unit).unwrap();
    assert!(!unit_text.contains(&join_token) && !unit_text.contains(&join));
    let enrollment = state.join("agent.json");
    assert!(
        fs::read_to_string(&enrollment)
            .unwrap()
            .contains(&join_token)
    );
    let mode = fs::metadata(&enrollment).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");

    // What systemd would start: the unit's command line, as it is, enrolls.
    let log = fs::File::create(dir.join("agent.log")).unwrap();
    let agent = Proc {
        child: Command::new(&words[0])
            .args(&words[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
        name: "installed agent",
    };
    let node = wait_for(
        "the installed agent to connect",
        Duration::from_secs(20),
        || {
            hub.nodes(&token)
                .into_iter()
                // Its hello makes it connected; its first sync brings the host's facts.
                .find(|n| {
                    n["connected"] == true && n["hostname"].as_str().is_some_and(|h| !h.is_empty())
                })
        },
    );
    assert!(node["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    // `twinbay agent` became the lean binary: same process, its code.
    let running = fs::read_link(format!("/proc/{}/exe", agent.child.id())).unwrap();
    assert_eq!(running, lean, "the installed agent runs as {running:?}");
    wait_for(
        "the agent to forget its join token",
        Duration::from_secs(5),
        || {
            (!fs::read_to_string(&enrollment)
                .unwrap()
                .contains(&join_token))
            .then_some(())
        },
    );

    // An update replaces the installed binary the agent runs from (the lean
    // one), keeping the old one beside it; the agent then says the version.
    publish(&hub.dir, &secret, Path::new(LEAN_BIN), "9.9.9");
    let operator = hub.token("operator");
    let id = node["id"].as_str().unwrap();
    let body = serde_json::json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "update", "version": "9.9.9"});
    let (status, c) = hub.post(&format!("/api/v1/nodes/{id}/commands"), &operator, &body);
    assert_eq!(status, 202, "{c}");
    let c = hub.wait_command(
        &operator,
        c["id"].as_str().unwrap(),
        Duration::from_secs(90),
    );
    assert_eq!(c["status"], "ok", "{c}");
    wait_for(
        "the installed agent on 9.9.9",
        Duration::from_secs(30),
        || {
            hub.node(&token, id)
                .filter(|n| n["connected"] == true && n["agent_version"] == "9.9.9")
        },
    );
    let prev = lean.with_file_name("twinbay-agent.prev");
    assert_eq!(
        sha256(&prev),
        sha256(Path::new(LEAN_BIN)),
        "the old binary is kept"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{}/exe", agent.child.id())).unwrap(),
        lean
    );
    drop(agent);

    // Again, over a stale binary and a hand-edited unit: both are replaced,
    // the enrollment is kept (the used token is not written back), and
    // without --no-enable, no user manager here means instructions and exit 0.
    fs::write(&binary, b"#!/bin/sh\necho old\n").unwrap();
    fs::write(&unit, "[Service]\nExecStart=/bin/false\n").unwrap();
    let out = install(
        &home,
        &["--join", &join, "--watch", watched.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("enrolled already"), "{stdout}");
    assert!(
        stdout.contains("the systemd user manager is not reachable"),
        "{stdout}"
    );
    assert!(
        stdout.contains("systemctl --user restart twinbay-agent.service"),
        "{stdout}"
    );
    assert_eq!(sha256(&binary), sha256(Path::new(BIN)));
    assert_eq!(fs::read_to_string(&unit).unwrap(), unit_text);
    assert!(
        !fs::read_to_string(&enrollment)
            .unwrap()
            .contains(&join_token)
    );
    // No temporary file is left beside them.
    for (d, files) in [
        (
            binary.parent().unwrap(),
            ["twinbay", "twinbay-agent", "twinbay-agent.prev"].as_slice(),
        ),
        (unit.parent().unwrap(), ["twinbay-agent.service"].as_slice()),
    ] {
        let mut names: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, files);
    }
}

#[test]
fn agent_install_refuses_what_it_cannot_do_with_one_clear_line() {
    let dir = temp_dir("install-refusals");
    let home = dir.join("home");
    fs::create_dir_all(&home).unwrap();
    let join = twinbay_proto::join::JoinString {
        hub: "https://127.0.0.1:9".into(),
        token: "one-time".into(),
        fp: "sha256:00".into(),
        update_keys: Vec::new(),
        more_hubs: Vec::new(),
    }
    .encode();
    let refused = |args: &[&str], expect: &str| {
        let out = install(&home, args);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    };

    refused(&["--no-enable"], "not enrolled yet: pass --join");

    // A bin dir nobody can write: below a regular file.
    let file = dir.join("a-file");
    fs::write(&file, "").unwrap();
    let bad_bin = file.join("bin");
    refused(
        &[
            "--join",
            &join,
            "--no-enable",
            "--bin-dir",
            bad_bin.to_str().unwrap(),
        ],
        &format!("error: cannot write the binary to {}", bad_bin.display()),
    );
    // ... so no unit was written for a binary that is not there.
    assert!(
        !home
            .join(".config/systemd/user/twinbay-agent.service")
            .exists()
    );

    // A read-only bin dir (root may write anyway: then this case says nothing).
    let ro = dir.join("read-only");
    fs::create_dir_all(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(ro.join("probe"), "").is_err() {
        refused(
            &[
                "--join",
                &join,
                "--no-enable",
                "--bin-dir",
                ro.to_str().unwrap(),
            ],
            "cannot write the binary to",
        );
    }

    refused(&["--join", "nonsense", "--no-enable"], "bad join string");
    refused(
        &["--join", &join, "--no-enable", "--", "--join", &join],
        "the unit must not hold the join token",
    );
    refused(
        &["--join", &join, "--no-enable", "--", "--no-such-flag"],
        "the agent's arguments",
    );
}
