//! Signed releases (issue 21): `ctl release publish` with real minisign
//! signatures against a hub that trusts one key. A good signature is kept
//! and served back byte for byte; a signature of other bytes, one by an
//! untrusted key, one whose signed comment names another version, and any
//! release on a hub that trusts no key are refused (non-zero exit, nothing
//! kept, the refusal audited).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// Writes a `.minisig` of `data` by `key` with `comment` into `path`.
fn sign(key: &Key, data: &[u8], comment: &str, path: &Path) {
    std::fs::write(path, signature(key, data, comment)).unwrap();
}

/// `ctl release …` against `hub`: (exit success, stdout, stderr).
fn release(hub: &Hub, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(&hub.dir)
        .arg("release")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn only_releases_signed_by_a_trusted_key_are_published() {
    let dir = temp_dir("releases");
    let (trusted, stranger) = (key(), key());
    let pub_file = dir.join("trusted.pub");
    std::fs::write(
        &pub_file,
        format!(
            "untrusted comment: minisign public key\n{}\n",
            trusted.public
        ),
    )
    .unwrap();
    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &["--update-key", pub_file.to_str().unwrap()],
    );
    let binary: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let file = dir.join("twinbay-1.2.0");
    std::fs::write(&file, &binary).unwrap();
    let file = file.to_str().unwrap();
    let sig = |name: &str, key: &Key, data: &[u8], comment: &str| {
        let path = dir.join(name);
        sign(key, data, comment, &path);
        path.to_str().unwrap().to_string()
    };

    // Refused: another binary's signature, an untrusted key, a signed
    // comment that names another version, a file that is no signature.
    let refusals = [
        (
            sig("other.minisig", &trusted, b"another binary", ""),
            "does not verify",
        ),
        (
            sig("stranger.minisig", &stranger, &binary, ""),
            "not trusted",
        ),
        (
            sig("old.minisig", &trusted, &binary, "version:1.1.0"),
            "says version 1.1.0",
        ),
        (file.to_string(), "not a minisign signature"),
    ];
    for (sig, why) in &refusals {
        let (ok, out, err) = release(
            &hub,
            &[
                "publish",
                "--file",
                file,
                "--version",
                "1.2.0",
                "--sig",
                sig,
            ],
        );
        assert!(!ok, "{sig} was accepted: {out}");
        assert!(err.contains(why), "{sig}: {err}");
    }
    let admin = hub.token("admin");
    let (_, list) = hub.get("/api/v1/releases", &admin);
    assert_eq!(list, Value::Array(vec![]), "nothing kept");

    // A good signature: kept, listed, served back with its signature.
    let good = sig(
        "good.minisig",
        &trusted,
        &binary,
        "version:1.2.0 timestamp:1",
    );
    let (ok, out, err) = release(
        &hub,
        &[
            "publish",
            "--file",
            file,
            "--version",
            "1.2.0",
            "--sig",
            &good,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("published 1.2.0"), "{out}");
    let (_, list) = hub.get("/api/v1/releases", &admin);
    let m = &list[0];
    assert_eq!(
        (m["version"].as_str(), m["size"].as_u64()),
        (Some("1.2.0"), Some(binary.len() as u64)),
        "{list}"
    );
    assert_eq!(
        m["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&binary))
    );
    assert_eq!(m["key"], trusted.public);
    assert_eq!(m["arch"], std::env::consts::ARCH);
    let (ok, out, _) = release(&hub, &["list"]);
    assert!(ok && out.contains("1.2.0"), "{out}");
    let path = format!("/api/v1/releases/1.2.0/{}", std::env::consts::ARCH);
    let (status, _) = hub.get(&path, &hub.token("viewer"));
    assert_eq!(status, 403, "a viewer may not fetch binaries");
    let got = reqwest_bytes(&hub, &path, &admin);
    assert_eq!(got.len(), binary.len());
    assert!(got == binary, "the same bytes come back");

    // Another binary as the same version: refused; signing with --key works.
    let (ok, _, err) = release(
        &hub,
        &[
            "publish",
            "--file",
            &good,
            "--version",
            "1.2.0",
            "--sig",
            &sig(
                "g2.minisig",
                &trusted,
                std::fs::read(&good).unwrap().as_slice(),
                "",
            ),
        ],
    );
    assert!(!ok && err.contains("published already"), "{err}");
    let sk = trusted.save_secret(dir.join("trusted.key"));
    let (ok, out, err) = release(
        &hub,
        &[
            "publish",
            "--file",
            file,
            "--version",
            "1.3.0",
            "--key",
            sk.to_str().unwrap(),
            "--notes",
            "faster & smaller",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("published 1.3.0"), "{out}");
    let (_, list) = hub.get("/api/v1/releases", &admin);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(
        list[0]["trusted_comment"]
            .as_str()
            .unwrap()
            .contains("version:1.3.0"),
        "{list}"
    );
    assert_eq!(list[0]["notes"], "faster & smaller");

    // Every try is in the audit trail; refusals as denied.
    let (_, audit) = hub.get("/api/v1/audit?action=release.publish&limit=50", &admin);
    let entries = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .cloned()
        .unwrap_or_default();
    let denied = entries.iter().filter(|e| e["outcome"] == "denied").count();
    let ok = entries.iter().filter(|e| e["outcome"] == "ok").count();
    assert_eq!((denied, ok), (3, 2), "{audit}");

    // A hub that trusts no key takes no release at all.
    let bare = Hub::start_with(&dir.join("bare"), free_port(), &[]);
    let (ok, _, err) = release(
        &bare,
        &[
            "publish",
            "--file",
            file,
            "--version",
            "1.2.0",
            "--sig",
            &good,
        ],
    );
    assert!(!ok && err.contains("no trusted update keys"), "{err}");
}

/// `ctl release keygen` makes a pair the hub trusts and `publish --key`
/// signs with: the secret key 0600, and never overwritten.
#[test]
fn keygen_makes_a_key_pair_that_publishes() {
    use std::os::unix::fs::PermissionsExt;

    let dir = temp_dir("release-keygen");
    let keys = dir.join("keys");
    let out = Command::new(BIN)
        .args(["ctl", "release", "keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (pub_file, key_file) = (keys.join("minisign.pub"), keys.join("minisign.key"));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the secret key is the owner's only");
    let key_before = std::fs::read(&key_file).unwrap();

    // Again into the same directory: refused, the key left as it was.
    let again = Command::new(BIN)
        .args(["ctl", "release", "keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read(&key_file).unwrap(), key_before);

    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &["--update-key", pub_file.to_str().unwrap()],
    );
    let file = dir.join("twinbay-2.0.0");
    std::fs::write(&file, b"a binary signed with a generated key").unwrap();
    let (ok, out, err) = release(
        &hub,
        &[
            "publish",
            "--file",
            file.to_str().unwrap(),
            "--version",
            "2.0.0",
            "--key",
            key_file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("published 2.0.0"), "{out}");
}

/// GET `path` with `token`: the body's bytes.
fn reqwest_bytes(hub: &Hub, path: &str, token: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(hub.addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-twinbay-signature:"),
        "{head}"
    );
    let body = &all[split + 4..];
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}
