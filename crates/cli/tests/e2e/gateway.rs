//! Issue 16: the internet gateway, against Debian's miniupnpd in a network
//! namespace of the test's own (installed by scripts/test.sh; needs root).
//!
//! Layout: the host end of a veth pair (10.R.S.1) talks to the router's LAN
//! end (10.R.S.2, miniupnpd's `listening_ip`); inside the namespace a second
//! veth pair is the WAN, with a public-looking address that nothing routes
//! to. No packet leaves the host.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const WAN_IP: &str = "81.2.69.10";
const NEW_WAN_IP: &str = "81.2.69.20";
const HTTP_PORT: u16 = 5000;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A network namespace with a veth pair to the host; removed on drop.
struct Netns {
    name: String,
    host_if: String,
    lan_if: String,
    router_ip: String,
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let pid = std::process::id();
        let (r, s) = (200 + pid % 50, (pid / 50) % 250 + 1);
        let ns = Netns {
            name: format!("twinbay-gw-{pid}"),
            host_if: format!("tbgw{}h", pid % 100_000),
            lan_if: format!("tbgw{}r", pid % 100_000),
            router_ip: format!("10.{r}.{s}.2"),
        };
        let lan_if = ns.lan_if.clone();
        ip(&["netns", "add", &ns.name])?;
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &lan_if,
        ])?;
        ip(&["link", "set", &lan_if, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("10.{r}.{s}.1/24"),
            "dev",
            &ns.host_if,
        ])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        exec(&[
            "addr",
            "add",
            &format!("{}/24", ns.router_ip),
            "dev",
            &lan_if,
        ])?;
        exec(&["link", "set", &lan_if, "up"])?;
        exec(&["link", "set", "lo", "up"])?;
        exec(&[
            "link", "add", "wan0", "type", "veth", "peer", "name", "wan1",
        ])?;
        exec(&["addr", "add", &format!("{WAN_IP}/24"), "dev", "wan0"])?;
        exec(&["link", "set", "wan0", "up"])?;
        exec(&["link", "set", "wan1", "up"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all).unwrap();
    }

    fn miniupnpd(&self, dir: &Path) -> Proc {
        let conf = dir.join("miniupnpd.conf");
        std::fs::write(
            &conf,
            format!(
                "ext_ifname=wan0\nlistening_ip={}\nhttp_port={HTTP_PORT}\nenable_natpmp=no\n\
                 enable_upnp=yes\nsecure_mode=yes\nsystem_uptime=no\n\
                 uuid=7b0c6a52-1f0e-4d3c-9a51-0c9e2d4f6a10\n\
                 allow 1024-65535 10.0.0.0/8 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
                self.lan_if
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "miniupnpd", "-d", "-f"])
            .arg(&conf)
            .arg("-P")
            .arg(dir.join("miniupnpd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc {
            child,
            name: "miniupnpd",
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes both veth pairs.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

pub(crate) fn gateway(hub: &Hub, token: &str) -> Value {
    let (status, body) = hub.get("/api/v1/gateway", token);
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) fn gateway_events(hub: &Hub, token: &str, kind: &str) -> Vec<Value> {
    let (_, events) = hub.get("/api/v1/events?limit=200", token);
    events
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["node_id"] == "_gateway" && e["kind"] == kind)
        .collect()
}

#[test]
fn a_hub_without_a_gateway_says_how_to_configure_one() {
    let dir = temp_dir("gateway-none");
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let g = gateway(&hub, &token);
    assert_eq!(g["provider"], Value::Null);
    assert_eq!(g["public_ip"], Value::Null);
    assert_eq!(g["upstream"], "unknown");
    assert_eq!(g["last_updated_ms"], Value::Null);
    assert_eq!(g["gateways"], serde_json::json!([]));
    assert!(g["hint"].as_str().unwrap().contains("--gateway"), "{g}");
}

#[test]
fn bad_gateway_specs_are_refused_at_start() {
    for spec in ["upnp:ftp://x/", "probe:host", "fritzbox://admin:pw@box"] {
        let out = Command::new(BIN)
            .args(["hub", "--gateway", spec, "--data-dir", "/nonexistent/x"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("gateway"), "{spec}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_hub_follows_a_real_upnp_router() {
    if Command::new("miniupnpd").arg("--version").output().is_err()
        && !Path::new("/usr/sbin/miniupnpd").exists()
    {
        panic!("miniupnpd is not installed (scripts/test.sh installs it)");
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => panic!("cannot create a network namespace here (root needed): {e}"),
    };
    let dir = temp_dir("gateway-upnp");
    let router = ns.miniupnpd(&dir);
    let desc = format!("http://{}:{HTTP_PORT}/rootDesc.xml", ns.router_ip);
    let addr: std::net::SocketAddr = format!("{}:{HTTP_PORT}", ns.router_ip).parse().unwrap();
    wait_for("miniupnpd to serve", Duration::from_secs(10), || {
        http(addr, "GET", "/rootDesc.xml", &[], "")
            .ok()
            .filter(|r| r.0 == 200)
    });

    let port = free_port();
    let probe = format!("probe:127.0.0.1:{port}");
    let hub = Hub::start_with(
        &dir.join("hub"),
        port,
        &[
            "--gateway",
            &format!("upnp:{desc}"),
            "--gateway",
            &probe,
            "--gateway-interval",
            "1s",
            "--gateway-timeout",
            "3s",
        ],
    );
    let token = hub.token("viewer");

    // The public address, the upstream, the uptime and the link.
    let g = wait_for("the gateway's rates", Duration::from_secs(15), || {
        let g = gateway(&hub, &token);
        g["link"]["up_bps"].is_u64().then_some(g)
    });
    assert_eq!(g["provider"], "upnp");
    assert_eq!(g["public_ip"], WAN_IP, "{g}");
    assert_eq!(g["upstream"], "up", "{g}");
    assert_eq!(g["error"], Value::Null, "{g}");
    assert_eq!(g["device"], "Debian router");
    assert!(g["uptime_secs"].is_u64(), "{g}");
    assert!(g["last_updated_ms"].as_i64().unwrap() > 0);
    assert!(g["link"]["max_up_bps"].as_u64().unwrap() > 0, "{g}");
    assert!(g["link"]["max_down_bps"].as_u64().unwrap() > 0, "{g}");
    assert!(g["link"]["down_bps"].is_u64(), "{g}");
    let all = g["gateways"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["provider"], "probe");
    assert_eq!(all[1]["upstream"], "up", "{g}");

    let (_, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    let label = format!("{{provider=\"upnp\",gateway=\"upnp:{desc}\"}}");
    assert!(
        metrics.contains(&format!("twinbay_gateway_up{label} 1")),
        "{metrics}"
    );
    assert!(metrics.contains("# HELP twinbay_gateway_link_max_up_bps "));
    assert!(metrics.contains(&format!("twinbay_gateway_link_max_up_bps{label} ")));

    // The provider gives a new address: an event with the old and the new.
    ns.exec(&["addr", "del", &format!("{WAN_IP}/24"), "dev", "wan0"]);
    ns.exec(&["addr", "add", &format!("{NEW_WAN_IP}/24"), "dev", "wan0"]);
    let changed = wait_for("gateway.public_ip_changed", Duration::from_secs(15), || {
        gateway_events(&hub, &token, "gateway.public_ip_changed")
            .into_iter()
            .next()
    });
    assert_eq!(changed["detail"]["old"], WAN_IP, "{changed}");
    assert_eq!(changed["detail"]["new"], NEW_WAN_IP, "{changed}");
    assert_eq!(changed["target"], format!("upnp:{desc}"));
    assert_eq!(gateway(&hub, &token)["public_ip"], NEW_WAN_IP);

    // The router goes away: unknown, with the reason, and nothing stale as current.
    drop(router);
    let g = wait_for("the gateway unknown", Duration::from_secs(15), || {
        let g = gateway(&hub, &token);
        (g["upstream"] == "unknown").then_some(g)
    });
    assert_eq!(g["public_ip"], Value::Null, "{g}");
    assert_eq!(g["last_public_ip"], NEW_WAN_IP, "{g}");
    assert_eq!(g["link"], Value::Null, "{g}");
    let error = g["error"].as_str().unwrap();
    assert!(error.starts_with("unreachable:"), "{error}");
    assert!(!gateway_events(&hub, &token, "gateway.unreachable").is_empty());
    let (_, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    assert!(
        metrics.contains(&format!("twinbay_gateway_up{label} 0")),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("twinbay_gateway_reachable{label} 0")));
    drop(hub);
    let name = ns.name.clone();
    drop(ns);
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "the namespace is left behind"
    );
}

/// A FRITZ!Box's TR-064 interface on loopback, serving the recorded real
/// description and answers, demanding HTTP digest authentication for
/// `password` on every action as the box does (`F!Box SOAP-Auth`, MD5).
fn tr064_double(password: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use twinbay_hub::gateway::digest;
    const NONCE: &str = "9F1B7C3A5D2E4F60";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = |name: &str| -> &'static str {
        match name {
            "desc" => include_str!("../../../hub/src/gateway/testdata/fritzbox-tr64desc.xml"),
            "GetDefaultConnectionService" => include_str!(
                "../../../hub/src/gateway/testdata/fritzbox-GetDefaultConnectionService.xml"
            ),
            "wanpppconn1" => include_str!(
                "../../../hub/src/gateway/testdata/fritzbox-WANPPPConnection-GetInfo.xml"
            ),
            "GetCommonLinkProperties" => include_str!(
                "../../../hub/src/gateway/testdata/fritzbox-GetCommonLinkProperties.xml"
            ),
            "X_AVM-DE_GetOnlineMonitor" => {
                include_str!("../../../hub/src/gateway/testdata/fritzbox-GetOnlineMonitor.xml")
            }
            "wandslifconfig1" => include_str!(
                "../../../hub/src/gateway/testdata/fritzbox-WANDSLInterfaceConfig-GetInfo.xml"
            ),
            _ => include_str!("../../../hub/src/gateway/testdata/fritzbox-fault-606.xml"),
        }
    };
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let header = |name: &str| {
                head.iter().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let first = head.first().cloned().unwrap_or_default();
            let mut parts = first.split(' ');
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let authorized = header("authorization")
                .and_then(|a| digest::parse_authorization(&a).ok())
                .is_some_and(|p| {
                    let get = |k: &str| {
                        p.iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let challenge = digest::Challenge {
                        realm: "F!Box SOAP-Auth".into(),
                        nonce: NONCE.into(),
                        opaque: None,
                        algorithm: digest::Algorithm::Md5,
                        qop_auth: true,
                        stale: false,
                    };
                    let nc = u32::from_str_radix(&get("nc"), 16).unwrap_or(0);
                    get("response")
                        == digest::response(
                            &challenge,
                            &get("username"),
                            password,
                            method,
                            &get("uri"),
                            nc,
                            &get("cnonce"),
                        )
                });
            let action = header("soapaction")
                .and_then(|a| a.split('#').nth(1).map(|a| a.trim_matches('"').to_string()))
                .unwrap_or_default();
            let (status, extra, body) = match (method, path) {
                ("GET", "/tr64desc.xml") => (200, String::new(), data("desc")),
                ("POST", _) if !authorized => (
                    401,
                    format!(
                        "WWW-Authenticate: Digest realm=\"F!Box SOAP-Auth\", nonce=\"{NONCE}\", \
                         algorithm=MD5, qop=\"auth\"\r\n"
                    ),
                    "<HTML><BODY><H1>401 Unauthorized</H1></BODY></HTML>",
                ),
                ("POST", p) if action == "GetInfo" => {
                    let name = p.rsplit('/').next().unwrap_or("");
                    (200, String::new(), data(name))
                }
                ("POST", _) => (200, String::new(), data(&action)),
                _ => (404, String::new(), ""),
            };
            // An action the recordings lack: the box's fault (606).
            let status = match method == "POST" && status == 200 && body == data("") {
                true => 500,
                false => status,
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\n{extra}Content-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, thread)
}

#[test]
fn a_hub_reads_a_fritzbox_over_tr064_and_says_when_the_password_is_wrong() {
    let dir = temp_dir("gateway-tr064");
    let (right, _a) = tr064_double("s3cret-pw");
    let (wrong, _b) = tr064_double("another-pw");
    let secret = dir.join("gateway-password");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&secret, "s3cret-pw\n").unwrap();
    let good = format!("fritzbox://admin@127.0.0.1:{right}");
    let bad = format!("fritzbox://admin@127.0.0.1:{wrong}");
    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &[
            "--gateway",
            &good,
            "--gateway",
            &bad,
            "--gateway-password-file",
            secret.to_str().unwrap(),
            "--gateway-interval",
            "1s",
        ],
    );
    let token = hub.token("viewer");
    let g = wait_for("the FRITZ!Box's address", Duration::from_secs(15), || {
        let g = gateway(&hub, &token);
        let both = g["gateways"][1]["error"].is_string();
        (g["public_ip"].is_string() && both).then_some(g)
    });
    assert_eq!(g["provider"], "fritzbox", "{g}");
    assert_eq!(g["public_ip"], "81.2.69.142", "{g}");
    assert_eq!(g["upstream"], "up", "{g}");
    assert_eq!(g["device"], "FRITZ!Box 7590", "{g}");
    assert_eq!(g["uptime_secs"], 263511, "{g}");
    assert_eq!(g["link"]["down_bps"], 10_000_000, "{g}");
    assert_eq!(g["dsl"]["down_sync_bps"], 116_798_000, "{g}");
    // The other box refuses the password: said so, with no values.
    let other = &g["gateways"][1];
    let error = other["error"].as_str().unwrap();
    assert!(error.starts_with("authentication failed"), "{other}");
    assert_eq!(other["public_ip"], Value::Null, "{other}");
    assert_eq!(other["upstream"], "unknown", "{other}");
    assert_eq!(other["last_updated_ms"], Value::Null, "{other}");
    // The password is nowhere on the hub's command line.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", hub.proc.child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("s3cret-pw"));
}
