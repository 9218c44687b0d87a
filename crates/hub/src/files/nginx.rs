//! nginx configuration: a small tokenizer (directives, blocks, quotes,
//! comments), the servers, locations and upstreams it defines, and their
//! comparison (the rules are listed in [`super::risk`]).

use std::collections::{BTreeMap, BTreeSet};

use super::compose::list;
use super::risk::{Compared, Finding, Risk};

/// Blocks nest at most this deep (nginx configs rarely pass 5).
const MAX_DEPTH: usize = 32;

/// Directives that restrict who gets in.
const ACCESS: &[&str] = &["allow", "deny", "auth_basic", "auth_request"];

#[derive(Debug, Clone, PartialEq)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Semi,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            ';' => tokens.push(Token::Semi),
            '{' => tokens.push(Token::Open),
            '}' => tokens.push(Token::Close),
            '"' | '\'' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("line {line}: unterminated quote")),
                        Some('\\') => {
                            if let Some(e) = chars.next() {
                                word.push(e);
                            }
                        }
                        Some(q) if q == c => break,
                        Some(other) => {
                            if other == '\n' {
                                line += 1;
                            }
                            word.push(other);
                        }
                    }
                }
                tokens.push(Token::Word(word));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace()
                        || n == ';'
                        || n == '}'
                        || (n == '{' && !word.ends_with('$'))
                    {
                        break;
                    }
                    chars.next();
                    word.push(n);
                    if n == '{' {
                        // `${var}`: the braces belong to the word.
                        for c in chars.by_ref() {
                            word.push(c);
                            if c == '}' {
                                break;
                            }
                        }
                    }
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn parse(text: &str) -> Result<Vec<Directive>, String> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let directives = parse_block(&tokens, &mut pos, 0)?;
    if pos < tokens.len() {
        return Err("unexpected }".into());
    }
    Ok(directives)
}

fn parse_block(tokens: &[Token], pos: &mut usize, depth: usize) -> Result<Vec<Directive>, String> {
    if depth > MAX_DEPTH {
        return Err("blocks nested too deep".into());
    }
    let mut out = Vec::new();
    while let Some(t) = tokens.get(*pos) {
        let name = match t {
            Token::Close if depth > 0 => return Ok(out),
            Token::Close => return Err("unexpected }".into()),
            Token::Semi | Token::Open => return Err("a directive without a name".into()),
            Token::Word(w) => w.clone(),
        };
        *pos += 1;
        let mut args = Vec::new();
        loop {
            match tokens.get(*pos) {
                Some(Token::Word(w)) => {
                    args.push(w.clone());
                    *pos += 1;
                }
                Some(Token::Semi) => {
                    *pos += 1;
                    out.push(Directive {
                        name,
                        args,
                        block: None,
                    });
                    break;
                }
                Some(Token::Open) => {
                    *pos += 1;
                    let block = parse_block(tokens, pos, depth + 1)?;
                    if tokens.get(*pos) != Some(&Token::Close) {
                        return Err(format!("block {name} is not closed"));
                    }
                    *pos += 1;
                    out.push(Directive {
                        name,
                        args,
                        block: Some(block),
                    });
                    break;
                }
                Some(Token::Close) | None => {
                    return Err(format!("directive {name} is not terminated by ;"));
                }
            }
        }
    }
    if depth > 0 {
        return Err("a block is not closed".into());
    }
    Ok(out)
}

impl Directive {
    /// One canonical line: comments and layout gone.
    fn canonical(&self) -> String {
        let mut s = self.name.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        if let Some(block) = &self.block {
            s.push_str(" {");
            for d in block {
                s.push(' ');
                s.push_str(&d.canonical());
            }
            s.push_str(" }");
        }
        s
    }

    fn is(&self, name: &str, arg: &str) -> bool {
        self.name == name && self.args.first().is_some_and(|a| a == arg)
    }
}

#[derive(Debug, Default)]
struct Conf {
    servers: Vec<Server>,
    upstreams: BTreeMap<String, Vec<String>>,
    cert: bool,
    autoindex: bool,
    other: Vec<String>,
}

#[derive(Debug, Default)]
struct Server {
    names: Vec<String>,
    listens: BTreeSet<String>,
    tls: bool,
    cert: Option<String>,
    autoindex: bool,
    access: BTreeSet<String>,
    locations: BTreeMap<String, Location>,
    other: Vec<String>,
}

#[derive(Debug, Default)]
struct Location {
    proxy_pass: Option<String>,
    autoindex: bool,
    access: BTreeSet<String>,
    other: Vec<String>,
}

fn is_access(d: &Directive) -> bool {
    ACCESS.contains(&d.name.as_str()) && !d.is("auth_basic", "off") && !d.is("auth_request", "off")
}

impl Conf {
    fn from_text(text: &str) -> Result<Conf, String> {
        let mut conf = Conf::default();
        conf.walk(&parse(text)?);
        Ok(conf)
    }

    /// Top level, `http` and `stream` blocks.
    fn walk(&mut self, directives: &[Directive]) {
        for d in directives {
            match (d.name.as_str(), &d.block) {
                ("http" | "stream", Some(block)) => self.walk(block),
                ("server", Some(block)) => self.servers.push(Server::from_block(block)),
                ("upstream", Some(block)) => {
                    let name = d.args.join(" ");
                    self.upstreams
                        .insert(name, block.iter().map(Directive::canonical).collect());
                }
                ("ssl_certificate", None) => self.cert = true,
                ("autoindex", None) if d.is("autoindex", "on") => self.autoindex = true,
                _ => self.other.push(d.canonical()),
            }
        }
    }

    /// Per server name: served with TLS, with a certificate.
    fn tls_by_name(&self) -> BTreeMap<&str, (bool, bool)> {
        let mut map: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for s in &self.servers {
            for name in s.label_names() {
                let e = map.entry(name).or_default();
                e.0 |= s.tls;
                e.1 |= s.tls && (s.cert.is_some() || self.cert);
            }
        }
        map
    }
}

impl Server {
    fn from_block(block: &[Directive]) -> Server {
        let mut s = Server::default();
        for d in block {
            match d.name.as_str() {
                "server_name" => s.names.extend(d.args.iter().cloned()),
                "listen" => {
                    s.tls |= d.args.iter().any(|a| a == "ssl" || a == "quic");
                    s.listens.insert(d.args.join(" "));
                }
                "ssl" if d.is("ssl", "on") => s.tls = true,
                "ssl_certificate" => s.cert = Some(d.args.join(" ")),
                "autoindex" if d.block.is_none() => s.autoindex |= d.is("autoindex", "on"),
                "location" if d.block.is_some() => {
                    walk_location(&mut s.locations, "", d, 0);
                }
                _ if is_access(d) => {
                    s.access.insert(d.canonical());
                }
                _ => s.other.push(d.canonical()),
            }
        }
        s
    }

    /// Its server names, or `(default)` for a server without any.
    fn label_names(&self) -> Vec<&str> {
        if self.names.is_empty() {
            vec!["(default)"]
        } else {
            self.names.iter().map(String::as_str).collect()
        }
    }

    fn label(&self) -> String {
        match (self.names.first(), self.listens.first()) {
            (Some(n), _) => n.clone(),
            (None, Some(l)) => format!("(listen {l})"),
            (None, None) => "(default)".into(),
        }
    }

    /// Names worth listing as affected (not nginx's catch-all `_`).
    fn affected_names(&self) -> impl Iterator<Item = &String> {
        self.names
            .iter()
            .filter(|n| n.as_str() != "_" && !n.is_empty())
    }
}

fn walk_location(map: &mut BTreeMap<String, Location>, parent: &str, d: &Directive, depth: usize) {
    let key = if parent.is_empty() {
        d.args.join(" ")
    } else {
        format!("{parent} > {}", d.args.join(" "))
    };
    let mut loc = Location::default();
    for inner in d.block.iter().flatten() {
        match inner.name.as_str() {
            "location" if inner.block.is_some() && depth < MAX_DEPTH => {
                walk_location(map, &key, inner, depth + 1)
            }
            "proxy_pass" => loc.proxy_pass = Some(inner.args.join(" ")),
            "autoindex" if inner.block.is_none() => loc.autoindex |= inner.is("autoindex", "on"),
            _ if is_access(inner) => {
                loc.access.insert(inner.canonical());
            }
            _ => loc.other.push(inner.canonical()),
        }
    }
    map.insert(key, loc);
}

/// The host a `proxy_pass` target names (`http://app:8080/x` is `app:8080`).
fn target_host(p: &str) -> &str {
    let rest = p.split_once("://").map_or(p, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Pairs old and new servers: same names first, then the rest in order.
fn pair(old: &[Server], new: &[Server]) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut pairs = Vec::new();
    let mut used_new = vec![false; new.len()];
    let mut left_old = Vec::new();
    for (i, o) in old.iter().enumerate() {
        match (0..new.len()).find(|j| !used_new[*j] && new[*j].names == o.names) {
            Some(j) => {
                used_new[j] = true;
                pairs.push((i, j));
            }
            None => left_old.push(i),
        }
    }
    let mut left_new: Vec<usize> = (0..new.len()).filter(|j| !used_new[*j]).collect();
    let n = left_old.len().min(left_new.len());
    for (i, j) in left_old.drain(..n).zip(left_new.drain(..n)) {
        pairs.push((i, j));
    }
    (pairs, left_old, left_new)
}

pub(super) fn compare(old: &str, new: &str) -> Result<Compared, String> {
    let old = Conf::from_text(old).map_err(|e| format!("previous version: {e}"))?;
    let new = Conf::from_text(new)?;
    let mut out = Compared::default();
    let mut subjects = BTreeSet::new();
    let mut push = |rule, risk, detail: String| out.findings.push(Finding::new(rule, risk, detail));

    // TLS, by server name.
    let (tls_old, tls_new) = (old.tls_by_name(), new.tls_by_name());
    for (name, (tls, cert)) in &tls_old {
        let Some((tls_now, cert_now)) = tls_new.get(name) else {
            continue;
        };
        if *tls && !tls_now {
            push(
                "nginx.tls_removed",
                Risk::High,
                format!("server {name}: no longer served over TLS (listen … ssl gone)"),
            );
            if !matches!(*name, "_" | "(default)") {
                subjects.insert(name.to_string());
            }
        } else if *cert && !cert_now {
            push(
                "nginx.certificate_removed",
                Risk::High,
                format!("server {name}: ssl_certificate removed"),
            );
            if !matches!(*name, "_" | "(default)") {
                subjects.insert(name.to_string());
            }
        }
    }
    if new.autoindex && !old.autoindex {
        push(
            "nginx.autoindex",
            Risk::High,
            "autoindex on at the http level (directory listings everywhere)".into(),
        );
    }

    let (pairs, removed, added) = pair(&old.servers, &new.servers);
    for (i, j) in pairs {
        let (o, n) = (&old.servers[i], &new.servers[j]);
        let label = n.label();
        let before = out.findings.len();
        let mut push = |rule, risk, detail: String| {
            out.findings.push(Finding::new(
                rule,
                risk,
                format!("server {label}: {detail}"),
            ))
        };
        if o.names != n.names {
            push(
                "nginx.server_name",
                Risk::Medium,
                format!("server_name {} → {}", o.names.join(" "), n.names.join(" ")),
            );
        }
        if o.listens != n.listens {
            let show = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            push(
                "nginx.listen",
                Risk::Medium,
                format!("listen {} → {}", show(&o.listens), show(&n.listens)),
            );
        }
        if let (Some(a), Some(b)) = (&o.cert, &n.cert)
            && a != b
        {
            push(
                "nginx.certificate",
                Risk::Medium,
                format!("ssl_certificate {a} → {b}"),
            );
        }
        if n.autoindex && !o.autoindex {
            push(
                "nginx.autoindex",
                Risk::High,
                "autoindex on (directory listing)".into(),
            );
        }
        if let Some(gone) = o.access.difference(&n.access).next() {
            push(
                "nginx.access_removed",
                Risk::High,
                format!("access control removed ({gone})"),
            );
        }
        let keys: BTreeSet<&String> = o.locations.keys().chain(n.locations.keys()).collect();
        let mut other = Vec::new();
        for key in keys {
            let (lo, ln) = (o.locations.get(key), n.locations.get(key));
            let empty = Location::default();
            let (a, b) = (lo.unwrap_or(&empty), ln.unwrap_or(&empty));
            if let Some(gone) = a.access.difference(&b.access).next() {
                push(
                    "nginx.access_removed",
                    Risk::High,
                    match ln {
                        Some(_) => format!("location {key}: access control removed ({gone})"),
                        None => format!("location {key} removed with its access control ({gone})"),
                    },
                );
            }
            if b.autoindex && !a.autoindex {
                push(
                    "nginx.autoindex",
                    Risk::High,
                    format!("location {key}: autoindex on (directory listing)"),
                );
            }
            if a.proxy_pass != b.proxy_pass {
                let was = a.proxy_pass.as_deref().unwrap_or("nothing");
                match &b.proxy_pass {
                    Some(p)
                        if key == "/"
                            && a.proxy_pass
                                .as_deref()
                                .is_none_or(|q| target_host(q) != target_host(p)) =>
                    {
                        push(
                            "nginx.root_proxy",
                            Risk::High,
                            format!("location / now proxies the whole site to {p} (was {was})"),
                        )
                    }
                    p => push(
                        "nginx.proxy_pass",
                        Risk::Medium,
                        format!(
                            "location {key}: proxy_pass {was} → {}",
                            p.as_deref().unwrap_or("nothing")
                        ),
                    ),
                }
            }
            match (lo, ln) {
                (None, Some(_)) => other.push(format!("location {key} added")),
                (Some(_), None) => other.push(format!("location {key} removed")),
                _ if a.other != b.other => other.push(format!("location {key}")),
                _ => {}
            }
        }
        if o.other != n.other {
            other.push("server directives".into());
        }
        if !other.is_empty() {
            let names: Vec<&str> = other.iter().map(String::as_str).collect();
            push(
                "nginx.other",
                Risk::Low,
                format!("{} changed", list(&names)),
            );
        }
        if out.findings.len() > before {
            subjects.extend(o.affected_names().cloned());
            subjects.extend(n.affected_names().cloned());
        }
    }
    for i in removed {
        let s = &old.servers[i];
        out.findings.push(Finding::new(
            "nginx.server_removed",
            Risk::Medium,
            format!("server {} removed", s.label()),
        ));
        subjects.extend(s.affected_names().cloned());
    }
    for j in added {
        let s = &new.servers[j];
        let label = s.label();
        out.findings.push(Finding::new(
            "nginx.server_added",
            Risk::Low,
            format!("server {label} added"),
        ));
        if s.autoindex || s.locations.values().any(|l| l.autoindex) {
            out.findings.push(Finding::new(
                "nginx.autoindex",
                Risk::High,
                format!("server {label}: autoindex on (directory listing)"),
            ));
        }
        subjects.extend(s.affected_names().cloned());
    }

    let names: BTreeSet<&String> = old.upstreams.keys().chain(new.upstreams.keys()).collect();
    for name in names {
        let (risk, what) = match (old.upstreams.get(name), new.upstreams.get(name)) {
            (None, Some(_)) => (Risk::Low, "added"),
            (Some(_), None) => (Risk::Medium, "removed"),
            (a, b) if a != b => (Risk::Medium, "changed"),
            _ => continue,
        };
        let rule = if risk == Risk::Low {
            "nginx.upstream_added"
        } else {
            "nginx.upstream"
        };
        out.findings
            .push(Finding::new(rule, risk, format!("upstream {name} {what}")));
    }
    if old.other != new.other || old.cert != new.cert {
        out.findings.push(Finding::new(
            "nginx.other",
            Risk::Low,
            "http-level directives changed",
        ));
    }
    out.subjects = subjects.into_iter().collect();
    Ok(out)
}

/// The server names a version defines (for a deleted file).
pub(super) fn subjects(text: &str) -> Compared {
    let conf = Conf::from_text(text).unwrap_or_default();
    let names: BTreeSet<String> = conf
        .servers
        .iter()
        .flat_map(|s| s.affected_names().cloned())
        .collect();
    Compared {
        subjects: names.into_iter().collect(),
        ..Compared::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_handles_quotes_comments_and_variables() {
        let d = parse("server { # c\n  return 301 \"https://$host${request_uri}\"; }").unwrap();
        assert_eq!(d[0].name, "server");
        let inner = d[0].block.as_ref().unwrap();
        assert_eq!(inner[0].args, ["301", "https://$host${request_uri}"]);
        let d = parse("set $a ${b}c;").unwrap();
        assert_eq!(d[0].args, ["$a", "${b}c"]);
    }

    #[test]
    fn malformed_configs_are_errors() {
        for bad in [
            "server {",
            "}",
            "listen 80",
            "server { listen 80 }",
            "{ }",
            "'open",
            ";",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = "a {".repeat(100) + &"}".repeat(100);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn proxy_targets_name_their_host() {
        assert_eq!(target_host("http://app:8080/x"), "app:8080");
        assert_eq!(target_host("http://backend"), "backend");
    }
}
