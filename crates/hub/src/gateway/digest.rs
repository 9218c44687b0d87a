//! HTTP Digest access authentication, the client side (RFC 7616, which
//! keeps RFC 2617's MD5): read a `WWW-Authenticate: Digest …` challenge and
//! answer it with an `Authorization` header. A FRITZ!Box asks for it on
//! every TR-064 action (`realm="F!Box SOAP-Auth"`, MD5, `qop="auth"`).
//!
//! Pure functions; the caller supplies the client nonce and counts `nc`.

use md5::Md5;
use sha2::{Digest, Sha256};

/// The hash a challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

/// One `Digest` challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server offered `qop=auth` (the only protection used
    /// here; without it the RFC 2069 form is answered).
    pub qop_auth: bool,
    /// The nonce was stale: the password was right, ask again.
    pub stale: bool,
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("the server asks for no Digest authentication ({0:?})")]
    NotDigest(String),
    #[error("the Digest challenge is malformed: {0}")]
    Malformed(String),
    #[error("the Digest challenge asks for the unsupported {0}")]
    Unsupported(String),
}

/// Splits `name=value, name="quoted \" value", …` into pairs (names
/// lowercased). Stops at the first thing that is not a pair.
fn params(text: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bad = |m: &str| DigestError::Malformed(m.to_string());
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| bad("a parameter without ="))?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("a parameter name is not a token"));
        }
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => v.push(e),
                        None => break,
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let end = end.ok_or_else(|| bad("an unterminated quoted string"))?;
            rest = quoted[end + 1..].trim_start();
            v
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim().to_string();
            rest = &rest[end..];
            v
        };
        out.push((name, value));
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(bad("parameters must be separated by commas")),
        }
    }
    Ok(out)
}

/// Reads the `Digest` challenge of a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Result<Challenge, DigestError> {
    let header = header.trim();
    let scheme_end = header.find(char::is_whitespace).unwrap_or(header.len());
    if !header[..scheme_end].eq_ignore_ascii_case("digest") {
        let scheme: String = header[..scheme_end].chars().take(20).collect();
        return Err(DigestError::NotDigest(scheme));
    }
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = Algorithm::Md5;
    let mut qop_auth = false;
    let mut qop_offered = false;
    let mut stale = false;
    for (name, value) in params(&header[scheme_end..])? {
        match name.as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "opaque" => opaque = Some(value),
            "stale" => stale = value.eq_ignore_ascii_case("true"),
            "qop" => {
                qop_offered = true;
                qop_auth = value
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"));
            }
            "algorithm" => {
                algorithm = match value.to_ascii_uppercase().as_str() {
                    "MD5" => Algorithm::Md5,
                    "MD5-SESS" => Algorithm::Md5Sess,
                    "SHA-256" => Algorithm::Sha256,
                    "SHA-256-SESS" => Algorithm::Sha256Sess,
                    _ => {
                        let shown: String = value.chars().take(20).collect();
                        return Err(DigestError::Unsupported(format!("algorithm {shown:?}")));
                    }
                }
            }
            _ => {}
        }
    }
    if qop_offered && !qop_auth {
        return Err(DigestError::Unsupported("qop without \"auth\"".into()));
    }
    Ok(Challenge {
        realm: realm.ok_or_else(|| DigestError::Malformed("no realm".into()))?,
        nonce: nonce
            .filter(|n| !n.is_empty())
            .ok_or_else(|| DigestError::Malformed("no nonce".into()))?,
        opaque,
        algorithm,
        qop_auth,
        stale,
    })
}

fn hash(algorithm: Algorithm, data: &str) -> String {
    match algorithm {
        Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
        Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data.as_bytes())),
    }
}

/// A value for a quoted-string (quotes and backslashes escaped).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `response` hash for `method` on `uri` (RFC 7616 §3.4.1).
pub fn response(
    ch: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let a = ch.algorithm;
    let mut ha1 = hash(a, &format!("{user}:{}:{password}", ch.realm));
    if matches!(a, Algorithm::Md5Sess | Algorithm::Sha256Sess) {
        ha1 = hash(a, &format!("{ha1}:{}:{cnonce}", ch.nonce));
    }
    let ha2 = hash(a, &format!("{method}:{uri}"));
    match ch.qop_auth {
        true => hash(
            a,
            &format!("{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}", ch.nonce),
        ),
        false => hash(a, &format!("{ha1}:{}:{ha2}", ch.nonce)),
    }
}

/// The `Authorization` header value answering `ch`.
pub fn authorization(
    ch: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let algorithm = match ch.algorithm {
        Algorithm::Md5 => "MD5",
        Algorithm::Md5Sess => "MD5-sess",
        Algorithm::Sha256 => "SHA-256",
        Algorithm::Sha256Sess => "SHA-256-sess",
    };
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, algorithm={algorithm}, response=\"{}\"",
        quote(user),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        response(ch, user, password, method, uri, nc, cnonce),
    );
    if ch.qop_auth {
        out.push_str(&format!(
            ", qop=auth, nc={nc:08x}, cnonce={}",
            quote(cnonce)
        ));
    }
    if let Some(opaque) = &ch.opaque {
        out.push_str(&format!(", opaque={}", quote(opaque)));
    }
    out
}

/// The parameters of an `Authorization: Digest …` header, for servers
/// (the tests' doubles) that check one.
pub fn parse_authorization(header: &str) -> Result<Vec<(String, String)>, DigestError> {
    let rest = header
        .trim()
        .strip_prefix("Digest ")
        .ok_or_else(|| DigestError::NotDigest(header.chars().take(20).collect()))?;
    params(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example() {
        let ch = parse_challenge(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(ch.realm, "testrealm@host.com");
        assert!(ch.qop_auth);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let r = response(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        let header = authorization(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        let p = parse_authorization(&header).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("response"), Some("6629fae49393a05397450978507c4ef1"));
        assert_eq!(get("nc"), Some("00000001"));
        assert_eq!(get("opaque"), Some("5ccc069c403ebaf9f0171e9517f40e41"));
        assert_eq!(get("username"), Some("Mufasa"));
    }

    #[test]
    fn rfc_7616_examples() {
        let challenge = |alg: &str| {
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let answer = |alg: &str| {
            let ch = parse_challenge(&challenge(alg)).unwrap();
            response(
                &ch,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                1,
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )
        };
        assert_eq!(answer("MD5"), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            answer("SHA-256"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn a_fritzbox_challenge() {
        // The header a FRITZ!Box sends on an unauthenticated TR-064 call.
        let ch = parse_challenge(
            "Digest realm=\"F!Box SOAP-Auth\", nonce=\"C2FE64ACD5A6C8E0\", algorithm=MD5, qop=\"auth\"",
        )
        .unwrap();
        assert_eq!(ch.realm, "F!Box SOAP-Auth");
        assert_eq!(ch.nonce, "C2FE64ACD5A6C8E0");
        assert!(!ch.stale);
        // Without qop: the RFC 2069 form, and no nc or cnonce sent.
        let plain = parse_challenge("digest realm=\"r\", nonce=\"n\", stale=TRUE").unwrap();
        assert!(plain.stale && !plain.qop_auth);
        let h = authorization(&plain, "u", "p", "POST", "/x", 1, "c");
        assert!(!h.contains("nc="), "{h}");
    }

    #[test]
    fn bad_challenges_say_why() {
        assert!(matches!(
            parse_challenge("Basic realm=\"x\""),
            Err(DigestError::NotDigest(_))
        ));
        assert!(matches!(
            parse_challenge("Digest nonce=\"n\""),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            parse_challenge("Digest realm=\"r\", nonce=\"n"),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::Unsupported(_))
        ));
        assert!(matches!(
            parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::Unsupported(_))
        ));
        assert!(parse_challenge("Digest realm=\"r\" nonce=\"n\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_challenge(&s);
            let _ = parse_challenge(&format!("Digest {s}"));
        }

        #[test]
        fn quoted_values_round_trip(realm in "\\PC{0,40}", nonce in "[!-~]{1,40}", user in "\\PC{0,20}") {
            let header = format!("Digest realm={}, nonce={}, qop=\"auth\"", quote(&realm), quote(&nonce));
            let ch = parse_challenge(&header).unwrap();
            proptest::prop_assert_eq!(&ch.realm, &realm);
            proptest::prop_assert_eq!(&ch.nonce, &nonce);
            let answer = authorization(&ch, &user, "pw", "POST", "/upnp/control/x", 7, "abc");
            let p = parse_authorization(&answer).unwrap();
            let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            proptest::prop_assert_eq!(get("username"), Some(user.clone()));
            proptest::prop_assert_eq!(get("realm"), Some(realm.clone()));
            proptest::prop_assert_eq!(get("nc"), Some("00000007".to_string()));
        }
    }
}
