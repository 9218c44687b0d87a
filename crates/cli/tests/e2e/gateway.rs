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

fn gateway(hub: &Hub, token: &str) -> Value {
    let (status, body) = hub.get("/api/v1/gateway", token);
    assert_eq!(status, 200, "{body}");
    body
}

fn gateway_events(hub: &Hub, token: &str, kind: &str) -> Vec<Value> {
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
