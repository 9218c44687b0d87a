//! `twinbay ctl routes [--broken] [--host NAME]`: the fleet's reverse-proxy
//! routes and the state of what each leads to, through a running hub's API.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::args::RoutesArgs;

pub async fn run(data_dir: &Path, args: RoutesArgs) -> Result<String> {
    let client = crate::commands::remote_client(data_dir, &args.remote).await?;
    let mut query = Vec::new();
    if args.broken {
        query.push("broken=true".to_string());
    }
    if let Some(h) = &args.host {
        query.push(format!("host={}", crate::files::encode(h)));
    }
    let path = match query.is_empty() {
        true => "/api/v1/routes".to_string(),
        false => format!("/api/v1/routes?{}", query.join("&")),
    };
    Ok(table(&client.get(&path).await?))
}

/// `HOST PATH → UPSTREAM`, target, state, node (proxy), one route a line.
fn table(routes: &Value) -> String {
    let rows: Vec<[String; 4]> = routes
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let host = match r["host"].as_str().unwrap_or("") {
                "" => "*",
                h => h,
            };
            let scheme = if r["tls"].as_bool().unwrap_or(false) {
                "https://"
            } else {
                "http://"
            };
            let path = r["path"].as_str().unwrap_or("");
            let route = format!(
                "{scheme}{host}{path} → {}",
                r["upstream"].as_str().unwrap_or("-")
            );
            let node = format!(
                "{} ({} {})",
                r["node_name"].as_str().unwrap_or("-"),
                r["provider"].as_str().unwrap_or("-"),
                r["instance"].as_str().unwrap_or("-"),
            );
            [route, target(&r["target"]), state(r), node]
        })
        .collect();
    let width = |i: usize, head: &str| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head.len()])
            .max()
            .unwrap_or(0)
    };
    let heads = ["ROUTE", "TARGET", "STATE"];
    let w: Vec<usize> = heads.iter().enumerate().map(|(i, h)| width(i, h)).collect();
    let line = |cells: [&str; 4]| {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count().min(n)));
        format!(
            "{} {} {} {}",
            pad(cells[0], w[0]),
            pad(cells[1], w[1]),
            pad(cells[2], w[2]),
            cells[3]
        )
        .trim_end()
        .to_string()
    };
    let mut out = line(["ROUTE", "TARGET", "STATE", "NODE"]);
    for r in &rows {
        out.push('\n');
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

fn target(t: &Value) -> String {
    match t["kind"].as_str().unwrap_or("unknown") {
        "container" => format!("container {}", t["name"].as_str().unwrap_or("?")),
        "port" => format!("port {}", t["key"].as_str().unwrap_or("?")),
        other => other.to_string(),
    }
}

fn state(r: &Value) -> String {
    let s = r["target_state"].as_str().unwrap_or("unknown");
    match r["broken"].as_bool().unwrap_or(false) {
        true => format!("{s} (broken)"),
        false => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_line_per_route_in_aligned_columns() {
        let routes = json!([
            {"node_id": "n_1", "node_name": "edge", "provider": "caddy", "instance": "host",
             "host": "photos.example.org", "path": "/", "upstream": "immich:2283", "tls": true,
             "target": {"kind": "container", "id": "c1", "name": "immich"},
             "target_state": "stopped", "broken": true},
            {"node_id": "n_1", "node_name": "edge", "provider": "nginx", "instance": "proxy",
             "host": "", "path": "/ha", "upstream": "http://10.0.0.5:8123", "tls": false,
             "target": {"kind": "external"}, "target_state": "external", "broken": false},
        ]);
        let text = table(&routes);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ROUTE"));
        assert!(lines[1].contains("https://photos.example.org/ → immich:2283"));
        assert!(lines[1].contains("container immich"));
        assert!(lines[1].contains("stopped (broken)"));
        assert!(lines[1].ends_with("edge (caddy host)"));
        assert!(lines[2].contains("http://*/ha → http://10.0.0.5:8123"));
        let col = |l: &str, word: &str| l.rfind(word).map(|b| l[..b].chars().count());
        assert_eq!(col(lines[0], "STATE"), col(lines[1], "stopped"));
        assert_eq!(col(lines[0], "STATE"), col(lines[2], "external"));
        assert_eq!(table(&json!([])), "ROUTE TARGET STATE NODE");
    }
}
