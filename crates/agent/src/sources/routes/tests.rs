//! The source's loop against real files and a fake admin API.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twinbay_proto::model::Container;

use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinbay-routes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sites")).unwrap();
    d
}

fn site(host: &str, port: u16) -> String {
    format!(
        "server {{ server_name {host}; location / {{ proxy_pass http://127.0.0.1:{port}; }} }}\n"
    )
}

async fn wait(
    state: &watch::Sender<NodeState>,
    what: &str,
    f: impl Fn(&NodeState) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut rx = state.subscribe();
    loop {
        if f(&rx.borrow_and_update()) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}: {:?}",
            state.borrow()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
    }
}

/// A fake admin API answering every request with `status` and `body`.
async fn fake_api(status: u16, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_edits_reach_the_twin_and_targets_follow_containers() {
    let d = tmp("loop");
    let conf = d.join("nginx.conf");
    std::fs::write(&conf, "http { include sites/*.conf; }").unwrap();
    std::fs::write(d.join("sites/a.conf"), site("a.example", 8080)).unwrap();
    let (tx, _rx) = watch::channel(NodeState::default());
    let state = Arc::new(tx);
    let cancel = CancellationToken::new();
    let config = RoutesConfig {
        nginx_conf: vec![conf.clone()],
        caddy_api: vec![fake_api(500, "{}").await],
        ..Default::default()
    };
    let task = tokio::spawn(run(config, state.clone(), cancel.clone()));
    let key = "nginx/host/a.example/";
    wait(&state, "the first route", |s| s.routes.contains_key(key)).await;
    {
        let s = state.borrow();
        assert_eq!(s.routes[key].target, RouteTarget::Unknown);
        let status = &s.sources[SOURCE];
        assert!(status.available, "{status:?}");
        let reason = status.reason.as_deref().unwrap();
        assert!(reason.contains("nginx: 1 routes"), "{reason}");
        assert!(
            reason.contains("caddy: admin API at http://127.0.0.1:")
                && reason.ends_with("answered 500"),
            "{reason}"
        );
    }

    // A container publishing 8080 appears: the target follows.
    state.send_modify(|s| {
        let c = Container {
            id: "c1".into(),
            name: "web".into(),
            state: "running".into(),
            ports: vec!["0.0.0.0:8080->80/tcp".into()],
            ..Default::default()
        };
        s.containers.insert("c1".into(), c.into());
    });
    wait(
        &state,
        "the container target",
        |s| matches!(&s.routes[key].target, RouteTarget::Container { name, .. } if name == "web"),
    )
    .await;

    // A new site file, then an edit by rename-over (like sed -i).
    std::fs::write(d.join("sites/b.conf"), site("b.example", 9)).unwrap();
    wait(&state, "the new site", |s| {
        s.routes.contains_key("nginx/host/b.example/")
    })
    .await;
    let tmpfile = d.join("sites/.a.conf.tmp");
    std::fs::write(&tmpfile, site("c.example", 8080)).unwrap();
    std::fs::rename(&tmpfile, d.join("sites/a.conf")).unwrap();
    let took = wait(&state, "the edited site", |s| {
        s.routes.contains_key("nginx/host/c.example/") && !s.routes.contains_key(key)
    })
    .await;
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A symlinked site (Debian's sites-enabled) edited where it points.
    let avail = d.join("available");
    std::fs::create_dir_all(&avail).unwrap();
    std::fs::write(avail.join("l.conf"), site("l1.example", 1)).unwrap();
    std::os::unix::fs::symlink(avail.join("l.conf"), d.join("sites/l.conf")).unwrap();
    wait(&state, "the linked site", |s| {
        s.routes.contains_key("nginx/host/l1.example/")
    })
    .await;
    std::fs::write(avail.join("l.conf"), site("l2.example", 1)).unwrap();
    wait(&state, "the linked site's edit", |s| {
        s.routes.contains_key("nginx/host/l2.example/")
    })
    .await;

    // A broken file: a reason, and the other file's routes stay.
    std::fs::write(d.join("sites/b.conf"), "server { location / {").unwrap();
    wait(&state, "the reason", |s| {
        s.sources[SOURCE]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("b.conf: unexpected end of file"))
    })
    .await;
    assert!(state.borrow().routes.contains_key("nginx/host/c.example/"));
    assert!(!state.borrow().routes.contains_key("nginx/host/b.example/"));

    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn nothing_found_is_unavailable_and_apis_are_read() {
    let (tx, _rx) = watch::channel(NodeState::default());
    let state = Arc::new(tx);
    let cancel = CancellationToken::new();
    let caddy = fake_api(
        200,
        r#"{"apps":{"http":{"servers":{"s":{"listen":[":80"],"routes":[{"match":[{"host":["x"]}],"handle":[{"handler":"reverse_proxy","upstreams":[{"dial":"10.0.0.9:80"}]}]}]}}}}}"#,
    )
    .await;
    let traefik = fake_api(200, "not json").await;
    let config = RoutesConfig {
        nginx_conf: vec![tmp("none").join("absent.conf")],
        caddy_api: vec![caddy],
        traefik_api: vec![traefik],
        ..Default::default()
    };
    let task = tokio::spawn(run(config, state.clone(), cancel.clone()));
    wait(&state, "the caddy route", |s| {
        s.routes.contains_key("caddy/host/x/")
    })
    .await;
    let s = state.borrow().clone();
    assert_eq!(s.routes["caddy/host/x/"].target, RouteTarget::External);
    let reason = s.sources[SOURCE].reason.clone().unwrap();
    assert!(reason.contains("absent.conf: No such file"), "{reason}");
    assert!(
        reason.contains("traefik: API at http://127.0.0.1:") && reason.contains("not JSON"),
        "{reason}"
    );
    cancel.cancel();
    task.await.unwrap();

    // Nothing configured and nothing in the default places.
    let providers = vec![Provider::new(Kind::Caddy, DEFAULT_CADDY_API.into(), true)];
    let status = status(&providers);
    assert!(!status.available);
    assert_eq!(
        status.reason.as_deref(),
        Some("no reverse proxy found (looked at http://127.0.0.1:2019)")
    );
}

#[test]
fn traefik_containers_publishing_the_api_are_discovered() {
    let mut s = NodeState::default();
    let mut add = |id: &str, name: &str, image: &str, state: &str, ports: &[&str]| {
        let c = Container {
            id: id.into(),
            name: name.into(),
            image: image.into(),
            state: state.into(),
            ports: ports.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        s.containers.insert(id.into(), c.into());
    };
    add(
        "a",
        "proxy",
        "docker.io/library/traefik:v3",
        "running",
        &["0.0.0.0:9090->8080/tcp", "0.0.0.0:443->443/tcp"],
    );
    add(
        "b",
        "traefik-lan",
        "x",
        "running",
        &["192.168.1.2:8081->8080/tcp"],
    );
    add(
        "c",
        "traefik-old",
        "x",
        "exited",
        &["0.0.0.0:8082->8080/tcp"],
    );
    add("d", "web", "nginx", "running", &["0.0.0.0:8083->8080/tcp"]);
    assert_eq!(
        discovered_traefik(&s),
        ["http://127.0.0.1:9090", "http://192.168.1.2:8081"]
    );
    let mut providers = providers(&RoutesConfig::default());
    sync_discovered(&mut providers, &RoutesConfig::default(), &s);
    assert_eq!(
        providers.iter().filter(|p| p.kind == Kind::Traefik).count(),
        2
    );
    s.containers.remove("a");
    sync_discovered(&mut providers, &RoutesConfig::default(), &s);
    let left: Vec<&str> = providers
        .iter()
        .filter(|p| p.kind == Kind::Traefik)
        .map(|p| p.at.as_str())
        .collect();
    assert_eq!(left, ["http://192.168.1.2:8081"]);
}

#[tokio::test]
async fn the_client_bounds_size_and_time_and_refuses_https() {
    // Too large: a body over 4 MiB.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let big = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let n = http::MAX_BODY + 1;
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n");
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(&vec![b' '; n]).await;
    });
    let e = http::get(&big).await.unwrap_err();
    assert!(e.contains("reading the answer"), "{e}");

    // Silent: accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    let _keep = tokio::spawn(async move {
        let conn = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(conn);
    });
    let start = Instant::now();
    let e = http::get(&silent).await.unwrap_err();
    assert!(e.contains("no answer within 2s"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));

    assert!(
        http::get("https://127.0.0.1:1/")
            .await
            .unwrap_err()
            .contains("only http://")
    );
    let e = http::get("http://127.0.0.1:1/").await.unwrap_err();
    assert!(e.starts_with("cannot connect"), "{e}");
}

/// A fake Traefik: two pages of routers, one of services.
async fn fake_traefik() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let (next, body) = if path.starts_with("/api/http/routers?page=1&") {
                    (
                        "2",
                        r#"[{"name":"a@file","provider":"file","rule":"Host(`a`)","service":"s"}]"#,
                    )
                } else if path.starts_with("/api/http/routers?page=2&") {
                    (
                        "1",
                        r#"[{"name":"b@file","provider":"file","rule":"Host(`b`)","service":"s@file"}]"#,
                    )
                } else {
                    (
                        "1",
                        r#"[{"name":"s@file","loadBalancer":{"servers":[{"url":"http://10.9.9.9"}]}}]"#,
                    )
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nx-next-page: {next}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn traefik_pages_are_followed() {
    let base = fake_traefik().await;
    let (routers, services) = traefik::fetch(&base).await.unwrap();
    assert_eq!(routers.len(), 2);
    let found = traefik::routes(&routers, &services, "host").unwrap();
    let s = NodeState::default();
    let routes = assemble(found.iter(), &s);
    let keys: Vec<&str> = routes.keys().map(String::as_str).collect();
    assert_eq!(keys, ["traefik/host/a/", "traefik/host/b/"]);
    assert!(
        routes
            .values()
            .all(|r| r.upstream == "http://10.9.9.9" && r.target == RouteTarget::External)
    );
}

#[test]
fn one_key_twice_keeps_the_tls_route_and_apis_name_their_container() {
    let route = |tls: bool, upstream: &str| Found {
        route: Route {
            host: "a".into(),
            path: "/".into(),
            instance: "host".into(),
            upstream: upstream.into(),
            tls,
            ..Default::default()
        },
        dial: None,
    };
    let found = [
        route(false, "plain"),
        route(true, "tls"),
        route(false, "later"),
    ];
    let routes = assemble(found.iter(), &NodeState::default());
    assert_eq!(routes.len(), 1);
    assert_eq!(routes["nginx/host/a/"].upstream, "tls");

    let mut s = NodeState::default();
    let c = Container {
        id: "t".into(),
        name: "traefik".into(),
        ports: vec!["0.0.0.0:9090->8080/tcp".into()],
        ..Default::default()
    };
    s.containers.insert("t".into(), c.into());
    assert_eq!(instance_of("http://127.0.0.1:9090", &s), "traefik");
    assert_eq!(instance_of("http://127.0.0.1:2019/", &s), "host");
}
