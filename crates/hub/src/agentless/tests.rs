//! The collector against this machine (a [`LocalRunner`]: the commands
//! really run), and against runners that fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::history::HistoryConfig;

struct Setup {
    sink: Sink,
    cancel: CancellationToken,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup(name: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("twinbay-agentless-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir).await.unwrap();
    let cancel = CancellationToken::new();
    let (history, _task) = History::spawn(
        store.clone(),
        HistoryConfig::default(),
        None,
        cancel.clone(),
    );
    Setup {
        sink: Sink {
            twin: Arc::new(Twin::new(Vec::new())),
            history,
            store,
            replicas: None,
        },
        cancel,
        _dir: TempDir(dir),
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(watch: &[&str]) -> Config {
    Config {
        interval: Duration::from_secs(1),
        watch: watch.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_machine_fills_the_twin() {
    let s = setup("local").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = start_with(
        s.sink.clone(),
        s.cancel.child_token(),
        "n1",
        Arc::new(LocalRunner),
        config(&["/etc/hostname", "/nonexistent/file"]),
    );
    let twin = s.sink.twin.clone();
    until("two runs with a CPU figure", || {
        handle.counters.runs() >= 2 && twin.read("n1", |n| n.resources.is_some()).unwrap_or(false)
    })
    .await;
    until("the second sample", || {
        twin.read("n1", |n| {
            n.resources.as_ref().is_some_and(|r| {
                r.cores.len() as u32 == n.state.host.cpu_cores && n.seq.unwrap_or(0) >= 1
            })
        })
        .unwrap_or(false)
            && handle.counters.runs() >= 3
    })
    .await;
    let view = twin.view("n1").unwrap();
    assert!(view.connected);
    let agentless = view.agentless.as_ref().expect("marked agentless");
    assert_eq!(agentless.interval_secs, 1);
    assert!(agentless.without_agent.iter().any(|w| w == "processes"));
    // As GET /api/v1/nodes/{id} and GET /api/v1/nodes show it.
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["agentless"]["interval_secs"], 1);
    let list = serde_json::to_value(twin.summaries()).unwrap();
    assert_eq!(list[0]["agentless"]["interval_secs"], 1);
    let st = &view.state;
    assert!(!st.host.hostname.is_empty());
    assert_eq!(st.host.arch, std::env::consts::ARCH);
    assert!(st.host.cpu_cores >= 1);
    let r = view.resources.as_ref().unwrap();
    assert!(r.mem_total > 0 && r.mem_used <= r.mem_total);
    assert!((0.0..=100.0).contains(&r.cpu_pct));
    assert!(
        st.mounts.contains_key("/"),
        "mounts: {:?}",
        st.mounts.keys()
    );
    assert!(r.disks.iter().any(|d| d.mount == "/" && d.total > 0));
    assert!(!st.interfaces.is_empty());
    assert!(!r.nets.is_empty());
    let key = format!("tcp/127.0.0.1:{port}");
    until("our listener in the ports", || {
        twin.read("n1", |n| n.state.ports.contains_key(&key))
            .unwrap_or(false)
    })
    .await;
    for source in ["host", "cpu", "memory", "disks", "net", "ports", "files"] {
        let status = &twin.view("n1").unwrap().state.sources[source];
        assert!(status.available, "{source}: {:?}", status.reason);
    }
    let files = twin.view("n1").unwrap().state.files;
    assert_eq!(
        files["/etc/hostname"].sha256.as_deref().map(str::len),
        Some(64)
    );
    assert_eq!(
        files["/nonexistent/file"].state,
        twinbay_proto::model::FileState::Missing
    );

    // Every run is recorded: what ran, how long, how it went (right after
    // the twin is told).
    let mut runs = Vec::new();
    for _ in 0..250 {
        runs = s.sink.store.collection_runs("n1", 10).await.unwrap();
        if runs.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(runs.len() >= 2, "{} runs recorded", runs.len());
    assert!(
        runs[0]
            .commands
            .iter()
            .any(|c| c.name == "df" && c.outcome == "ok")
    );
    assert!(
        runs.iter()
            .all(|r| r.outcome == "ok" || r.outcome == "partial"),
        "{runs:?}"
    );
    // Host facts are cached for ten minutes: not every run asks again.
    assert!(runs[0].commands.iter().all(|c| c.name != "uname"));

    // Reads never run commands: between two runs, a thousand reads add none.
    let mut checked = false;
    for _ in 0..20 {
        let before = handle.counters.commands();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if handle.counters.commands() != before {
            continue; // a run is under way
        }
        let runs_before = handle.counters.runs();
        for _ in 0..1000 {
            let _ = twin.view("n1");
            let _ = twin.summaries();
        }
        if handle.counters.runs() == runs_before {
            assert_eq!(handle.counters.commands(), before);
            checked = true;
            break;
        }
    }
    assert!(checked, "never found a quiet moment between runs");

    handle.stop().await;
    assert!(
        !twin.view("n1").unwrap().connected,
        "a stopped collector disconnects the node"
    );
    drop(listener);
}

/// LocalRunner until `down`; then every command fails as SSH to a dead host would.
struct Flaky {
    down: AtomicBool,
}

impl Runner for Flaky {
    fn run<'a>(
        &'a self,
        argv: &'a [String],
        timeout: Duration,
        max: usize,
    ) -> runner::RunFuture<'a> {
        if self.down.load(Ordering::Relaxed) {
            return Box::pin(async { Err(RunError::Unreachable("connection refused".into())) });
        }
        LocalRunner.run(argv, timeout, max)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_marks_its_sources_unavailable() {
    let s = setup("flaky").await;
    let runner = Arc::new(Flaky {
        down: AtomicBool::new(false),
    });
    let handle = start_with(
        s.sink.clone(),
        s.cancel.child_token(),
        "n2",
        runner.clone(),
        config(&[]),
    );
    let twin = s.sink.twin.clone();
    until("the first run", || {
        twin.read("n2", |n| n.connected && !n.state.sources.is_empty())
            .unwrap_or(false)
    })
    .await;
    let mounts = twin.view("n2").unwrap().state.mounts;
    runner.down.store(true, Ordering::Relaxed);
    until("the node to go down", || {
        !twin.read("n2", |n| n.connected).unwrap()
    })
    .await;
    let st = twin.view("n2").unwrap().state;
    assert!(
        st.sources
            .values()
            .all(|s| !s.available
                && s.reason.as_deref() == Some("host unreachable: connection refused")),
        "{:?}",
        st.sources
    );
    assert_eq!(st.mounts, mounts, "the last known twin stays");
    // The run is recorded right after the twin is told.
    let mut outcome = String::new();
    for _ in 0..100 {
        outcome = s.sink.store.collection_runs("n2", 1).await.unwrap()[0]
            .outcome
            .clone();
        if outcome == "unreachable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outcome, "unreachable");

    runner.down.store(false, Ordering::Relaxed);
    until("the node to come back", || {
        twin.read("n2", |n| n.connected && n.state.sources["cpu"].available)
            .unwrap()
    })
    .await;
    handle.stop().await;
}

/// Every command runs and fails.
struct Refusing;

impl Runner for Refusing {
    fn run<'a>(&'a self, _argv: &'a [String], _t: Duration, _m: usize) -> runner::RunFuture<'a> {
        Box::pin(async {
            Ok(ExecOutput {
                status: Some(1),
                stdout: Vec::new(),
                stderr: b"permission denied\n".to_vec(),
                duration: Duration::ZERO,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_commands_say_why_per_source() {
    let s = setup("refusing").await;
    let handle = start_with(
        s.sink.clone(),
        s.cancel.child_token(),
        "n3",
        Arc::new(Refusing),
        config(&[]),
    );
    let twin = s.sink.twin.clone();
    until("a run", || {
        twin.read("n3", |n| !n.state.sources.is_empty())
            .unwrap_or(false)
    })
    .await;
    let st = twin.view("n3").unwrap().state;
    let cpu = &st.sources["cpu"];
    assert!(!cpu.available);
    assert_eq!(
        cpu.reason.as_deref(),
        Some(
            "cat /proc/stat: exit 1: permission denied; cat /proc/loadavg: exit 1: permission denied"
        )
    );
    assert!(
        twin.view("n3").unwrap().resources.is_none(),
        "no sample made of nothing"
    );
    // `command -v` fails too: optional programs are absent, not broken.
    assert_eq!(
        st.sources["containers"].reason.as_deref(),
        Some("not on this host: no podman, docker")
    );
    // The run is recorded right after the twin is told.
    let mut runs = Vec::new();
    for _ in 0..250 {
        runs = s.sink.store.collection_runs("n3", 1).await.unwrap();
        if !runs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs.first().map(|r| r.outcome.as_str()), Some("failed"));
    handle.stop().await;
}

/// For `bench/agentless`: 100 hosts on this machine through [`LocalRunner`]
/// at a short interval; commands per minute, scaled to the real interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a bench: cargo test -p twinbay-hub --lib agentless::tests::hundred_hosts -- --ignored --nocapture"]
async fn hundred_hosts_commands_per_minute() {
    let hosts: usize = std::env::var("AGENTLESS_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let secs: u64 = std::env::var("AGENTLESS_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let s = setup("bench").await;
    let handles: Vec<_> = (0..hosts)
        .map(|i| {
            let c = Config {
                interval: Duration::from_secs(secs),
                watch: vec!["/etc/hostname".into()],
            };
            start_with(
                s.sink.clone(),
                s.cancel.child_token(),
                &format!("h{i}"),
                Arc::new(LocalRunner),
                c,
            )
        })
        .collect();
    let total = |h: &[Handle]| h.iter().map(|h| h.counters.commands()).sum::<u64>();
    let runs = |h: &[Handle]| h.iter().map(|h| h.counters.runs()).sum::<u64>();
    // The first run asks host facts and presence: measure after it.
    tokio::time::sleep(Duration::from_secs(secs * 2)).await;
    let (c0, r0, t0) = (total(&handles), runs(&handles), Instant::now());
    let window = Duration::from_secs(secs * 4);
    // Meanwhile, read the twin as hard as API clients could.
    let twin = s.sink.twin.clone();
    let reader = tokio::spawn(async move {
        let mut reads = 0u64;
        let end = Instant::now() + window;
        while Instant::now() < end {
            for i in 0..hosts {
                let _ = twin.view(&format!("h{i}"));
            }
            let _ = twin.summaries();
            reads += hosts as u64 + 1;
            tokio::task::yield_now().await;
        }
        reads
    });
    let reads = reader.await.unwrap();
    let (c1, r1, dt) = (total(&handles), runs(&handles), t0.elapsed().as_secs_f64());
    let per_run = (c1 - c0) as f64 / (r1 - r0).max(1) as f64;
    let at_30s = per_run * hosts as f64 * 2.0;
    println!(
        "hosts={hosts} interval={secs}s window={dt:.1}s commands={} runs={} commands/run={per_run:.2} \
         commands/min={:.0} (at a 30 s interval: {at_30s:.0}/min) twin reads={reads}",
        c1 - c0,
        r1 - r0,
        (c1 - c0) as f64 * 60.0 / dt,
    );
    // Reads add nothing: every command belongs to a run.
    assert!(per_run <= registry::commands().len() as f64 + 2.0 + 2.0);
    for h in handles {
        h.stop().await;
    }
}
