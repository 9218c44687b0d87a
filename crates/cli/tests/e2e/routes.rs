//! Issue 16: reverse-proxy routes from a real nginx, Caddy and Traefik
//! (scripts/test.sh installs them), with a real Podman container as the
//! upstream, through the real agent to the hub's node twin.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

/// Where `bin` is (on PATH, or in /usr/sbin where Debian puts nginx), if
/// installed; says so when it is not.
fn installed(bin: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let found = out.or_else(|| {
        let sbin = Path::new("/usr/sbin").join(bin);
        sbin.exists().then_some(sbin)
    });
    if found.is_none() {
        eprintln!(
            "routes e2e: {bin} is not installed (scripts/test.sh installs it): skipping its part"
        );
    }
    found
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Proc { child, name }
}

fn wait_listening(what: &str, port: u16) {
    wait_for(what, Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
}

/// Writes by rename-over, as editors and `sed -i` do.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-save");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn nginx_site(port: u16, name: &str) -> String {
    format!(
        "server {{\n  listen 127.0.0.1:{port};\n  server_name {name};\n  location / {{ proxy_pass http://webapp; }}\n}}\n"
    )
}

fn traefik_dynamic(host: &str, web: u16) -> String {
    format!(
        "http:\n  routers:\n    app:\n      rule: \"Host(`{host}`) && PathPrefix(`/t`)\"\n      service: app\n      entryPoints: [websecure]\n      tls: {{}}\n  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:{web}\"\n"
    )
}

fn route<'a>(twin: &'a Value, key: &str) -> Option<&'a Value> {
    twin["routes"].get(key)
}

fn targets(twin: &Value, key: &str, cid: &str) -> bool {
    route(twin, key).is_some_and(|r| r["target"]["kind"] == "container" && r["target"]["id"] == cid)
}

#[test]
fn routes_of_real_proxies_reach_the_twin_and_follow_edits() {
    let dir = temp_dir("routes");
    let pid = std::process::id();
    let socket = dir.join("podman.sock");
    let _service = podman_service(&socket);

    // The upstream: a container publishing a loopback port.
    let web_port = free_port();
    let name = format!("tb-routes-{pid}");
    let _web = Container(name.clone());
    let out = Command::new("podman")
        .args(["run", "-d", "--name", &name, "-p"])
        .arg(format!("127.0.0.1:{web_port}:80"))
        .args([IMAGE, "httpd", "-f", "-p", "80"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cid = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let mut agent_args: Vec<String> = vec![
        "--container-socket".into(),
        socket.to_str().unwrap().into(),
        "--routes-poll".into(),
        "1s".into(),
    ];
    let mut procs = Vec::new();

    // nginx, as this user, under a prefix of its own.
    let ngx = dir.join("nginx");
    let sites = ngx.join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    let (ngx_port, ngx_tls) = (free_port(), free_port());
    let nginx_bin = installed("nginx");
    let have_nginx = nginx_bin.is_some();
    if let Some(nginx_bin) = &nginx_bin {
        let cert = rcgen::generate_simple_self_signed(vec!["tls.localhost".into()]).unwrap();
        std::fs::write(ngx.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(ngx.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let d = ngx.display();
        std::fs::write(
            ngx.join("nginx.conf"),
            format!(
                "# One process: nothing outlives the test when it is killed.\nmaster_process off;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  upstream webapp {{ server 127.0.0.1:{web_port}; }}\n  include sites/*.conf;\n}}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            sites.join("app.conf"),
            nginx_site(ngx_port, "app.localhost"),
        )
        .unwrap();
        std::fs::write(
            sites.join("var.conf"),
            format!(
                "server {{\n  listen 127.0.0.1:{ngx_port};\n  server_name var.localhost;\n  set $upstream 127.0.0.1:{web_port};\n  location /v/ {{ proxy_pass http://$upstream; }}\n}}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            sites.join("tls.conf"),
            format!(
                "server {{\n  listen 127.0.0.1:{ngx_tls} ssl;\n  server_name tls.localhost;\n  ssl_certificate {d}/cert.pem;\n  ssl_certificate_key {d}/key.pem;\n  location / {{ proxy_pass http://192.0.2.10:8080; }}\n}}\n"
            ),
        )
        .unwrap();
        procs.push(spawn(
            "nginx",
            Command::new(nginx_bin)
                .arg("-p")
                .arg(&ngx)
                .arg("-e")
                .arg(ngx.join("error.log"))
                .arg("-c")
                .arg(ngx.join("nginx.conf"))
                .arg("-g")
                .arg(format!("daemon off; pid {}/nginx.pid;", ngx.display())),
            &dir.join("nginx.log"),
        ));
        wait_listening("nginx", ngx_port);
        agent_args.extend([
            "--nginx-conf".into(),
            ngx.join("nginx.conf").to_str().unwrap().into(),
        ]);
    }

    // Caddy: two sites, one with a path matcher; admin on a port of its own.
    let caddy_admin = free_port();
    let caddy_port = free_port();
    let caddy_bin = installed("caddy");
    let have_caddy = caddy_bin.is_some();
    if let Some(caddy_bin) = &caddy_bin {
        let cdir = dir.join("caddy");
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(
            cdir.join("Caddyfile"),
            format!(
                "{{\n\tadmin 127.0.0.1:{caddy_admin}\n\tauto_https off\n}}\nhttp://c1.localhost:{caddy_port} {{\n\treverse_proxy 127.0.0.1:{web_port}\n}}\nhttp://c2.localhost:{caddy_port} {{\n\thandle_path /api/* {{\n\t\treverse_proxy 192.0.2.20:80\n\t}}\n}}\n"
            ),
        )
        .unwrap();
        procs.push(spawn(
            "caddy",
            Command::new(caddy_bin)
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(cdir.join("Caddyfile"))
                .env("HOME", &cdir)
                .env("XDG_CONFIG_HOME", &cdir)
                .env("XDG_DATA_HOME", &cdir),
            &dir.join("caddy.log"),
        ));
        wait_listening("caddy's admin API", caddy_admin);
        agent_args.extend([
            "--caddy-api".into(),
            format!("http://127.0.0.1:{caddy_admin}"),
        ]);
    }

    // Traefik: a file provider with a TLS router, watched for changes.
    let traefik_api = free_port();
    let traefik_web = free_port();
    let dynamic = dir.join("traefik.yml");
    let traefik_bin = installed("traefik");
    let have_traefik = traefik_bin.is_some();
    if let Some(traefik_bin) = &traefik_bin {
        std::fs::write(&dynamic, traefik_dynamic("t1.localhost", web_port)).unwrap();
        procs.push(spawn(
            "traefik",
            Command::new(traefik_bin)
                .arg("--api.insecure=true")
                .arg(format!(
                    "--entryPoints.traefik.address=127.0.0.1:{traefik_api}"
                ))
                .arg(format!(
                    "--entryPoints.websecure.address=127.0.0.1:{traefik_web}"
                ))
                .arg(format!("--providers.file.filename={}", dynamic.display()))
                .arg("--providers.file.watch=true")
                .arg("--global.checkNewVersion=false")
                .arg("--global.sendAnonymousUsage=false")
                .arg("--log.level=ERROR"),
            &dir.join("traefik.log"),
        ));
        wait_listening("traefik's API", traefik_api);
        agent_args.extend([
            "--traefik-api".into(),
            format!("http://127.0.0.1:{traefik_api}"),
        ]);
    }

    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
    let mut agent = agent_with(Some(&hub.join()), &dir.join("agent"), &args);
    let mut want = Vec::new();
    if have_nginx {
        want.extend([
            "nginx/host/app.localhost/",
            "nginx/host/var.localhost/v/",
            "nginx/host/tls.localhost/",
        ]);
    }
    if have_caddy {
        want.extend(["caddy/host/c1.localhost/", "caddy/host/c2.localhost/api/*"]);
    }
    if have_traefik {
        want.push("traefik/host/t1.localhost/t");
    }
    let (id, twin) = hub.wait_twin(
        &token,
        "every route, targets resolved",
        Duration::from_secs(30),
        |t| {
            want.iter().all(|k| route(t, k).is_some())
                && (!have_nginx || targets(t, "nginx/host/app.localhost/", &cid))
        },
    );
    let twin_of = || hub.get(&format!("/api/v1/nodes/{id}"), &token).1;
    if have_nginx {
        let app = route(&twin, "nginx/host/app.localhost/").unwrap();
        assert_eq!(app["upstream"], "http://webapp", "{app}");
        assert_eq!(app["tls"], false);
        assert_eq!(app["instance"], "host");
        assert_eq!(app["target"]["name"], name.as_str());
        let var = route(&twin, "nginx/host/var.localhost/v/").unwrap();
        assert_eq!(
            var["upstream"],
            format!("http://127.0.0.1:{web_port}"),
            "{var}"
        );
        assert!(targets(&twin, "nginx/host/var.localhost/v/", &cid), "{var}");
        let tls = route(&twin, "nginx/host/tls.localhost/").unwrap();
        assert_eq!(tls["tls"], true, "{tls}");
        assert_eq!(tls["target"]["kind"], "external", "{tls}");
    }
    if have_caddy {
        assert!(
            targets(&twin, "caddy/host/c1.localhost/", &cid),
            "{}",
            twin["routes"]
        );
        let api = route(&twin, "caddy/host/c2.localhost/api/*").unwrap();
        assert_eq!(api["target"]["kind"], "external", "{api}");
        assert_eq!(api["tls"], false, "{api}");
    }
    if have_traefik {
        let t = route(&twin, "traefik/host/t1.localhost/t").unwrap();
        assert_eq!(t["tls"], true, "{t}");
        assert!(targets(&twin, "traefik/host/t1.localhost/t", &cid), "{t}");
        assert!(
            !twin["routes"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.contains("internal"))
        );
    }
    let status = &twin["sources"]["routes"];
    assert_eq!(status["available"], true, "{status}");

    if have_nginx {
        // A site edited: the twin follows within 2 s.
        save(
            &sites.join("app.conf"),
            &nginx_site(ngx_port, "app2.localhost"),
        );
        let edited = Instant::now();
        wait_for("the edited nginx site", Duration::from_secs(5), || {
            let t = twin_of();
            (targets(&t, "nginx/host/app2.localhost/", &cid)
                && route(&t, "nginx/host/app.localhost/").is_none())
            .then_some(())
        });
        assert!(
            edited.elapsed() < Duration::from_secs(2),
            "took {:?}",
            edited.elapsed()
        );
    }
    if have_traefik {
        // The dynamic file changed: Traefik reloads it, the next poll (1 s) sees it.
        save(&dynamic, &traefik_dynamic("t2.localhost", web_port));
        let edited = Instant::now();
        wait_for("the edited Traefik router", Duration::from_secs(10), || {
            let t = twin_of();
            (route(&t, "traefik/host/t2.localhost/t").is_some()
                && route(&t, "traefik/host/t1.localhost/t").is_none())
            .then_some(())
        });
        assert!(
            edited.elapsed() < Duration::from_secs(4),
            "took {:?}",
            edited.elapsed()
        );
    }
    if have_nginx {
        // A malformed file: a reason in the status; the rest stays, the agent runs on.
        std::fs::write(sites.join("broken.conf"), "server {\n  location / {\n").unwrap();
        let t = wait_for(
            "the malformed file's reason",
            Duration::from_secs(5),
            || {
                let t = twin_of();
                let reason = t["sources"]["routes"]["reason"].as_str()?.to_string();
                reason
                    .contains("broken.conf: unexpected end of file")
                    .then_some(t)
            },
        );
        assert!(
            route(&t, "nginx/host/app2.localhost/").is_some(),
            "{}",
            t["routes"]
        );
        assert!(route(&t, "nginx/host/var.localhost/v/").is_some());
        assert_eq!(t["sources"]["containers"]["available"], true);
        assert_eq!(t["sources"]["routes"]["available"], true);
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "the agent exited"
        );
    }

    // The container stops: the fleet's routes to it are broken in the API.
    let state_of = |host: &str| -> Option<String> {
        let (_, routes) = hub.get("/api/v1/routes", &token);
        routes
            .as_array()?
            .iter()
            .find(|r| r["host"] == host && r["node_id"].is_string())
            .and_then(|r| r["target_state"].as_str().map(String::from))
    };
    assert_eq!(state_of("c1.localhost").as_deref(), Some("running"));
    let out = Command::new("podman")
        .args(["stop", "-t", "0", &name])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_for(
        "the route broken in the API",
        Duration::from_secs(10),
        || (state_of("c1.localhost").as_deref() == Some("stopped")).then_some(()),
    );

    // The container goes: no target stays on it (whether a target runs is
    // the hub's to say from the twin's containers).
    let out = Command::new("podman")
        .args(["rm", "-f", "-t", "0", &name])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_for(
        "targets to leave the removed container",
        Duration::from_secs(10),
        || {
            let t = twin_of();
            let stale = t["routes"]
                .as_object()?
                .values()
                .any(|r| r["target"]["id"] == cid.as_str());
            (!stale).then_some(())
        },
    );
    let _ = agent.child.kill();
    drop(procs);
}
