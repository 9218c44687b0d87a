//! Where a channel delivers, parsed from its kind and URL. Pure: a URL
//! in, a [`Target`] or a clear error out; also the URL as the API shows it
//! (tokens, passwords and credentials replaced by `***`).
//!
//! Two forms are accepted for each kind. shoutrrr's URLs (what Beszel
//! takes): `ntfy://[user:pass@]host/topic`, `gotify://host/TOKEN`,
//! `discord://TOKEN@ID`, `slack://hook:A-B-C@webhook` (or
//! `slack://A/B/C`), `telegram://TOKEN@telegram?chats=ID,…`,
//! `smtp://[user:pass@]host[:port]/?from=…&to=…[&encryption=…]`; and the
//! service's own http(s) URL, for self-hosted servers and proxies:
//! `https://ntfy.example/topic`, `https://gotify.example/message?token=…`,
//! `https://discord.com/api/webhooks/ID/TOKEN`,
//! `https://hooks.slack.com/services/A/B/C`,
//! `https://api.telegram.org/botTOKEN/sendMessage?chat_id=…`.

use http::Uri;

/// How an email channel secures its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Plain, then `STARTTLS` (required).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption at all (a relay on loopback or the LAN).
    None,
}

/// Credentials for an HTTP channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer(String),
    Basic(String, String),
}

/// A parsed channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Alertmanager's JSON, signed with the channel's secret.
    Webhook { url: Uri },
    /// `POST {base}/{topic}` with `Title`, `Priority`, `Tags`.
    Ntfy {
        url: Uri,
        auth: Option<Auth>,
        priority: Option<u8>,
    },
    /// `POST {base}/message?token=…` with JSON.
    Gotify { url: Uri, priority: Option<u8> },
    /// A Discord webhook: JSON with `content`.
    Discord { url: Uri },
    /// A Slack incoming webhook: JSON with `text`.
    Slack { url: Uri },
    /// The Bot API's `sendMessage`, once per chat.
    Telegram { url: Uri, chats: Vec<String> },
    /// SMTP: multipart text and HTML.
    Email {
        host: String,
        port: u16,
        encryption: Encryption,
        credentials: Option<(String, String)>,
        from: String,
        to: Vec<String>,
    },
}

/// The channel kinds (as the API names them).
pub const KINDS: &[&str] = &[
    "webhook", "ntfy", "gotify", "discord", "slack", "telegram", "email",
];

/// The kind a URL's scheme names, if it is a shoutrrr URL.
pub fn kind_of_scheme(url: &str) -> Option<&'static str> {
    let scheme = url.split_once("://")?.0.to_ascii_lowercase();
    Some(match scheme.as_str() {
        "ntfy" => "ntfy",
        "gotify" => "gotify",
        "discord" => "discord",
        "slack" => "slack",
        "telegram" => "telegram",
        "smtp" | "smtps" => "email",
        "http" | "https" => "webhook",
        _ => return None,
    })
}

fn uri(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.parse().map_err(|e| format!("not a URL ({e})"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(uri)
}

/// An http(s) URL with a host.
fn http_url(text: &str) -> Result<Uri, String> {
    let u = uri(text)?;
    match u.scheme_str() {
        Some("http" | "https") => Ok(u),
        _ => Err("give an http:// or https:// URL".into()),
    }
}

/// `user:pass` before the `@` of the authority, if any (percent-decoded).
fn userinfo(u: &Uri) -> Option<(String, Option<String>)> {
    let authority = u.authority()?.as_str();
    let (info, _) = authority.rsplit_once('@')?;
    let (user, pass) = match info.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (info, None),
    };
    Some((decode(user), pass.map(decode)))
}

/// Host and port, without credentials; IPv6 keeps its brackets.
fn host_port(u: &Uri, default: u16) -> (String, u16) {
    (
        u.host().unwrap_or_default().to_string(),
        u.port_u16().unwrap_or(default),
    )
}

fn authority_of(u: &Uri) -> String {
    let (host, _) = host_port(u, 0);
    match u.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Percent-decoding (lossy on bad UTF-8; a bad escape stays as it is).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hexval(*c)),
                b.get(i + 2).and_then(|c| hexval(*c)),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query's pairs, decoded, keys lowercased.
fn query(u: &Uri) -> Vec<(String, String)> {
    u.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k).to_ascii_lowercase(), decode(v))
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

fn yes(v: Option<&str>) -> bool {
    matches!(
        v.map(str::to_ascii_lowercase).as_deref(),
        Some("yes" | "true" | "1")
    )
}

fn priority(q: &[(String, String)], max: u8) -> Result<Option<u8>, String> {
    match param(q, &["priority"]) {
        None => Ok(None),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!("priority {p:?}: a number from 1 to {max}")),
        },
    }
}

fn path_segments(u: &Uri) -> Vec<&str> {
    u.path().split('/').filter(|s| !s.is_empty()).collect()
}

/// A plain token: no characters that would need escaping in a path.
fn token_ok(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b))
}

/// Parses a channel: its kind (one of [`KINDS`]), URL and optional
/// secret (the webhook's signing key, or ntfy's access token).
pub fn parse(kind: &str, url: &str, secret: Option<&str>) -> Result<Target, String> {
    let fail = |why: String| format!("url: {why}");
    if url.len() > 2000 {
        return Err(fail("at most 2000 characters".into()));
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(fail("no spaces or control characters".into()));
    }
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .ok_or_else(|| {
            fail(format!(
                "no scheme: give an http(s):// URL or a {kind}:// URL"
            ))
        })?;
    let native = matches!(scheme.as_str(), "http" | "https");
    let t = match (kind, native) {
        ("webhook", true) => Target::Webhook {
            url: http_url(url).map_err(fail)?,
        },
        ("webhook", false) => {
            return Err(fail("a webhook needs an http:// or https:// URL".into()));
        }
        ("ntfy", _) => ntfy(url, native, secret).map_err(fail)?,
        ("gotify", _) => gotify(url, native).map_err(fail)?,
        ("discord", _) => discord(url, native).map_err(fail)?,
        ("slack", _) => slack(url, native).map_err(fail)?,
        ("telegram", _) => telegram(url, native).map_err(fail)?,
        ("email", _) => email(url).map_err(fail)?,
        _ => return Err(format!("kind {kind:?}: one of {}", KINDS.join(", "))),
    };
    let expected = match kind {
        "email" => "smtp",
        k => k,
    };
    if !native && !scheme.starts_with(expected) {
        return Err(fail(format!(
            "a {kind} channel takes a {expected}:// or http(s):// URL, not {scheme}://"
        )));
    }
    Ok(t)
}

/// `scheme://host[:port]` + path (no credentials, no query).
fn base(scheme: &str, u: &Uri, path: &str) -> Result<Uri, String> {
    format!("{scheme}://{}{path}", authority_of(u))
        .parse()
        .map_err(|e| format!("not a URL ({e})"))
}

fn ntfy(url: &str, native: bool, secret: Option<&str>) -> Result<Target, String> {
    let u = uri(url)?;
    let q = query(&u);
    let scheme = match native {
        true => u.scheme_str().unwrap_or("https").to_string(),
        false => param(&q, &["scheme"])
            .unwrap_or("https")
            .to_ascii_lowercase(),
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme={scheme}: http or https"));
    }
    if !path_segments(&u).last().is_some_and(|t| token_ok(t)) {
        return Err("ntfy needs a topic (ntfy://host/TOPIC)".into());
    }
    let auth = match (secret, userinfo(&u)) {
        (Some(t), _) => Some(Auth::Bearer(t.into())),
        (None, Some((user, Some(pass)))) if user.is_empty() => Some(Auth::Bearer(pass)),
        (None, Some((user, Some(pass)))) => Some(Auth::Basic(user, pass)),
        (None, Some((token, None))) if !token.is_empty() => Some(Auth::Bearer(token)),
        _ => None,
    };
    Ok(Target::Ntfy {
        url: base(&scheme, &u, u.path())?,
        auth,
        priority: priority(&q, 5)?,
    })
}

fn gotify(url: &str, native: bool) -> Result<Target, String> {
    let u = uri(url)?;
    let q = query(&u);
    let segs = path_segments(&u);
    let (scheme, prefix, token) = if native {
        // https://host[/prefix]/message?token=…
        let token = param(&q, &["token"]).ok_or("gotify needs ?token=APP_TOKEN")?;
        let prefix = match segs.split_last() {
            Some((&"message", rest)) => rest.to_vec(),
            _ => segs.clone(),
        };
        (
            u.scheme_str().unwrap_or("https").to_string(),
            prefix,
            token.to_string(),
        )
    } else {
        let (token, prefix) = segs
            .split_last()
            .ok_or("gotify needs the app token (gotify://host/TOKEN)")?;
        let scheme = if yes(param(&q, &["disabletls"])) {
            "http"
        } else {
            "https"
        };
        (scheme.to_string(), prefix.to_vec(), token.to_string())
    };
    if !token_ok(&token) {
        return Err("the gotify token has characters it cannot have".into());
    }
    let mut path = String::new();
    for s in prefix {
        path.push('/');
        path.push_str(s);
    }
    path.push_str(&format!("/message?token={}", encode(&token)));
    Ok(Target::Gotify {
        url: base(&scheme, &u, &path)?,
        priority: priority(&q, 10)?,
    })
}

fn discord(url: &str, native: bool) -> Result<Target, String> {
    let u = uri(url)?;
    let url = if native {
        let segs = path_segments(&u);
        match segs.as_slice() {
            [.., "webhooks", id, token] if token_ok(id) && token_ok(token) => {
                base(u.scheme_str().unwrap_or("https"), &u, u.path())?
            }
            _ => return Err("a Discord webhook URL ends in /webhooks/ID/TOKEN".into()),
        }
    } else {
        // discord://TOKEN@WEBHOOK_ID
        let token = userinfo(&u).map(|(t, _)| t).unwrap_or_default();
        let id = u.host().unwrap_or_default();
        if !token_ok(&token) || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err("discord://TOKEN@WEBHOOK_ID (the webhook id is a number)".into());
        }
        format!("https://discord.com/api/webhooks/{id}/{token}")
            .parse()
            .map_err(|e| format!("not a URL ({e})"))?
    };
    Ok(Target::Discord { url })
}

fn slack(url: &str, native: bool) -> Result<Target, String> {
    let u = uri(url)?;
    if native {
        return Ok(Target::Slack {
            url: base(u.scheme_str().unwrap_or("https"), &u, u.path())?,
        });
    }
    // slack://hook:A-B-C@webhook or slack://A/B/C
    let parts: Vec<String> = match userinfo(&u) {
        Some((user, Some(token))) if user == "hook" => token.split('-').map(String::from).collect(),
        Some(_) => {
            return Err("only Slack webhooks are supported: slack://hook:A-B-C@webhook".into());
        }
        None => std::iter::once(u.host().unwrap_or_default())
            .chain(path_segments(&u))
            .map(String::from)
            .collect(),
    };
    if parts.len() != 3 || !parts.iter().all(|p| token_ok(p)) {
        return Err("a Slack webhook has three parts: slack://hook:A-B-C@webhook".into());
    }
    let url = format!(
        "https://hooks.slack.com/services/{}/{}/{}",
        parts[0], parts[1], parts[2]
    );
    Ok(Target::Slack {
        url: url.parse().map_err(|e| format!("not a URL ({e})"))?,
    })
}

fn telegram(url: &str, native: bool) -> Result<Target, String> {
    let u = uri(url)?;
    let q = query(&u);
    let (url, chats) = if native {
        // https://api.telegram.org/botTOKEN/sendMessage?chat_id=…
        let segs = path_segments(&u);
        let token = match segs.as_slice() {
            [.., bot, "sendMessage"] if bot.starts_with("bot") => &bot[3..],
            _ => return Err("a Telegram Bot API URL ends in /botTOKEN/sendMessage".into()),
        };
        if !token_ok(token) {
            return Err("the bot token has characters it cannot have".into());
        }
        let chats = param(&q, &["chat_id", "chats"]).unwrap_or_default();
        (
            base(u.scheme_str().unwrap_or("https"), &u, u.path())?,
            chats.to_string(),
        )
    } else {
        // telegram://TOKEN@telegram?chats=…
        let token = match userinfo(&u) {
            Some((id, Some(key))) => format!("{id}:{key}"),
            _ => return Err("telegram://BOT_ID:KEY@telegram?chats=CHAT_ID".into()),
        };
        if !token_ok(&token) {
            return Err("the bot token has characters it cannot have".into());
        }
        let chats = param(&q, &["chats", "chat_id"]).unwrap_or_default();
        let url = format!("https://api.telegram.org/bot{token}/sendMessage");
        (
            url.parse().map_err(|e| format!("not a URL ({e})"))?,
            chats.to_string(),
        )
    };
    let chats: Vec<String> = chats
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    if chats.is_empty() {
        return Err("telegram needs at least one chat (chats=ID or chat_id=ID)".into());
    }
    if chats.len() > 20 {
        return Err("telegram: at most 20 chats".into());
    }
    Ok(Target::Telegram { url, chats })
}

fn address_ok(a: &str) -> bool {
    a.parse::<lettre::Address>().is_ok()
}

fn email(url: &str) -> Result<Target, String> {
    let u = uri(url)?;
    let q = query(&u);
    let smtps = u.scheme_str() == Some("smtps");
    let encryption = match param(&q, &["encryption"])
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("starttls" | "explicittls") => Encryption::StartTls,
        Some("tls" | "implicittls" | "ssl") => Encryption::Tls,
        Some("none" | "plain") => Encryption::None,
        Some("auto") | None => match (smtps, param(&q, &["usestarttls"])) {
            (true, _) => Encryption::Tls,
            (false, Some(v)) if !yes(Some(v)) => Encryption::None,
            _ if u.port_u16() == Some(465) => Encryption::Tls,
            _ => Encryption::StartTls,
        },
        Some(other) => {
            return Err(format!("encryption={other}: starttls, tls or none"));
        }
    };
    let (host, port) = host_port(
        &u,
        match encryption {
            Encryption::Tls => 465,
            Encryption::StartTls => 587,
            Encryption::None => 25,
        },
    );
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let credentials = match userinfo(&u) {
        Some((user, Some(pass))) if !user.is_empty() => Some((user, pass)),
        Some((user, None)) if !user.is_empty() => {
            return Err("smtp: give the password too (smtp://USER:PASSWORD@host)".into());
        }
        _ => None,
    };
    let from = param(&q, &["from", "fromaddress"])
        .ok_or("smtp needs from=ADDRESS")?
        .to_string();
    if !address_ok(&from) {
        return Err(format!("from={from:?}: not an email address"));
    }
    let to: Vec<String> = param(&q, &["to", "toaddresses"])
        .ok_or("smtp needs to=ADDRESS[,ADDRESS…]")?
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if to.is_empty() || to.len() > 50 {
        return Err("smtp: to= takes 1 to 50 addresses".into());
    }
    if let Some(bad) = to.iter().find(|a| !address_ok(a)) {
        return Err(format!("to: {bad:?} is not an email address"));
    }
    Ok(Target::Email {
        host,
        port,
        encryption,
        credentials,
        from,
        to,
    })
}

pub use twinbay_store::alerts::redact;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(kind: &str, url: &str) -> Target {
        parse(kind, url, None).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err(kind: &str, url: &str) -> String {
        parse(kind, url, None).expect_err(url)
    }

    #[test]
    fn ntfy_urls() {
        let Target::Ntfy {
            url,
            auth,
            priority,
        } = ok("ntfy", "ntfy://:tk_abc@ntfy.sh/alerts?priority=4")
        else {
            panic!()
        };
        assert_eq!(url.to_string(), "https://ntfy.sh/alerts");
        assert_eq!(auth, Some(Auth::Bearer("tk_abc".into())));
        assert_eq!(priority, Some(4));
        let Target::Ntfy { url, auth, .. } =
            ok("ntfy", "ntfy://me:p%40ss@127.0.0.1:8080/t?scheme=http")
        else {
            panic!()
        };
        assert_eq!(url.to_string(), "http://127.0.0.1:8080/t");
        assert_eq!(auth, Some(Auth::Basic("me".into(), "p@ss".into())));
        let Target::Ntfy { auth, .. } =
            parse("ntfy", "https://ntfy.example/t", Some("tk_1")).unwrap()
        else {
            panic!()
        };
        assert_eq!(auth, Some(Auth::Bearer("tk_1".into())));
        assert!(err("ntfy", "ntfy://ntfy.sh").contains("topic"));
        assert!(err("ntfy", "ntfy://ntfy.sh/t?priority=9").contains("priority"));
    }

    #[test]
    fn gotify_urls() {
        let Target::Gotify { url, .. } = ok("gotify", "gotify://push.example/sub/AbC123") else {
            panic!()
        };
        assert_eq!(
            url.to_string(),
            "https://push.example/sub/message?token=AbC123"
        );
        let Target::Gotify { url, .. } = ok("gotify", "gotify://10.0.0.2:81/AbC?disabletls=yes")
        else {
            panic!()
        };
        assert_eq!(url.to_string(), "http://10.0.0.2:81/message?token=AbC");
        let Target::Gotify { url, .. } = ok("gotify", "http://127.0.0.1:9/message?token=T") else {
            panic!()
        };
        assert_eq!(url.to_string(), "http://127.0.0.1:9/message?token=T");
        assert!(err("gotify", "https://g.example/message").contains("token"));
    }

    #[test]
    fn discord_slack_telegram_urls() {
        let Target::Discord { url } = ok("discord", "discord://tok_en@123456") else {
            panic!()
        };
        assert_eq!(
            url.to_string(),
            "https://discord.com/api/webhooks/123456/tok_en"
        );
        assert!(err("discord", "discord://tok@abc").contains("number"));
        let Target::Slack { url } = ok("slack", "slack://hook:T000-B000-XXXX@webhook") else {
            panic!()
        };
        assert_eq!(
            url.to_string(),
            "https://hooks.slack.com/services/T000/B000/XXXX"
        );
        let Target::Slack { url } = ok("slack", "slack://T1/B2/X3") else {
            panic!()
        };
        assert_eq!(url.to_string(), "https://hooks.slack.com/services/T1/B2/X3");
        assert!(err("slack", "slack://xoxb:tok@chan").contains("webhook"));
        let Target::Telegram { url, chats } =
            ok("telegram", "telegram://123:ABC-def@telegram?chats=@ops,42")
        else {
            panic!()
        };
        assert_eq!(
            url.to_string(),
            "https://api.telegram.org/bot123:ABC-def/sendMessage"
        );
        assert_eq!(chats, vec!["@ops", "42"]);
        assert!(err("telegram", "telegram://123:A@telegram").contains("chat"));
        assert!(err("telegram", "https://api.telegram.org/sendMessage?chat_id=1").contains("bot"));
    }

    #[test]
    fn email_urls() {
        let Target::Email {
            host,
            port,
            encryption,
            credentials,
            from,
            to,
        } = ok(
            "email",
            "smtp://me:s%20cret@mail.example/?from=hub@example.org&to=a@example.org,b@example.org",
        )
        else {
            panic!()
        };
        assert_eq!(
            (host.as_str(), port, encryption),
            ("mail.example", 587, Encryption::StartTls)
        );
        assert_eq!(credentials, Some(("me".into(), "s cret".into())));
        assert_eq!(from, "hub@example.org");
        assert_eq!(to.len(), 2);
        let Target::Email {
            port, encryption, ..
        } = ok("email", "smtps://m.example?from=a@b.c&to=d@e.f")
        else {
            panic!()
        };
        assert_eq!((port, encryption), (465, Encryption::Tls));
        let Target::Email {
            port, encryption, ..
        } = ok(
            "email",
            "smtp://127.0.0.1:2525/?from=a@b.c&to=d@e.f&encryption=none",
        )
        else {
            panic!()
        };
        assert_eq!((port, encryption), (2525, Encryption::None));
        assert!(err("email", "smtp://m.example/?to=d@e.f").contains("from"));
        assert!(err("email", "smtp://m.example/?from=x&to=d@e.f").contains("not an email"));
        assert!(
            err(
                "email",
                "smtp://m.example/?from=a@b.c&to=d@e.f&encryption=rot13"
            )
            .contains("encryption")
        );
    }

    #[test]
    fn kinds_and_schemes_must_agree() {
        assert!(err("ntfy", "gotify://h/t").contains("ntfy://"));
        assert!(err("webhook", "ntfy://h/t").contains("http"));
        assert!(
            parse("pager", "https://x/", None)
                .unwrap_err()
                .contains("kind")
        );
        assert!(err("webhook", "nonsense").contains("scheme"));
        assert_eq!(kind_of_scheme("SMTPS://x"), Some("email"));
    }

    #[test]
    fn redaction_hides_every_secret() {
        for (kind, url, secret) in [
            ("ntfy", "ntfy://:tk_SECRET@ntfy.sh/t", "SECRET"),
            ("gotify", "gotify://g.example/SECRET", "SECRET"),
            ("gotify", "https://g.example/message?token=SECRET", "SECRET"),
            ("discord", "discord://SECRET@123", "SECRET"),
            (
                "discord",
                "https://discord.com/api/webhooks/1/SECRET",
                "SECRET",
            ),
            ("slack", "slack://hook:A-B-SECRET@webhook", "SECRET"),
            (
                "slack",
                "https://hooks.slack.com/services/A/B/SECRET",
                "SECRET",
            ),
            ("telegram", "telegram://1:SECRET@telegram?chats=1", "SECRET"),
            (
                "telegram",
                "https://api.telegram.org/bot1:SECRET/sendMessage?chat_id=1",
                "SECRET",
            ),
            (
                "email",
                "smtp://me:SECRET@m.example/?from=a@b.c&to=d@e.f",
                "SECRET",
            ),
            (
                "webhook",
                "https://u:SECRET@h.example/hook?token=SECRET",
                "SECRET",
            ),
        ] {
            let shown = redact(kind, url);
            assert!(!shown.contains(secret), "{url} → {shown}");
            assert!(shown.contains("***"), "{url} → {shown}");
        }
        assert_eq!(
            redact("webhook", "http://127.0.0.1:9/hook"),
            "http://127.0.0.1:9/hook"
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(kind in prop::sample::select(KINDS), url in ".{0,200}") {
            let _ = parse(kind, &url, None);
            let _ = redact(kind, &url);
        }

        #[test]
        fn schemed_garbage_never_panics(
            kind in prop::sample::select(KINDS),
            scheme in prop::sample::select(&["ntfy", "gotify", "discord", "slack", "telegram", "smtp", "smtps", "http", "https"][..]),
            rest in "[a-zA-Z0-9:@/?&=%.,_-]{0,80}",
        ) {
            let url = format!("{scheme}://{rest}");
            match parse(kind, &url, None) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.starts_with("url: ") || e.starts_with("kind"), "{}", e),
            }
            let shown = redact(kind, &url);
            // Credentials (what comes before the authority's last `@`)
            // never show.
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if let Some((info, _)) = authority.rsplit_once('@')
                && info.len() > 3
            {
                prop_assert!(!shown.contains(&format!("{info}@")), "{}", shown);
            }
        }
    }
}
