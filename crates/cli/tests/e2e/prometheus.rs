//! `/metrics` at fleet size: Prometheus's own checker and a real Prometheus
//! (Debian's `prometheus` package; scripts/test.sh installs it) against a
//! hub with 1,000 simulated hosts.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const HOSTS: usize = 1_000;

fn node_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("twinbay_node_up{"))
        .filter_map(|l| {
            let rest = l.split_once("node=\"")?.1;
            Some(rest.split_once('"')?.0.to_string())
        })
        .collect();
    ids.sort();
    ids
}

fn promtool_check(text: &str) -> String {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/test.sh does)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed: {report}");
    report
}

/// Every family has HELP and TYPE, names and labels are valid, counters end
/// in `_total` (promtool); a scraper picks all nodes, none or a stable
/// shard; a real Prometheus scraping two shards as two jobs sees the whole
/// fleet once.
#[test]
fn a_real_prometheus_scrapes_a_hub_with_1000_hosts_in_shards() {
    let dir = temp_dir("prometheus");
    // The simulated fleet dials from one address (real hosts each have their own).
    let one_address = ["--max-connections-per-ip", "100000"];
    let hub = Hub::start_for_fleet(&dir.join("hub"), &one_address);
    let token = hub.token("admin");
    // Enrolled at a pace a real fleet might be: 1,000 first handshakes at
    // once would only measure this debug build's ed25519.
    let _fleet = sim(&hub.join(), HOSTS, &["--ramp", "100"], &dir.join("sim.log"));
    let auth = format!("Bearer {token}");
    let started = std::time::Instant::now();
    let mut last = 0;
    wait_for("1,000 connected agents", Duration::from_secs(240), || {
        // A poll may time out while the herd enrolls; the next one asks again.
        let (_, body) = http(
            hub.addr,
            "GET",
            "/api/v1/hub",
            &[("Authorization", &auth)],
            "",
        )
        .ok()?;
        let status: Value = serde_json::from_str(&body).ok()?;
        let connected = status["connected"].as_u64()?;
        if connected / 100 != last / 100 {
            eprintln!(
                "prometheus: {connected} connected after {:?}",
                started.elapsed()
            );
        }
        last = connected;
        (connected >= HOSTS as u64).then_some(())
    });
    wait_for("samples from every host", Duration::from_secs(60), || {
        let (_, metrics) = http(hub.addr, "GET", "/metrics", &[], "").ok()?;
        let reporting = metrics
            .lines()
            .filter(|l| l.starts_with("twinbay_node_cpu_percent{"))
            .count();
        (reporting == HOSTS).then_some(())
    });

    // The default scrape of a fleet this size carries every node.
    let (status, all) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(status, 200);
    assert_eq!(node_ids(&all).len(), HOSTS);
    let report = promtool_check(&all);
    assert!(report.trim().is_empty(), "{report}");
    assert!(all.contains("# HELP twinbay_agent_frames_total "), "{all}");
    assert!(all.contains("twinbay_metrics_nodes_omitted 0"));
    eprintln!(
        "prometheus: a scrape of {HOSTS} hosts is {} KiB ({} lines)",
        all.len() / 1024,
        all.lines().count()
    );

    // Prometheus itself asks for OpenMetrics, and gets it.
    let accept = [(
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )];
    let (_, open) = http(hub.addr, "GET", "/metrics", &accept, "").unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE twinbay_agent_frames counter"));

    // The hub's own health without the fleet: small, and says what it left out.
    let (_, bare) = http(hub.addr, "GET", "/metrics?nodes=none", &[], "").unwrap();
    assert!(node_ids(&bare).is_empty());
    assert!(bare.contains(&format!("twinbay_nodes {HOSTS}")), "{bare}");
    assert!(bare.contains(&format!("twinbay_metrics_nodes_omitted {HOSTS}")));
    // Firing and pending alerts stay (as Prometheus' ALERTS): they scale with
    // what is wrong, not with the fleet.
    let own: usize = bare
        .lines()
        .filter(|l| !l.starts_with("twinbay_alerts{"))
        .map(|l| l.len() + 1)
        .sum();
    assert!(own < 16 * 1024, "{own} bytes besides alerts:\n{bare}");
    promtool_check(&bare);
    eprintln!(
        "prometheus: ?nodes=none is {} bytes ({own} besides {} alert series)",
        bare.len(),
        bare.lines()
            .filter(|l| l.starts_with("twinbay_alerts{"))
            .count()
    );

    // Shards: disjoint, together the fleet, each roughly half.
    let shard = |i: u32| {
        let (status, text) =
            http(hub.addr, "GET", &format!("/metrics?shard={i}/2"), &[], "").unwrap();
        assert_eq!(status, 200);
        node_ids(&text)
    };
    let (a, b) = (shard(0), shard(1));
    assert!(a.iter().all(|id| !b.contains(id)));
    let mut both: Vec<String> = a.iter().chain(&b).cloned().collect();
    both.sort();
    assert_eq!(both, node_ids(&all));
    assert!(
        a.len() > HOSTS / 4 && b.len() > HOSTS / 4,
        "{} + {}",
        a.len(),
        b.len()
    );

    // One node by id.
    let (_, one) = http(hub.addr, "GET", &format!("/metrics?node={}", a[0]), &[], "").unwrap();
    assert_eq!(node_ids(&one), vec![a[0].clone()]);

    // Bad selections are refused with a clear error.
    for bad in ["shard=2/2", "shard=x", "nodes=some", "nodes=all&shard=0/2"] {
        let (status, body) = http(hub.addr, "GET", &format!("/metrics?{bad}"), &[], "").unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/metrics"),
            "{body}"
        );
    }

    // A real Prometheus, one job per shard.
    let port = free_port();
    let config = dir.join("prometheus.yml");
    let mut jobs = String::new();
    for i in 0..2 {
        jobs.push_str(&format!(
            "  - job_name: twinbay-{i}\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    params: {{shard: ['{i}/2']}}\n    static_configs: [{{targets: ['{}']}}]\n",
            hub.addr
        ));
    }
    std::fs::write(&config, format!("scrape_configs:\n{jobs}")).unwrap();
    let prometheus = Proc {
        child: Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (apt-get install prometheus; scripts/test.sh does)"),
        name: "prometheus",
    };
    let prom: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let query = |q: &str| -> Option<Value> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        let (status, body) = http(prom, "GET", &path, &[], "").ok()?;
        let v: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
        v["data"]["result"]
            .as_array()?
            .first()
            .map(|r| r["value"][1].clone())
    };
    let seen = wait_for(
        "Prometheus to scrape every host once, through both shards",
        Duration::from_secs(60),
        || {
            let up = query("sum(up{job=~\"twinbay-.\"})")?;
            let nodes = query("count(twinbay_node_up)")?;
            let per_job = query("max(scrape_samples_scraped{job=~\"twinbay-.\"})")?;
            (up == "2" && nodes == HOSTS.to_string().as_str()).then_some(per_job)
        },
    );
    eprintln!(
        "prometheus: a real Prometheus sees {HOSTS} hosts in 2 shard jobs; largest scrape {seen} samples"
    );
    assert_eq!(
        query("count(count by (node) (twinbay_node_cpu_percent))").as_ref(),
        Some(&Value::String(HOSTS.to_string()))
    );
    drop(prometheus);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
