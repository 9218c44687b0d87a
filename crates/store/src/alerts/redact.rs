//! Channel URLs as the API and the logs show them.

/// The URL as the API shows it: credentials, tokens and the secret parts
/// of known webhook paths replaced by `***`. Never fails: what does not
/// parse is hidden whole.
pub fn redact(kind: &str, url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let native = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    let mut segs: Vec<String> = path.split('/').map(String::from).collect();
    let last_nonempty = segs.iter().rposition(|s| !s.is_empty());
    match (kind, native) {
        ("gotify", false) | ("discord", true) | ("slack", _) => {
            if let Some(i) = last_nonempty {
                segs[i] = "***".into();
            }
        }
        ("telegram", true) => {
            for s in segs.iter_mut().filter(|s| s.starts_with("bot")) {
                *s = "bot***".into();
            }
        }
        _ => {}
    }
    let mut out = format!("{scheme}://{authority}{}", segs.join("/"));
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if [
                        "token", "password", "pass", "secret", "key", "auth", "apikey",
                    ]
                    .contains(&k.to_ascii_lowercase().as_str()) =>
                {
                    format!("{k}=***")
                }
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}
