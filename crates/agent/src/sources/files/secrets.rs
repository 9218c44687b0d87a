//! Secrets never leave the host: files named like secrets travel as a keyed
//! hash only, and in text that does travel the values of secret-looking keys
//! are replaced by a marker.
//!
//! The marker, `«redacted:XXXXXXXX»`, carries the first 8 hex digits of an
//! HMAC of the value with the agent's own key ([`FileKey`]), so a diff can
//! say "this value changed" without holding it, and nobody without the key
//! can test guesses against it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// File names (globs, case-insensitive, on the name only) whose content is a
/// secret as a whole: never sent, hashed with the agent's key only.
pub const SECRET_NAMES: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
    "*.key",
    "*.pem",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*secret*",
    "*password*",
    "*passwd*",
    "*credential*",
    "*token*",
    "id_*",
    ".netrc",
    ".pgpass",
    "htpasswd",
    ".htpasswd",
    "shadow",
    "gshadow",
];

/// Words that make a key name secret (upper case; the key is upper-cased
/// and `-`/`.` become `_` before looking for them anywhere in it).
pub const SECRET_KEY_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PWD",
    "TOKEN",
    "SECRET",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION_KEY",
    "SIGNING_KEY",
    "ENCRYPTION_KEY",
];

const MARKER_START: &str = "«redacted:";
const MARKER_END: &str = "»";

/// The agent's key for hashing files and secret values: derived from its
/// identity key, so stable across restarts, and never sent.
#[derive(Clone)]
pub struct FileKey([u8; 32]);

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(…)")
    }
}

impl FileKey {
    /// Domain separation from every other use of the identity key.
    pub const CONTEXT: &'static [u8] = b"twinbay-file-hmac-v1";

    /// SHA-256(context || secret key bytes).
    pub fn derive(secret_key: &[u8]) -> FileKey {
        let mut h = Sha256::new();
        h.update(Self::CONTEXT);
        h.update(secret_key);
        FileKey(h.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> FileKey {
        FileKey(bytes)
    }

    /// A streaming HMAC-SHA-256 with this key.
    pub fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// Hex HMAC-SHA-256 of `bytes`.
    pub fn hmac_hex(&self, bytes: &[u8]) -> String {
        let mut m = self.mac();
        m.update(bytes);
        hex::encode(m.finalize().into_bytes())
    }

    /// The marker that replaces `value`.
    pub fn marker(&self, value: &str) -> String {
        let h = self.hmac_hex(value.as_bytes());
        format!("{MARKER_START}{}{MARKER_END}", &h[..8])
    }
}

/// Whether a file with this name is a secret as a whole ([`SECRET_NAMES`]).
pub fn is_secret_name(name: &str) -> bool {
    let opts = glob::MatchOptions {
        case_sensitive: false,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    SECRET_NAMES.iter().any(|p| {
        glob::Pattern::new(p)
            .map(|p| p.matches_with(name, opts))
            .unwrap_or(false)
    })
}

/// Whether a key name looks secret ([`SECRET_KEY_WORDS`]).
pub fn is_secret_key(key: &str) -> bool {
    let norm: String = key
        .chars()
        .map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    SECRET_KEY_WORDS.iter().any(|w| norm.contains(w))
}

/// Replaces secret values in `text` with markers; returns the text and how
/// many values were replaced. Lines that hold no secret are unchanged, byte
/// for byte. Understood: env files (`KEY=value`, `export KEY=value`), YAML
/// (`key: value`, `- KEY=value`, block scalars under a secret key), JSON-ish
/// `"key": "value"`, INI/TOML `key = value`, systemd `Environment=`, URLs
/// with a password (`scheme://user:password@host`) anywhere, and PEM private
/// key blocks.
pub fn redact(text: &str, key: &FileKey) -> (String, u32) {
    let mut out = String::with_capacity(text.len());
    let mut count = 0u32;
    // Inside a YAML block scalar under a secret key: lines indented deeper
    // than this are secret.
    let mut block: Option<usize> = None;
    let mut pem = false;
    for line in text.split_inclusive('\n') {
        let (body, eol) = split_eol(line);
        let indent = body.len() - body.trim_start().len();
        if pem {
            if body.contains("-----END ") {
                pem = false;
                out.push_str(line);
            } else if body.trim().is_empty() {
                out.push_str(line);
            } else {
                push_redacted_line(&mut out, body, indent, eol, key, &mut count);
            }
            continue;
        }
        if let Some(level) = block {
            if body.trim().is_empty() {
                out.push_str(line);
                continue;
            }
            if indent > level {
                push_redacted_line(&mut out, body, indent, eol, key, &mut count);
                continue;
            }
            block = None;
        }
        if body.contains("-----BEGIN ") && body.contains("PRIVATE KEY-----") {
            pem = true;
            out.push_str(line);
            continue;
        }
        let (redacted, n, opens_block) = redact_line(body, key);
        if opens_block {
            block = Some(indent);
        }
        count += n;
        match redacted {
            Some(r) => {
                out.push_str(&r);
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    (out, count)
}

fn split_eol(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\n', '\r']);
    (body, &line[body.len()..])
}

fn push_redacted_line(
    out: &mut String,
    body: &str,
    indent: usize,
    eol: &str,
    key: &FileKey,
    count: &mut u32,
) {
    out.push_str(&body[..indent]);
    out.push_str(&key.marker(&body[indent..]));
    out.push_str(eol);
    *count += 1;
}

/// One line: `Some(new line)` if anything was replaced, the count, and
/// whether it opens a YAML block scalar under a secret key.
fn redact_line(body: &str, key: &FileKey) -> (Option<String>, u32, bool) {
    let trimmed = body.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') || trimmed.starts_with("//") {
        return (None, 0, false);
    }
    let mut edits: Vec<(usize, usize)> = Vec::new();
    let mut opens_block = false;
    let start = body.len() - trimmed.len();
    let mut rest = start;
    // YAML list marker, shell export.
    if let Some(r) = body[rest..].strip_prefix("- ") {
        rest = body.len() - r.trim_start().len();
    }
    if let Some(r) = body[rest..].strip_prefix("export ") {
        rest = body.len() - r.trim_start().len();
    }
    if let Some(q) = body[rest..]
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')
    {
        // A quoted list item: `- "KEY=value"`.
        let inner0 = rest + 1;
        let inner1 = body[inner0..]
            .find(q)
            .map(|e| inner0 + e)
            .unwrap_or(body.len());
        let item = &body[inner0..inner1];
        if let Some(eq) = item.find('=') {
            let value = &item[eq + 1..];
            if is_secret_key(&item[..eq]) && !value.is_empty() && !is_reference(value) {
                edits.push((inner0 + eq + 1, inner1));
            }
        }
    }
    if let Some(r) = body[rest..].strip_prefix("Environment=") {
        let at = body.len() - r.len();
        unit_environment(body, at, &mut edits);
    } else if let Some((_, v)) = assignment(body, rest)
        .filter(|((k0, k1), _)| edits.is_empty() && is_secret_key(&body[*k0..*k1]))
    {
        match value_span(body, v) {
            Some(span) => edits.push(span),
            None => opens_block = is_block_indicator(&body[v..]),
        }
    }
    url_passwords(body, &mut edits);
    if edits.is_empty() {
        return (None, 0, opens_block);
    }
    edits.sort();
    edits.dedup();
    let mut out = String::with_capacity(body.len() + 24);
    let mut at = 0;
    let mut n = 0;
    for (a, b) in edits {
        if a < at {
            continue; // overlaps one already replaced
        }
        out.push_str(&body[at..a]);
        out.push_str(&key.marker(&body[a..b]));
        at = b;
        n += 1;
    }
    out.push_str(&body[at..]);
    (Some(out), n, opens_block)
}

/// `KEY=value`, `KEY = value`, `key: value`, `"key": value` from byte
/// `from`: the key's span and where the value starts (after spaces).
fn assignment(body: &str, from: usize) -> Option<((usize, usize), usize)> {
    let s = &body[from..];
    let (k0, k1, after) = if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = s[1..].find(q)? + 1;
        (from + 1, from + end, from + end + 1)
    } else {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(s.len());
        (from, from + end, from + end)
    };
    if k1 == k0 {
        return None;
    }
    let sep = body[after..].trim_start_matches([' ', '\t']);
    let v = if let Some(r) = sep.strip_prefix('=') {
        body.len() - r.len()
    } else if let Some(r) = sep.strip_prefix(':') {
        // YAML needs a space (or nothing) after the colon: `a:b` is a scalar.
        if !(r.is_empty() || r.starts_with([' ', '\t'])) {
            return None;
        }
        body.len() - r.len()
    } else {
        return None;
    };
    let value = &body[v..];
    let v = v + (value.len() - value.trim_start_matches([' ', '\t']).len());
    Some(((k0, k1), v))
}

/// The span of a value starting at `v`: inside quotes if quoted, else up to
/// a trailing `,` (JSON) and trailing spaces. `None` when empty, a bare
/// reference (`${NAME}`, `$NAME`), a YAML anchor/alias or block indicator.
fn value_span(body: &str, v: usize) -> Option<(usize, usize)> {
    let s = &body[v..];
    let (a, b) = match s.chars().next()? {
        q @ ('"' | '\'') => {
            let end = s[1..].find(q).map(|e| e + 1).unwrap_or(s.len());
            (v + 1, v + end)
        }
        _ => {
            let t = s.trim_end();
            let t = t.strip_suffix(',').unwrap_or(t).trim_end();
            (v, v + t.len())
        }
    };
    let value = &body[a..b];
    if value.is_empty() || is_reference(value) || is_block_indicator(value) {
        return None;
    }
    if matches!(value, "null" | "~" | "[]" | "{}") {
        return None;
    }
    Some((a, b))
}

fn is_block_indicator(v: &str) -> bool {
    let v = v.trim();
    let mut chars = v.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| matches!(c, '-' | '+') || c.is_ascii_digit())
}

/// `$NAME` or `${NAME}`: a reference to a secret kept elsewhere, not one.
fn is_reference(v: &str) -> bool {
    let name = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    match v.strip_prefix('$') {
        Some(r) => match r.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(inner) => name(inner),
            None => name(r),
        },
        None => false,
    }
}

/// systemd `Environment=A=1 "B=two words" 'C=3'` from byte `at`.
fn unit_environment(body: &str, at: usize, edits: &mut Vec<(usize, usize)>) {
    let bytes = body.as_bytes();
    let mut i = at;
    while i < body.len() {
        while i < body.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= body.len() {
            break;
        }
        let (w0, w1, next) = match bytes[i] {
            q @ (b'"' | b'\'') => {
                let end = body[i + 1..]
                    .find(q as char)
                    .map(|e| i + 1 + e)
                    .unwrap_or(body.len());
                (i + 1, end, (end + 1).min(body.len()))
            }
            _ => {
                let end = body[i..]
                    .find(|c: char| c.is_ascii_whitespace())
                    .map(|e| i + e)
                    .unwrap_or(body.len());
                (i, end, end)
            }
        };
        let word = &body[w0..w1];
        if let Some(eq) = word.find('=') {
            let value = &word[eq + 1..];
            if is_secret_key(&word[..eq]) && !value.is_empty() && !is_reference(value) {
                edits.push((w0 + eq + 1, w1));
            }
        }
        i = next.max(i + 1);
    }
}

/// `scheme://user:password@` anywhere in the line: the password's span.
fn url_passwords(body: &str, edits: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(p) = body[from..].find("://") {
        let auth0 = from + p + 3;
        from = auth0;
        let rest = &body[auth0..];
        let end = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        let Some(colon) = userinfo.find(':') else {
            continue;
        };
        let pass = &userinfo[colon + 1..];
        if !pass.is_empty() && !is_reference(pass) {
            edits.push((auth0 + colon + 1, auth0 + at));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> FileKey {
        FileKey::from_bytes([7; 32])
    }

    fn marker(v: &str) -> String {
        key().marker(v)
    }

    #[test]
    fn secret_names() {
        for name in [
            ".env",
            ".env.production",
            "prod.env",
            "server.KEY",
            "tls.pem",
            "db_password.txt",
            "my-secrets.yaml",
            "id_ed25519",
            "gh-token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "nginx.conf",
            "compose.yaml",
            "environment",
            "sshd_config",
            "keys.conf",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secret_keys() {
        for k in [
            "PASSWORD",
            "db_password",
            "POSTGRES_PASSWORD",
            "apiKey",
            "api-key",
            "GITHUB_TOKEN",
            "client.secret",
            "Authorization",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "HOST",
            "port",
            "image",
            "LOG_LEVEL",
            "user",
            "keyfile_path_x",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn env_lines() {
        let text = "# comment PASSWORD=x\nHOST=db\nDB_PASSWORD=hunter2\nexport API_TOKEN=\"abc def\"\nEMPTY_SECRET=\nREF_PASSWORD=${FROM_ENV}\n";
        let (out, n) = redact(text, &key());
        assert_eq!(n, 2);
        assert_eq!(
            out,
            format!(
                "# comment PASSWORD=x\nHOST=db\nDB_PASSWORD={}\nexport API_TOKEN=\"{}\"\nEMPTY_SECRET=\nREF_PASSWORD=${{FROM_ENV}}\n",
                marker("hunter2"),
                marker("abc def")
            )
        );
    }

    #[test]
    fn compose_environment_map_and_list() {
        let text = "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: s3cret\n      POSTGRES_USER: app\n      - \"MYSQL_ROOT_PASSWORD=rootpw\"\n      - REDIS_PASSWORD=r3d1s\n";
        let (out, n) = redact(text, &key());
        assert_eq!(n, 3, "{out}");
        assert!(!out.contains("s3cret") && !out.contains("rootpw") && !out.contains("r3d1s"));
        assert!(out.contains("image: postgres:16\n"));
        assert!(out.contains("POSTGRES_USER: app\n"));
        assert!(out.contains(&format!("POSTGRES_PASSWORD: {}\n", marker("s3cret"))));
        assert!(out.contains(&format!("- \"MYSQL_ROOT_PASSWORD={}\"\n", marker("rootpw"))));
    }

    #[test]
    fn unit_environment_lines() {
        let text = "[Service]\nEnvironment=MODE=prod API_KEY=k1\nEnvironment=\"DB_PASSWORD=two words\" 'X=1'\nExecStart=/usr/bin/app\n";
        let (out, n) = redact(text, &key());
        assert_eq!(n, 2, "{out}");
        assert_eq!(
            out,
            format!(
                "[Service]\nEnvironment=MODE=prod API_KEY={}\nEnvironment=\"DB_PASSWORD={}\" 'X=1'\nExecStart=/usr/bin/app\n",
                marker("k1"),
                marker("two words")
            )
        );
    }

    #[test]
    fn yaml_block_scalars_json_urls_and_pem() {
        let text = "token: |\n  line1\n  line2\nnext: ok\n\"password\": \"pw\",\nurl: postgres://app:pgpw@db:5432/app\n-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n";
        let (out, n) = redact(text, &key());
        for s in ["line1", "line2", "pgpw", "MIIEvQ", "\"pw\""] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert_eq!(n, 5, "{out}");
        assert!(out.contains("next: ok\n"));
        assert!(out.contains("url: postgres://app:«redacted:"));
        assert!(out.contains("@db:5432/app\n"));
    }

    #[test]
    fn markers_follow_the_value_and_the_key() {
        assert_eq!(marker("a"), marker("a"));
        assert_ne!(marker("a"), marker("b"));
        assert_ne!(marker("a"), FileKey::from_bytes([8; 32]).marker("a"));
        assert_eq!(
            marker("a").chars().count(),
            "«redacted:»".chars().count() + 8
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "server {\r\n  listen 80;\r\n}\nkey: value\nno newline at end";
        assert_eq!(redact(text, &key()), (text.to_string(), 0));
    }

    fn secret_value() -> impl Strategy<Value = String> {
        "Zq[A-Za-z0-9!%*+/@:]{8,24}"
    }
    fn plain_value() -> impl Strategy<Value = String> {
        "[a-y0-9 ._/-]{0,20}"
    }
    fn secret_key_name() -> impl Strategy<Value = String> {
        (
            "[A-Z]{0,6}",
            prop::sample::select(SECRET_KEY_WORDS),
            "[A-Z_]{0,4}",
        )
            .prop_map(|(a, w, b)| format!("{a}{w}{b}"))
    }
    fn plain_key_name() -> impl Strategy<Value = String> {
        prop::sample::select(&["HOST", "PORT", "IMAGE", "LOG_LEVEL", "USER", "MODE"][..])
            .prop_map(str::to_string)
    }

    #[derive(Debug, Clone)]
    enum Line {
        Secret(String, String, u8),
        Plain(String),
    }

    fn line() -> impl Strategy<Value = Line> {
        prop_oneof![
            (secret_key_name(), secret_value(), 0u8..6).prop_map(|(k, v, s)| Line::Secret(k, v, s)),
            (plain_key_name(), plain_value(), 0u8..4).prop_map(|(k, v, s)| Line::Plain(match s {
                0 => format!("{k}={v}"),
                1 => format!("  {}: {v}", k.to_lowercase()),
                2 => format!("      - {k}={v}"),
                _ => format!("# {v}"),
            })),
        ]
    }

    fn render(l: &Line) -> String {
        match l {
            Line::Plain(s) => s.clone(),
            Line::Secret(k, v, style) => match style {
                0 => format!("{k}={v}"),
                1 => format!("export {k}=\"{v}\""),
                2 => format!("    {}: {v}", k.to_lowercase()),
                3 => format!("      - {k}={v}"),
                4 => format!("      - \"{k}={v}\""),
                _ => format!("Environment=\"{k}={v}\""),
            },
        }
    }

    proptest! {
        #[test]
        fn no_secret_value_survives_and_plain_lines_stay(lines in prop::collection::vec(line(), 0..30)) {
            let text: String = lines.iter().map(|l| render(l) + "\n").collect();
            let (out, n) = redact(&text, &key());
            let secrets = lines.iter().filter(|l| matches!(l, Line::Secret(..))).count();
            prop_assert_eq!(n as usize, secrets);
            let out_lines: Vec<&str> = out.lines().collect();
            prop_assert_eq!(out_lines.len(), lines.len());
            for (l, o) in lines.iter().zip(out_lines) {
                match l {
                    Line::Secret(_, v, _) => {
                        prop_assert!(!out.contains(v.as_str()), "{} in {}", v, out);
                        prop_assert!(o.contains(&marker(v)), "{}", o);
                    }
                    Line::Plain(s) => prop_assert_eq!(o, s.as_str()),
                }
            }
        }
    }
}
