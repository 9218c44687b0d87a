//! What kind of configuration a file is, from its path and why it is
//! watched (the content is not read for this).

use std::path::Path;

use twinbay_proto::model::FileKind;

use super::Origin;

/// systemd unit file suffixes.
const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "timer",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "slice",
    "scope",
];

pub fn classify(path: &Path, origin: Origin) -> FileKind {
    match origin {
        Origin::Compose => return FileKind::Compose,
        Origin::Unit => return FileKind::SystemdUnit,
        Origin::Watch => {}
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    let dirs: Vec<&str> = path
        .parent()
        .into_iter()
        .flat_map(|p| p.iter())
        .filter_map(|c| c.to_str())
        .collect();
    let in_dir = |d: &str| dirs.contains(&d);
    let parent = dirs.last().copied().unwrap_or_default();

    let compose_name = matches!(
        name.as_str(),
        "compose.yaml" | "compose.yml" | "docker-compose.yaml" | "docker-compose.yml"
    ) || ((name.starts_with("docker-compose.") || name.starts_with("compose."))
        && matches!(ext, "yaml" | "yml"));
    if compose_name {
        return FileKind::Compose;
    }
    let in_systemd = in_dir("systemd") || in_dir("containers");
    if UNIT_SUFFIXES.contains(&ext) && in_systemd
        || (ext == "conf" && parent.ends_with(".d") && in_systemd)
        || matches!(ext, "container" | "pod" | "kube" | "network" | "volume") && in_systemd
    {
        return FileKind::SystemdUnit;
    }
    if name == "nginx.conf" || in_dir("nginx") {
        return FileKind::Nginx;
    }
    if name.starts_with("caddyfile") || in_dir("caddy") {
        return FileKind::Caddy;
    }
    if name == ".env" || name.starts_with(".env.") || ext == "env" {
        return FileKind::Env;
    }
    if matches!(ext, "yaml" | "yml") {
        return FileKind::Yaml;
    }
    FileKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &str) -> FileKind {
        classify(Path::new(p), Origin::Watch)
    }

    #[test]
    fn classifies_by_path() {
        assert_eq!(kind("/srv/app/compose.yaml"), FileKind::Compose);
        assert_eq!(kind("/srv/app/docker-compose.prod.yml"), FileKind::Compose);
        assert_eq!(
            kind("/etc/systemd/system/web.service"),
            FileKind::SystemdUnit
        );
        assert_eq!(
            kind("/etc/systemd/system/web.service.d/override.conf"),
            FileKind::SystemdUnit
        );
        assert_eq!(
            kind("/etc/containers/systemd/web.container"),
            FileKind::SystemdUnit
        );
        assert_eq!(kind("/home/a/web.service"), FileKind::Other);
        assert_eq!(kind("/etc/nginx/sites-enabled/default"), FileKind::Nginx);
        assert_eq!(kind("/opt/nginx.conf"), FileKind::Nginx);
        assert_eq!(kind("/etc/caddy/Caddyfile"), FileKind::Caddy);
        assert_eq!(kind("/srv/Caddyfile"), FileKind::Caddy);
        assert_eq!(kind("/srv/app/.env"), FileKind::Env);
        assert_eq!(kind("/srv/app/prod.env"), FileKind::Env);
        assert_eq!(kind("/etc/app/config.yml"), FileKind::Yaml);
        assert_eq!(kind("/etc/hosts"), FileKind::Other);
    }

    #[test]
    fn the_origin_decides_for_discovered_files() {
        let p = Path::new("/srv/x/stack.yml");
        assert_eq!(classify(p, Origin::Compose), FileKind::Compose);
        let p = Path::new("/lib/systemd/system/ssh.service");
        assert_eq!(classify(p, Origin::Unit), FileKind::SystemdUnit);
    }
}
