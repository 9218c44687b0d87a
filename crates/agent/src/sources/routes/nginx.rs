//! nginx on the host: its configuration files, read by the agent itself
//! (never `nginx -T`: the agent is rootless and nginx refuses to dump a
//! configuration whose TLS keys it cannot read).
//!
//! [`tokenize`] and [`parse`] are a small reader of nginx's syntax
//! (directives `name args;`, blocks `{}`, quotes, `#` comments, `$var`);
//! [`load`] follows `include` globs from the main file (relative to its
//! directory); [`routes`] turns the `server` blocks into routes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use twinbay_proto::model::{ProxyProvider, Route};

use super::Found;

/// Deeper nesting than this is refused (a fuzzer's `a{a{a{…`).
const MAX_DEPTH: usize = 64;
/// `include` within `include` deeper than this is refused (a loop).
const MAX_INCLUDE_DEPTH: usize = 16;
/// The most files one configuration may pull in.
const MAX_FILES: usize = 512;
/// The most bytes one file may have.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A word, its quotes removed and escapes resolved.
    Word(String),
    Semicolon,
    Open,
    Close,
}

/// A token and the line it starts on.
pub type Spanned = (Token, usize);

/// Splits nginx configuration text into tokens.
pub fn tokenize(text: &str) -> Result<Vec<Spanned>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' | '{' | '}' => {
                chars.next();
                let t = match c {
                    ';' => Token::Semicolon,
                    '{' => Token::Open,
                    _ => Token::Close,
                };
                out.push((t, line));
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: unterminated quote")),
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            None => return Err(format!("line {start}: unterminated quote")),
                            Some(e) => {
                                if e == '\n' {
                                    line += 1;
                                }
                                if e != c && e != '\\' {
                                    word.push('\\');
                                }
                                word.push(e);
                            }
                        },
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                        }
                    }
                }
                out.push((Token::Word(word), start));
            }
            _ => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, ';' | '{' | '}' | '"' | '\'') {
                        // `${var}` keeps its braces inside the word.
                        if ch == '{' && word.ends_with('$') {
                            for inner in chars.by_ref() {
                                word.push(inner);
                                if inner == '}' {
                                    break;
                                }
                            }
                            continue;
                        }
                        break;
                    }
                    chars.next();
                    if ch == '\\' {
                        if let Some(e) = chars.next() {
                            word.push('\\');
                            word.push(e);
                            if e == '\n' {
                                line += 1;
                            }
                        }
                        continue;
                    }
                    word.push(ch);
                }
                out.push((Token::Word(word), line));
            }
        }
    }
    Ok(out)
}

/// One directive: `name args;` or `name args { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    pub line: usize,
}

impl Directive {
    fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// Parses one file's text into directives.
pub fn parse(text: &str) -> Result<Vec<Directive>, String> {
    let tokens = tokenize(text)?;
    let mut at = 0;
    let out = parse_block(&tokens, &mut at, 0)?;
    match tokens.get(at) {
        None => Ok(out),
        Some((_, line)) => Err(format!("line {line}: unexpected \"}}\"")),
    }
}

fn parse_block(tokens: &[Spanned], at: &mut usize, depth: usize) -> Result<Vec<Directive>, String> {
    if depth > MAX_DEPTH {
        let line = tokens.get(*at).map_or(0, |t| t.1);
        return Err(format!(
            "line {line}: blocks nested deeper than {MAX_DEPTH}"
        ));
    }
    let mut out = Vec::new();
    loop {
        let Some((token, line)) = tokens.get(*at) else {
            return match depth {
                0 => Ok(out),
                _ => Err("unexpected end of file: a \"}\" is missing".into()),
            };
        };
        let line = *line;
        let name = match token {
            Token::Close if depth > 0 => {
                *at += 1;
                return Ok(out);
            }
            Token::Close => return Err(format!("line {line}: unexpected \"}}\"")),
            Token::Semicolon => return Err(format!("line {line}: unexpected \";\"")),
            Token::Open => return Err(format!("line {line}: unexpected \"{{\"")),
            Token::Word(w) => w.clone(),
        };
        *at += 1;
        let mut args = Vec::new();
        loop {
            match tokens.get(*at) {
                Some((Token::Word(w), _)) => {
                    args.push(w.clone());
                    *at += 1;
                }
                Some((Token::Semicolon, _)) => {
                    *at += 1;
                    out.push(Directive {
                        name,
                        args,
                        block: None,
                        line,
                    });
                    break;
                }
                Some((Token::Open, _)) => {
                    *at += 1;
                    let block = parse_block(tokens, at, depth + 1)?;
                    out.push(Directive {
                        name,
                        args,
                        block: Some(block),
                        line,
                    });
                    break;
                }
                Some((Token::Close, l)) => {
                    return Err(format!("line {l}: \"{name}\" is not ended by \";\""));
                }
                None => return Err(format!("line {line}: \"{name}\" is not ended by \";\"")),
            }
        }
    }
}

/// A configuration read from disk, `include`s spliced in.
#[derive(Debug, Default)]
pub struct Loaded {
    pub directives: Vec<Directive>,
    /// Every file read (or tried), for the watcher.
    pub files: Vec<PathBuf>,
    /// Every directory an `include` glob looks in (new files there count;
    /// the files read are known by path).
    pub dirs: Vec<PathBuf>,
    /// What could not be read or parsed, one line each.
    pub problems: Vec<String>,
}

/// Reads `main` and every file its `include`s name. A file that cannot be
/// read or parsed is a problem and contributes nothing; the rest is kept.
pub fn load(main: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let base = main.parent().unwrap_or(Path::new("/")).to_path_buf();
    loaded.directives = load_file(main, &base, 0, &mut loaded);
    loaded.dirs.sort();
    loaded.dirs.dedup();
    loaded
}

fn load_file(path: &Path, base: &Path, depth: usize, loaded: &mut Loaded) -> Vec<Directive> {
    if loaded.files.len() >= MAX_FILES {
        loaded
            .problems
            .push(format!("more than {MAX_FILES} files: stopped reading"));
        return Vec::new();
    }
    loaded.files.push(path.to_path_buf());
    let text = match read_capped(path) {
        Ok(t) => t,
        Err(e) => {
            loaded.problems.push(format!("{}: {e}", path.display()));
            return Vec::new();
        }
    };
    let directives = match parse(&text) {
        Ok(d) => d,
        Err(e) => {
            loaded.problems.push(format!("{}: {e}", path.display()));
            return Vec::new();
        }
    };
    splice(directives, base, depth, loaded)
}

fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())
}

/// Replaces each `include` with the directives of the files it names.
fn splice(
    directives: Vec<Directive>,
    base: &Path,
    depth: usize,
    loaded: &mut Loaded,
) -> Vec<Directive> {
    let mut out = Vec::with_capacity(directives.len());
    for mut d in directives {
        if d.name == "include" && d.block.is_none() {
            let Some(pattern) = d.args.first() else {
                continue;
            };
            if depth >= MAX_INCLUDE_DEPTH {
                loaded
                    .problems
                    .push(format!("include {pattern}: nested too deep (a loop?)"));
                continue;
            }
            let full = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                base.join(pattern)
            };
            let full_text = full.to_string_lossy().into_owned();
            let is_glob = full_text.contains(['*', '?', '[']);
            if is_glob && let Some(dir) = glob_dir(&full) {
                loaded.dirs.push(dir);
            }
            let mut paths: Vec<PathBuf> = match glob::glob(&full_text) {
                Ok(paths) => paths.flatten().filter(|p| p.is_file()).collect(),
                Err(e) => {
                    loaded.problems.push(format!("include {pattern}: {e}"));
                    continue;
                }
            };
            paths.sort();
            if paths.is_empty() && !is_glob {
                loaded.files.push(full.clone());
                loaded
                    .problems
                    .push(format!("{}: no such file (included)", full.display()));
            }
            for p in paths {
                out.extend(load_file(&p, base, depth + 1, loaded));
            }
            continue;
        }
        if let Some(block) = d.block.take() {
            d.block = Some(splice(block, base, depth, loaded));
        }
        out.push(d);
    }
    out
}

/// The directory a glob's files live in (its last component may be a
/// pattern; earlier ones are taken literally).
fn glob_dir(full: &Path) -> Option<PathBuf> {
    let parent = full.parent()?;
    (!parent.to_string_lossy().contains(['*', '?', '['])).then(|| parent.to_path_buf())
}

/// The routes of every `server` in every `http` block.
pub fn routes(directives: &[Directive]) -> Vec<Found> {
    let mut out = Vec::new();
    for http in directives.iter().filter(|d| d.name == "http") {
        let upstreams: HashMap<&str, String> = http
            .children()
            .iter()
            .filter(|d| d.name == "upstream" && d.block.is_some())
            .filter_map(|u| {
                let name = u.args.first()?;
                let first = u.children().iter().find(|d| d.name == "server")?;
                Some((name.as_str(), first.args.first()?.clone()))
            })
            .collect();
        for server in http.children().iter().filter(|d| d.name == "server") {
            server_routes(server, &upstreams, &mut out);
        }
    }
    out
}

fn server_routes(server: &Directive, upstreams: &HashMap<&str, String>, out: &mut Vec<Found>) {
    let body = server.children();
    let mut names: Vec<String> = body
        .iter()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter())
        .map(|n| match n.as_str() {
            "_" => String::new(),
            n => n.to_string(),
        })
        .collect();
    names.dedup();
    if names.is_empty() {
        names.push(String::new());
    }
    let tls = body.iter().any(|d| {
        (d.name == "listen" && d.args.iter().skip(1).any(|a| a == "ssl" || a == "quic"))
            || d.name == "ssl_certificate"
            || (d.name == "ssl" && d.args.first().is_some_and(|a| a == "on"))
    });
    let vars = set_vars(body, &HashMap::new());
    let mut locations = Vec::new();
    collect_locations(body, &vars, &mut locations, 0);
    for (path, proxy_pass) in locations {
        let (upstream, dial) = upstream_of(&proxy_pass, upstreams);
        for name in &names {
            out.push(Found {
                route: Route {
                    provider: ProxyProvider::Nginx,
                    instance: "host".into(),
                    host: name.clone(),
                    path: path.clone(),
                    upstream: upstream.clone(),
                    tls,
                    target: Default::default(),
                },
                dial: dial.clone(),
            });
        }
    }
}

/// `set $name value;` at this level, over the outer ones.
fn set_vars(body: &[Directive], outer: &HashMap<String, String>) -> HashMap<String, String> {
    let mut vars = outer.clone();
    for d in body.iter().filter(|d| d.name == "set") {
        if let [name, value] = d.args.as_slice()
            && let Some(name) = name.strip_prefix('$')
        {
            let value = substitute(value, &vars);
            vars.insert(name.to_string(), value);
        }
    }
    vars
}

/// Each `location` with a `proxy_pass` (nested ones too): its path as
/// written and the `proxy_pass` with known variables substituted.
fn collect_locations(
    body: &[Directive],
    vars: &HashMap<String, String>,
    out: &mut Vec<(String, String)>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for loc in body
        .iter()
        .filter(|d| d.name == "location" && d.block.is_some())
    {
        let path = match loc.args.as_slice() {
            [m, uri] if m == "^~" => uri.clone(),
            [m, uri] => format!("{m} {uri}"),
            [uri] => uri.clone(),
            _ => continue,
        };
        let inner = loc.children();
        let vars = set_vars(inner, vars);
        if let Some(pass) = inner.iter().find(|d| d.name == "proxy_pass")
            && let Some(target) = pass.args.first()
        {
            out.push((path, substitute(target, &vars)));
        }
        collect_locations(inner, &vars, out, depth + 1);
    }
}

/// Replaces `$name` and `${name}` with known values; unknown ones stay.
pub fn substitute(text: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match vars.get(name) {
            Some(v) if !name.is_empty() => out.push_str(v),
            _ => out.push_str(&rest[i..i + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The upstream text as written and the `host:port` it dials, if known:
/// `http://name` naming an `upstream` block dials that block's first server.
fn upstream_of(proxy_pass: &str, upstreams: &HashMap<&str, String>) -> (String, Option<String>) {
    let (scheme, rest) = match proxy_pass.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("http", proxy_pass),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('$') || authority.starts_with("unix:") || authority.is_empty() {
        return (proxy_pass.to_string(), None);
    }
    if let Some(server) = upstreams.get(authority) {
        let dial = match server.strip_prefix("unix:") {
            Some(_) => None,
            None => Some(with_port(server, scheme)),
        };
        return (proxy_pass.to_string(), dial);
    }
    (proxy_pass.to_string(), Some(with_port(authority, scheme)))
}

fn with_port(authority: &str, scheme: &str) -> String {
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    match (has_port, scheme) {
        (true, _) => authority.to_string(),
        (false, "https") => format!("{authority}:443"),
        (false, _) => format!("{authority}:80"),
    }
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
