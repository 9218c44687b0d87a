//! The rules, one by one (fires and does not fire), and property tests over
//! generated compose and unit files.

use std::collections::BTreeMap;

use proptest::prelude::*;
use twinbay_proto::model::{Container, FileKind, NodeState, Unit};

use super::*;

const COMPOSE: &str = "/srv/shop/compose.yaml";
const UNIT: &str = "/etc/systemd/system/web.service";
const NOW: i64 = 1_780_000_000_000;

fn run(kind: FileKind, old: &str, new: &str) -> Assessment {
    run_twin(kind, old, new, &NodeState::default())
}

fn run_twin(kind: FileKind, old: &str, new: &str, twin: &NodeState) -> Assessment {
    let path = match kind {
        FileKind::Compose => COMPOSE,
        FileKind::SystemdUnit => UNIT,
        _ => "/etc/app/conf",
    };
    assess(
        kind,
        path,
        Some(&FileVersion::text(old)),
        Some(&FileVersion::text(new)),
        twin,
        NOW,
    )
}

fn rules(a: &Assessment) -> Vec<&'static str> {
    a.findings.iter().map(|f| f.rule).collect()
}

fn fired(a: &Assessment, rule: &str, risk: Risk) -> bool {
    a.findings.iter().any(|f| f.rule == rule && f.risk == risk)
}

/// Low, and nothing but "format only" (or nothing at all).
fn format_only(a: &Assessment) -> bool {
    a.risk == Risk::Low && a.findings.iter().all(|f| f.rule == "content.format_only")
}

fn container(name: &str, project: &str, service: &str, created: &str) -> Container {
    Container {
        id: format!("id-{name}"),
        name: name.into(),
        compose_project: Some(project.into()),
        compose_service: Some(service.into()),
        created: Some(created.into()),
        ..Container::default()
    }
}

fn twin_with(containers: Vec<Container>) -> NodeState {
    let mut twin = NodeState::default();
    for c in containers {
        twin.containers.insert(c.id.clone(), c.into());
    }
    twin
}

// ---- compose ----------------------------------------------------------

const WEB: &str = "services:\n  web:\n    image: nginx:1.25\n    ports: [\"127.0.0.1:8080:80\"]\n    environment:\n      DB_PASSWORD: «redacted:1a2b3c4d»\n      LOG: info\n    restart: unless-stopped\n";

fn web_with(extra: &str) -> String {
    format!("{WEB}{extra}")
}

#[test]
fn compose_reformatting_is_low() {
    let reformatted = "# the shop\nservices:\n  web:\n      restart: 'unless-stopped'   # always on\n      environment:\n        - LOG=info\n        - DB_PASSWORD=«redacted:1a2b3c4d»\n      ports:\n        - host_ip: 127.0.0.1\n          published: 8080\n          target: 80\n      image: \"nginx:1.25\"\n";
    let a = run(FileKind::Compose, WEB, reformatted);
    assert!(format_only(&a), "{a:#?}");
    assert_eq!(rules(&a), ["content.format_only"]);
    assert!(a.affected.is_empty());
    let same = run(FileKind::Compose, WEB, WEB);
    assert_eq!((same.risk, same.findings.len()), (Risk::Low, 0));
    assert_eq!(same.summary, "no change");
}

#[test]
fn compose_anchors_and_merge_keys_are_expanded_before_comparing() {
    let plain = "services:\n  a:\n    image: app\n    restart: always\n  b:\n    image: app\n    restart: always\n";
    let anchored = "x-base: &base\n  image: app\n  restart: always\nservices:\n  a: *base\n  b:\n    <<: *base\n";
    assert!(format_only(&run(FileKind::Compose, plain, anchored)));
    let evil = anchored.replace("restart: always\n", "restart: always\n  privileged: true\n");
    let a = run(FileKind::Compose, anchored, &evil);
    assert_eq!(a.risk, Risk::High);
    assert_eq!(
        a.affected.len(),
        2,
        "both services use the anchor: {:#?}",
        a.affected
    );
}

#[test]
fn compose_public_ports_are_high_and_loopback_is_not() {
    for public in ["8080:80", "0.0.0.0:8080:80", "[::]:8080:80", "9000"] {
        let new = WEB.replace("127.0.0.1:8080:80", public);
        let a = run(FileKind::Compose, WEB, &new);
        assert!(
            fired(&a, "compose.port_public", Risk::High),
            "{public}: {a:#?}"
        );
        assert_eq!(a.risk, Risk::High);
    }
    let new = WEB.replace("127.0.0.1:8080:80", "127.0.0.1:9090:80");
    let a = run(FileKind::Compose, WEB, &new);
    assert_eq!(a.risk, Risk::Low, "{a:#?}");
    assert!(fired(&a, "compose.port_loopback", Risk::Low));
    let new = WEB.replace("127.0.0.1:8080:80", "192.168.1.5:8080:80");
    assert!(fired(
        &run(FileKind::Compose, WEB, &new),
        "compose.port_address",
        Risk::Medium
    ));
}

#[test]
fn compose_privileged_names_the_service_its_container_and_the_drift() {
    let twin = twin_with(vec![
        container("shop-web-1", "shop", "web", "2026-01-01T00:00:00.5Z"),
        container("other-web-1", "other", "web", "2026-01-01T00:00:00Z"),
    ]);
    let a = run_twin(
        FileKind::Compose,
        WEB,
        &web_with("    privileged: true\n"),
        &twin,
    );
    assert_eq!(a.risk, Risk::High);
    assert!(fired(&a, "compose.privileged", Risk::High));
    assert_eq!(a.summary, "service web: privileged: true added");
    assert_eq!(
        a.affected,
        [
            Affected::ComposeService { name: "web".into() },
            Affected::Container {
                id: "id-shop-web-1".into(),
                name: "shop-web-1".into(),
                service: "web".into()
            }
        ]
    );
    assert_eq!(a.drift.len(), 1);
    assert_eq!(a.drift[0].what, "container shop-web-1");
    assert!(a.drift[0].reason.contains("recreate"));
    // Privileged already: nothing to say.
    let p = web_with("    privileged: true\n");
    assert!(format_only(&run(FileKind::Compose, &p, &p)));
    // Removing it is low.
    assert!(fired(
        &run(FileKind::Compose, &p, WEB),
        "compose.privileged",
        Risk::Low
    ));
}

#[test]
fn compose_containers_match_by_project_name_or_config_files() {
    let mut other = container("x-web-1", "x", "web", "2099-01-01T00:00:00Z");
    other.labels.insert(
        "com.docker.compose.project.config_files".into(),
        format!("/a.yaml,{COMPOSE}").into(),
    );
    let named = container("named-web-1", "named", "web", "2099-01-01T00:00:00Z");
    let twin = twin_with(vec![other, named]);
    let new = WEB.replace("nginx:1.25", "nginx:1.27");
    let a = run_twin(FileKind::Compose, WEB, &new, &twin);
    let names: Vec<&str> = a
        .affected
        .iter()
        .filter_map(|x| match x {
            Affected::Container { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["x-web-1"]);
    assert!(a.drift.is_empty(), "created after the change: no drift");
    let a = run_twin(
        FileKind::Compose,
        &format!("name: named\n{WEB}"),
        &format!("name: named\n{new}"),
        &twin,
    );
    assert_eq!(a.affected.len(), 3, "{:#?}", a.affected);
}

#[test]
fn compose_host_mounts_and_namespaces_are_high() {
    for mount in [
        "/:/host",
        "/etc:/etc:ro",
        "/root/.ssh:/keys",
        "/var/run/docker.sock:/var/run/docker.sock",
        "/run/podman/podman.sock:/sock",
        "/srv/../etc:/x",
    ] {
        let a = run(
            FileKind::Compose,
            WEB,
            &web_with(&format!("    volumes: [\"{mount}\"]\n")),
        );
        assert!(
            fired(&a, "compose.host_mount", Risk::High),
            "{mount}: {a:#?}"
        );
    }
    let long = "    volumes:\n      - type: bind\n        source: /var/run/docker.sock\n        target: /s\n";
    assert!(fired(
        &run(FileKind::Compose, WEB, &web_with(long)),
        "compose.host_mount",
        Risk::High
    ));
    for harmless in [
        "./data:/data",
        "/srv/shop:/data",
        "data:/data",
        "/etc/nginx/conf.d:/c:ro",
    ] {
        let a = run(
            FileKind::Compose,
            WEB,
            &web_with(&format!("    volumes: [\"{harmless}\"]\n")),
        );
        assert_eq!(a.risk, Risk::Low, "{harmless}: {a:#?}");
    }
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    network_mode: host\n"),
    );
    assert!(fired(&a, "compose.host_namespace", Risk::High));
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    network_mode: bridge\n"),
    );
    assert_eq!(a.risk, Risk::Medium);
}

#[test]
fn compose_capabilities_and_security_options() {
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    cap_add: [CAP_SYS_ADMIN]\n"),
    );
    assert!(fired(&a, "compose.cap_add", Risk::High));
    let a = run(FileKind::Compose, WEB, &web_with("    cap_add: [ALL]\n"));
    assert!(fired(&a, "compose.cap_add", Risk::High));
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    cap_add: [NET_BIND_SERVICE]\n"),
    );
    assert_eq!(a.risk, Risk::Medium);
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    security_opt: [\"seccomp:unconfined\"]\n"),
    );
    assert!(fired(&a, "compose.security_opt", Risk::High));
    let nnp = web_with("    security_opt: [\"no-new-privileges:true\"]\n");
    assert!(fired(
        &run(FileKind::Compose, &nnp, WEB),
        "compose.security_opt",
        Risk::High
    ));
    let user = web_with("    user: \"1000\"\n");
    assert!(fired(
        &run(FileKind::Compose, &user, WEB),
        "compose.user",
        Risk::High
    ));
    assert!(fired(
        &run(FileKind::Compose, WEB, &user),
        "compose.user",
        Risk::Medium
    ));
}

#[test]
fn compose_privileged_with_the_host_root_is_critical() {
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    privileged: true\n    volumes: [\"/:/host\"]\n"),
    );
    assert_eq!(a.risk, Risk::Critical, "{a:#?}");
    assert_eq!(a.findings[0].rule, "compose.privileged_host_access");
    // Privileged alone, or the mount alone: high.
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    volumes: [\"/:/host\"]\n"),
    );
    assert_eq!(a.risk, Risk::High);
}

#[test]
fn compose_medium_changes_name_what_changed_without_values() {
    let new = WEB
        .replace("nginx:1.25", "nginx:1.27")
        .replace("«redacted:1a2b3c4d»", "«redacted:99999999»");
    let a = run(FileKind::Compose, WEB, &new);
    assert_eq!(a.risk, Risk::Medium);
    assert_eq!(
        a.summary,
        "service web: image nginx:1.25 → nginx:1.27; DB_PASSWORD changed"
    );
    assert!(
        !format!("{a:?}").contains("redacted"),
        "no marker in the verdict"
    );
    let a = run(
        FileKind::Compose,
        WEB,
        &WEB.replace("unless-stopped", "always"),
    );
    assert!(fired(&a, "compose.restart", Risk::Medium));
    assert!(a.summary.contains("restart unless-stopped → always"));
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    command: [\"nginx\", \"-g\", \"daemon off;\"]\n"),
    );
    assert!(fired(&a, "compose.command", Risk::Medium));
    let a = run(
        FileKind::Compose,
        WEB,
        &web_with("    healthcheck: {test: [\"CMD\", \"true\"]}\n"),
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Low, vec!["compose.other"]));
}

#[test]
fn compose_services_added_and_removed() {
    let two = format!("{WEB}  db:\n    image: postgres:16\n");
    let a = run(FileKind::Compose, WEB, &two);
    assert_eq!(
        (a.risk, rules(&a)),
        (Risk::Low, vec!["compose.service_added"])
    );
    let a = run(FileKind::Compose, &two, WEB);
    assert!(fired(&a, "compose.service_removed", Risk::Medium));
    let evil = format!("{WEB}  db:\n    image: postgres:16\n    privileged: true\n");
    assert_eq!(run(FileKind::Compose, WEB, &evil).risk, Risk::High);
}

#[test]
fn compose_that_does_not_parse_is_medium() {
    for bad in [
        "services: [\n",
        "services:\n  web: 3\n",
        "- a\n- b\n",
        "a: b\na: c\n",
    ] {
        let a = run(FileKind::Compose, WEB, bad);
        assert!(fired(&a, "parse.failed", Risk::Medium), "{bad}: {a:#?}");
        assert!(a.findings.iter().any(|f| f.rule == "content.lines"));
    }
}

// ---- files in general -------------------------------------------------

#[test]
fn created_deleted_world_writable_and_unseen() {
    let twin = NodeState::default();
    let v = |text, mode| FileVersion {
        text: Some(text),
        mode: Some(mode),
        sha256: None,
    };
    let a = assess(
        FileKind::Compose,
        COMPOSE,
        None,
        Some(&v(WEB, 0o644)),
        &twin,
        NOW,
    );
    assert_eq!(a.risk, Risk::Low, "{a:#?}");
    assert!(fired(&a, "file.created", Risk::Low));
    let evil = web_with("    privileged: true\n");
    let a = assess(
        FileKind::Compose,
        COMPOSE,
        None,
        Some(&v(&evil, 0o644)),
        &twin,
        NOW,
    );
    assert_eq!(
        a.risk,
        Risk::High,
        "rules run against an empty previous version"
    );
    let a = assess(
        FileKind::Compose,
        COMPOSE,
        Some(&v(WEB, 0o644)),
        None,
        &twin,
        NOW,
    );
    assert!(fired(&a, "file.deleted", Risk::Medium));
    assert_eq!(
        a.affected,
        [Affected::ComposeService { name: "web".into() }]
    );
    let a = assess(
        FileKind::Other,
        "/x",
        Some(&v("a", 0o644)),
        Some(&v("a", 0o666)),
        &twin,
        NOW,
    );
    assert_eq!(
        (a.risk, rules(&a)),
        (Risk::High, vec!["file.world_writable"])
    );
    let a = assess(
        FileKind::Other,
        "/x",
        Some(&v("a", 0o644)),
        Some(&v("a", 0o600)),
        &twin,
        NOW,
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Low, vec!["file.mode"]));
    let hashed = |h| FileVersion {
        text: None,
        mode: None,
        sha256: Some(h),
    };
    let a = assess(
        FileKind::Env,
        "/x/.env",
        Some(&hashed("aa")),
        Some(&hashed("bb")),
        &twin,
        NOW,
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Medium, vec!["content.unseen"]));
    let a = assess(
        FileKind::Env,
        "/x/.env",
        Some(&hashed("aa")),
        Some(&hashed("aa")),
        &twin,
        NOW,
    );
    assert!(a.findings.is_empty());
    let a = assess(FileKind::Other, "/x", None, None, &twin, NOW);
    assert_eq!(a.risk, Risk::Low);
}

#[test]
fn risk_orders_and_serialises_snake_case() {
    assert!(Risk::Low < Risk::Medium && Risk::Medium < Risk::High && Risk::High < Risk::Critical);
    assert_eq!(
        serde_json::to_string(&Risk::Critical).unwrap(),
        "\"critical\""
    );
    let a = Affected::ServerName { name: "a".into() };
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::json!({"kind": "server_name", "name": "a"})
    );
}

#[test]
fn rfc3339_times() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(rfc3339_ms("1970-01-01T01:00:00.25+01:00"), Some(250));
    assert_eq!(
        rfc3339_ms("2026-01-01T00:00:00.123456789Z"),
        Some(1_767_225_600_123)
    );
    for bad in [
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00Zx",
    ] {
        assert_eq!(rfc3339_ms(bad), None, "{bad}");
    }
}

// ---- systemd units ----------------------------------------------------

const SERVICE: &str = "[Unit]\nDescription=Web\n\n[Service]\nUser=web\nExecStart=/usr/bin/web --port 80\nRestart=on-failure\nEnvironment=\"LOG=info\" TOKEN=«redacted:1a2b3c4d»\nNoNewPrivileges=yes\nProtectSystem=strict\nPrivateTmp=true\n\n[Install]\nWantedBy=multi-user.target\n";

#[test]
fn unit_reformatting_is_low() {
    let reformatted = "# web\n[Unit]\nDescription = Web\n[Service]\n; who\nUser=web\nExecStart=/usr/bin/web \\\n    --port   80\nRestart=on-failure\nEnvironment=LOG=info \"TOKEN=«redacted:1a2b3c4d»\"\nNoNewPrivileges=yes\nProtectSystem=strict\nPrivateTmp=true\n[Install]\nWantedBy=multi-user.target\n";
    let a = run(FileKind::SystemdUnit, SERVICE, reformatted);
    assert!(format_only(&a), "{a:#?}");
}

#[test]
fn unit_privilege_rules_are_high() {
    let cases = [
        (SERVICE.replace("User=web", "User=root"), "unit.user_root"),
        (SERVICE.replace("User=web\n", ""), "unit.user_root"),
        (
            SERVICE.replace("NoNewPrivileges=yes\n", ""),
            "unit.hardening",
        ),
        (
            SERVICE.replace("NoNewPrivileges=yes", "NoNewPrivileges=false"),
            "unit.hardening",
        ),
        (
            SERVICE.replace("ProtectSystem=strict", "ProtectSystem=full"),
            "unit.hardening",
        ),
        (SERVICE.replace("PrivateTmp=true\n", ""), "unit.hardening"),
        (
            SERVICE.replace(
                "ExecStart=/usr/bin/web",
                "ExecStart=/usr/bin/sudo /usr/bin/web",
            ),
            "unit.exec_privileged",
        ),
        (
            SERVICE.replace("ExecStart=/usr/bin/web", "ExecStart=+/usr/bin/web"),
            "unit.exec_privileged",
        ),
    ];
    for (new, rule) in cases {
        let a = run(FileKind::SystemdUnit, SERVICE, &new);
        assert!(fired(&a, rule, Risk::High), "{rule}: {a:#?}");
    }
    // Hardening added, or a root unit made explicit from a non-root one? No.
    let a = run(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("PrivateTmp=true", "PrivateTmp=true\nProtectHome=yes"),
    );
    assert_eq!(a.risk, Risk::Low);
}

#[test]
fn unit_behaviour_changes_are_medium() {
    let a = run(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("--port 80", "--port 81"),
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Medium, vec!["unit.exec"]));
    let a = run(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("on-failure", "always"),
    );
    assert!(a.summary.contains("Restart on-failure → always"));
    let a = run(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("1a2b3c4d", "ffffffff"),
    );
    assert_eq!(a.summary, "Environment TOKEN changed");
    let a = run(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("Description=Web", "Description=Shop"),
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Low, vec!["unit.other"]));
}

#[test]
fn unit_affected_and_daemon_reload_drift() {
    let mut twin = NodeState::default();
    twin.units.insert(
        "web.service".into(),
        Unit {
            name: "web.service".into(),
            fragment_path: Some(UNIT.into()),
            need_daemon_reload: true,
            ..Unit::default()
        }
        .into(),
    );
    twin.units.insert(
        "db.service".into(),
        Unit {
            name: "db.service".into(),
            drop_in_paths: vec!["/etc/systemd/system/db.service.d/x.conf".into()],
            active_state: "active".into(),
            since: Some(1),
            ..Unit::default()
        }
        .into(),
    );
    let a = run_twin(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("80", "81"),
        &twin,
    );
    assert_eq!(
        a.affected,
        [Affected::Unit {
            name: "web.service".into()
        }]
    );
    assert_eq!(a.drift[0].what, "unit web.service");
    assert!(a.drift[0].reason.contains("daemon-reload"));
    let drop_in = "/etc/systemd/system/db.service.d/x.conf";
    let a = assess(
        FileKind::SystemdUnit,
        drop_in,
        Some(&FileVersion::text("[Service]\nRestart=no\n")),
        Some(&FileVersion::text("[Service]\nRestart=always\n")),
        &twin,
        NOW,
    );
    assert_eq!(
        a.affected,
        [Affected::Unit {
            name: "db.service".into()
        }]
    );
    assert!(a.drift[0].reason.contains("restart it"), "{:?}", a.drift);
    // Not in the twin: the unit the path names.
    let a = run_twin(
        FileKind::SystemdUnit,
        SERVICE,
        &SERVICE.replace("80", "81"),
        &NodeState::default(),
    );
    assert_eq!(
        a.affected,
        [Affected::Unit {
            name: "web.service".into()
        }]
    );
}

// ---- nginx ------------------------------------------------------------

const SITE: &str = "upstream app { server 127.0.0.1:3000; }\nserver {\n  listen 443 ssl;\n  server_name shop.example.com www.example.com;\n  ssl_certificate /etc/ssl/shop.pem;\n  location / { proxy_pass http://app; }\n  location /api { proxy_pass http://127.0.0.1:4000; }\n  location /admin { allow 10.0.0.0/8; deny all; }\n}\n";

#[test]
fn nginx_reformatting_is_low() {
    let reformatted = "# shop\nupstream app {\n    server 127.0.0.1:3000;   # the app\n}\n\nserver {\n    listen 443 ssl;\n    server_name shop.example.com www.example.com;\n    ssl_certificate \"/etc/ssl/shop.pem\";\n    location / {\n        proxy_pass http://app;\n    }\n    location /api {\n        proxy_pass http://127.0.0.1:4000;\n    }\n    location /admin {\n        allow 10.0.0.0/8;\n        deny all;\n    }\n}\n";
    assert!(format_only(&run(FileKind::Nginx, SITE, reformatted)));
}

#[test]
fn nginx_high_rules() {
    let cases = [
        (
            SITE.replace("listen 443 ssl;", "listen 80;"),
            "nginx.tls_removed",
        ),
        (
            SITE.replace("ssl_certificate /etc/ssl/shop.pem;", ""),
            "nginx.certificate_removed",
        ),
        (
            SITE.replace("location /api {", "location /api { autoindex on;"),
            "nginx.autoindex",
        ),
        (SITE.replace("deny all;", ""), "nginx.access_removed"),
        (
            SITE.replace("location /admin { allow 10.0.0.0/8; deny all; }", ""),
            "nginx.access_removed",
        ),
        (
            SITE.replace("proxy_pass http://app;", "proxy_pass http://10.9.9.9:80;"),
            "nginx.root_proxy",
        ),
    ];
    for (new, rule) in cases {
        let a = run(FileKind::Nginx, SITE, &new);
        assert!(fired(&a, rule, Risk::High), "{rule}: {a:#?}");
        assert!(a.affected.contains(&Affected::ServerName {
            name: "shop.example.com".into()
        }));
    }
}

#[test]
fn nginx_deleted_names_its_servers() {
    let a = assess(
        FileKind::Nginx,
        "/etc/nginx/conf.d/shop.conf",
        Some(&FileVersion::text(SITE)),
        None,
        &NodeState::default(),
        NOW,
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Medium, vec!["file.deleted"]));
    assert_eq!(
        a.affected,
        [
            Affected::ServerName {
                name: "shop.example.com".into()
            },
            Affected::ServerName {
                name: "www.example.com".into()
            }
        ]
    );
}

#[test]
fn nginx_medium_rules() {
    let a = run(FileKind::Nginx, SITE, &SITE.replace("4000", "4001"));
    assert_eq!(
        (a.risk, rules(&a)),
        (Risk::Medium, vec!["nginx.proxy_pass"])
    );
    let a = run(FileKind::Nginx, SITE, &SITE.replace("3000", "3001"));
    assert_eq!((a.risk, rules(&a)), (Risk::Medium, vec!["nginx.upstream"]));
    let a = run(FileKind::Nginx, SITE, &SITE.replace(" www.example.com", ""));
    assert!(fired(&a, "nginx.server_name", Risk::Medium));
    assert!(a.affected.contains(&Affected::ServerName {
        name: "www.example.com".into()
    }));
    let a = run(
        FileKind::Nginx,
        SITE,
        &SITE.replace("location /api {", "location /api { add_header X-A b;"),
    );
    assert_eq!((a.risk, rules(&a)), (Risk::Low, vec!["nginx.other"]));
    let a = run(FileKind::Nginx, SITE, "server { listen 443 ssl;");
    assert!(fired(&a, "parse.failed", Risk::Medium));
}

// ---- env, yaml, other -------------------------------------------------

#[test]
fn env_yaml_and_other_files() {
    let a = run(
        FileKind::Env,
        "A=1\nDB_PASSWORD=«redacted:aa»\n",
        "A=1\nDB_PASSWORD=«redacted:bb»\n",
    );
    assert_eq!(
        (a.risk, a.summary.as_str()),
        (Risk::Medium, "DB_PASSWORD changed")
    );
    let a = run(FileKind::Env, "A=1\nB=2\n", "# note\nA=\"1\"\nB=3\nC=4\n");
    assert_eq!(
        (a.risk, a.summary.as_str()),
        (Risk::Low, "added: C; changed: B")
    );
    let a = run(
        FileKind::Yaml,
        "db:\n  password: x\nlog: info\n",
        "db:\n  password: y\nlog: info\n",
    );
    assert!(fired(&a, "yaml.secret", Risk::Medium), "{a:#?}");
    assert!(!a.summary.contains('x') || !a.summary.contains(" y"));
    let a = run(
        FileKind::Yaml,
        "log: info\nport: 1\n",
        "{port: 1, log: debug}",
    );
    assert_eq!((a.risk, a.summary.as_str()), (Risk::Low, "log changed"));
    assert!(format_only(&run(
        FileKind::Yaml,
        "a: 1\nb: 2\n",
        "b: 2 # two\na: 1\n"
    )));
    let a = run(FileKind::Other, "a\nb\n", "a  \n\nb\n");
    assert!(format_only(&a));
    let a = run(
        FileKind::Caddy,
        "shop.example.com {\n\treverse_proxy app:80\n}\n",
        "shop.example.com {\n  reverse_proxy app:81\n}\n",
    );
    assert_eq!(a.summary, "1 lines added, 1 removed");
}

// ---- properties -------------------------------------------------------

#[derive(Debug, Clone)]
struct GenService {
    name: String,
    image: String,
    ports: Vec<String>,
    env: BTreeMap<String, String>,
    privileged: bool,
    restart: Option<String>,
}

fn service_strategy(name: &'static str) -> impl Strategy<Value = GenService> {
    (
        prop::sample::select(vec![
            "nginx:1.25",
            "nginx:1.27",
            "postgres:16",
            "redis@sha256:abcd",
            "app",
        ]),
        prop::collection::vec(
            prop::sample::select(vec![
                "8080:80",
                "127.0.0.1:5432:5432",
                "0.0.0.0:443:443",
                "9000",
                "10.0.0.2:53:53/udp",
            ]),
            0..3,
        ),
        prop::collection::btree_map("[A-Z][A-Z_]{0,8}", "[a-z0-9:/.«»]{0,12}", 0..4),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["always", "no", "unless-stopped"])),
    )
        .prop_map(move |(image, ports, env, privileged, restart)| GenService {
            name: name.into(),
            image: image.into(),
            ports: ports.into_iter().map(str::to_string).collect(),
            env,
            privileged,
            restart: restart.map(str::to_string),
        })
}

fn compose_strategy() -> impl Strategy<Value = Vec<GenService>> {
    (
        service_strategy("web"),
        prop::option::of(service_strategy("db")),
        prop::option::of(service_strategy("cache")),
    )
        .prop_map(|(a, b, c)| std::iter::once(a).chain(b).chain(c).collect())
}

/// YAML text of the services: block style (keys in order, or reversed, with
/// comments and another indent) or JSON (which is YAML too).
fn render(services: &[GenService], style: u8) -> String {
    if style == 2 {
        let mut map = serde_json::Map::new();
        for s in services {
            let mut def = serde_json::Map::new();
            def.insert("image".into(), s.image.clone().into());
            if !s.ports.is_empty() {
                def.insert("ports".into(), s.ports.clone().into());
            }
            if !s.env.is_empty() {
                let list: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                def.insert("environment".into(), list.into());
            }
            if s.privileged {
                def.insert("privileged".into(), true.into());
            }
            if let Some(r) = &s.restart {
                def.insert("restart".into(), r.clone().into());
            }
            map.insert(s.name.clone(), def.into());
        }
        return serde_json::json!({ "services": map }).to_string();
    }
    let reversed = style == 1;
    let ind = if reversed { "    " } else { "  " };
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::new();
    if reversed {
        out.push_str("# generated\n");
    }
    out.push_str("services:\n");
    let mut order: Vec<&GenService> = services.iter().collect();
    if reversed {
        order.reverse();
    }
    for s in order {
        let mut keys: Vec<String> = vec![format!("{ind}{ind}image: {}\n", q(&s.image))];
        if !s.ports.is_empty() {
            let mut k = format!("{ind}{ind}ports:\n");
            for p in &s.ports {
                k.push_str(&format!("{ind}{ind}{ind}- {}\n", q(p)));
            }
            keys.push(k);
        }
        if !s.env.is_empty() {
            let mut k = format!("{ind}{ind}environment:\n");
            for (name, v) in &s.env {
                k.push_str(&format!("{ind}{ind}{ind}{name}: {}\n", q(v)));
            }
            keys.push(k);
        }
        if s.privileged {
            keys.push(format!("{ind}{ind}privileged: true\n"));
        }
        if let Some(r) = &s.restart {
            keys.push(format!(
                "{ind}{ind}restart: {r}{}\n",
                if reversed { "  # policy" } else { "" }
            ));
        }
        if reversed {
            keys.reverse();
        }
        out.push_str(&format!("{ind}{}:\n", s.name));
        for k in keys {
            out.push_str(&k);
        }
    }
    out
}

#[derive(Debug, Clone)]
struct GenUnit {
    keys: Vec<(&'static str, &'static str)>,
}

fn unit_strategy() -> impl Strategy<Value = GenUnit> {
    prop::collection::vec(
        prop::sample::select(vec![
            ("User", "web"),
            ("User", "root"),
            ("ExecStart", "/usr/bin/web --port 80"),
            ("ExecStartPre", "/bin/true"),
            ("Restart", "always"),
            ("Environment", "A=1 \"B=two words\""),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "true"),
            ("WorkingDirectory", "/srv"),
        ]),
        0..8,
    )
    .prop_map(|keys| GenUnit { keys })
}

fn render_unit(u: &GenUnit, noisy: bool) -> String {
    let mut out = String::from(if noisy {
        "# unit\n[Unit]\nDescription = x\n\n[Service]\n"
    } else {
        "[Unit]\nDescription=x\n[Service]\n"
    });
    for (k, v) in &u.keys {
        if noisy {
            out.push_str(&format!("; {k}\n{k} =  {}\n", v.replacen(' ', "   ", 1)));
        } else {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// Servers: (names, TLS, locations with their proxy targets).
type GenNginx = Vec<(Vec<&'static str>, bool, Vec<(&'static str, &'static str)>)>;

fn nginx_strategy() -> impl Strategy<Value = GenNginx> {
    prop::collection::vec(
        (
            prop::collection::vec(
                prop::sample::select(vec!["a.example", "b.example", "_"]),
                0..3,
            ),
            any::<bool>(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["/", "/api", "~ \\.php$", "= /x"]),
                    prop::sample::select(vec![
                        "http://app",
                        "http://127.0.0.1:9000/",
                        "http://$up",
                    ]),
                ),
                0..3,
            ),
        ),
        0..3,
    )
}

fn render_nginx(servers: &GenNginx, pretty: bool) -> String {
    let (nl, ind) = if pretty { ("\n", "    ") } else { (" ", "") };
    let mut out = String::new();
    for (names, tls, locations) in servers {
        if pretty {
            out.push_str("# a server\n");
        }
        out.push_str(&format!("server {{{nl}"));
        out.push_str(&format!(
            "{ind}listen 443{};{nl}",
            if *tls { " ssl" } else { "" }
        ));
        if !names.is_empty() {
            out.push_str(&format!("{ind}server_name {};{nl}", names.join(" ")));
        }
        for (path, target) in locations {
            let target = if pretty {
                format!("\"{target}\"")
            } else {
                target.to_string()
            };
            out.push_str(&format!(
                "{ind}location {path} {{ proxy_pass {target}; }}{nl}"
            ));
        }
        out.push_str(&format!("}}{nl}"));
    }
    out
}

fn any_kind() -> impl Strategy<Value = FileKind> {
    prop::sample::select(vec![
        FileKind::Compose,
        FileKind::SystemdUnit,
        FileKind::Nginx,
        FileKind::Caddy,
        FileKind::Env,
        FileKind::Yaml,
        FileKind::Other,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn compose_against_itself_is_low_without_findings(services in compose_strategy(), style in 0u8..3) {
        let text = render(&services, style);
        let a = run(FileKind::Compose, &text, &text);
        prop_assert_eq!(a.risk, Risk::Low);
        prop_assert!(a.findings.is_empty(), "{:#?}", a.findings);
    }

    #[test]
    fn compose_reserialised_is_low(services in compose_strategy(), from in 0u8..3, to in 0u8..3) {
        let a = run(FileKind::Compose, &render(&services, from), &render(&services, to));
        prop_assert!(format_only(&a), "{:#?}", a);
        prop_assert!(a.affected.is_empty());
    }

    #[test]
    fn compose_privileged_added_is_high(mut services in compose_strategy(), pick in any::<prop::sample::Index>(), style in 0u8..3) {
        let i = pick.index(services.len());
        services[i].privileged = false;
        let old = render(&services, style);
        services[i].privileged = true;
        let new = render(&services, 0);
        let name = services[i].name.clone();
        let twin = twin_with(vec![container(&format!("shop-{name}-1"), "shop", &name, "2020-01-01T00:00:00Z")]);
        let a = run_twin(FileKind::Compose, &old, &new, &twin);
        prop_assert!(a.risk >= Risk::High);
        let expected = format!("service {name}: privileged: true added");
        prop_assert!(a.findings.iter().any(|f| f.rule == "compose.privileged" && f.detail == expected), "{:#?}", a.findings);
        let expected = Affected::Container {
            id: format!("id-shop-{name}-1"),
            name: format!("shop-{name}-1"),
            service: name.clone(),
        };
        prop_assert!(a.affected.contains(&expected));
        prop_assert_eq!(a.drift.len(), 1);
    }

    #[test]
    fn unit_against_itself_and_reformatted_is_low(u in unit_strategy()) {
        let (plain, noisy) = (render_unit(&u, false), render_unit(&u, true));
        let a = run(FileKind::SystemdUnit, &plain, &plain);
        prop_assert!(a.findings.is_empty());
        let a = run(FileKind::SystemdUnit, &plain, &noisy);
        prop_assert!(format_only(&a), "{:#?}", a);
    }

    #[test]
    fn nginx_against_itself_and_reformatted_is_low(servers in nginx_strategy()) {
        let (compact, pretty) = (render_nginx(&servers, false), render_nginx(&servers, true));
        let a = run(FileKind::Nginx, &compact, &compact);
        prop_assert!(a.findings.is_empty());
        let a = run(FileKind::Nginx, &compact, &pretty);
        prop_assert!(format_only(&a), "{:#?}\n{}\n{}", a, compact, pretty);
    }

    #[test]
    fn arbitrary_text_never_panics(kind in any_kind(), old in "\\PC{0,200}", new in "(\\PC|[{};:\\[\\]=#\\n -])*") {
        let a = run(kind, &old, &new);
        prop_assert_eq!(a.risk, a.findings.iter().map(|f| f.risk).max().unwrap_or_default());
        let _ = super::super::diff::unified("/x", Some(&old), Some(&new), "a", "b");
    }

    #[test]
    fn mutated_configs_never_panic(kind in any_kind(), services in compose_strategy(), cut in 0usize..400, insert in "[{}\\[\\]:;\"'\\\\\\n#= -]{0,4}") {
        let sources = [render(&services, 0), SITE.to_string(), SERVICE.to_string(), WEB.to_string()];
        for text in sources {
            let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            let mutated = format!("{}{insert}{}", &text[..at], &text[at..]);
            let _ = run(kind, &text, &mutated);
            let _ = run(kind, &mutated, &text);
        }
    }
}

#[test]
fn summary_groups_details_by_service() {
    let new = web_with("    privileged: true\n").replace("nginx:1.25", "nginx:1.27");
    let a = run(FileKind::Compose, WEB, &new);
    assert_eq!(
        a.summary,
        "service web: privileged: true added; image nginx:1.25 → nginx:1.27"
    );
}
