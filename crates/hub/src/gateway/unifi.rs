//! UniFi (`unifi://HOST`, `unifi://USER@HOST`): the Network application's
//! `stat/health`, whose `wan` subsystem names the public address and the
//! gateway, and whose `www` subsystem says whether the internet answers
//! (status, latency, uptime, the last speed test's throughput).
//!
//! - `unifi://HOST`: a UniFi OS console (UDM, UCG, Cloud Key 2) with an API
//!   key (the password setting): `X-API-KEY`, `GET
//!   /proxy/network/api/s/SITE/stat/health` on :443.
//! - `unifi://USER@HOST`: a self-hosted Network controller with a local
//!   user: `POST /api/login`, then the session cookie on `GET
//!   /api/s/SITE/stat/health`, on :8443.
//!
//! Always HTTPS; the certificate is checked as [`super::tls`] says.

use std::sync::Arc;

use axum::body::Bytes;
use http::{HeaderName, Method, Uri, header};
use serde_json::Value;

use super::{GatewayError, Link, Reading, Secret, Upstream, http as client};

/// How the poller signs in.
pub enum Auth {
    /// A UniFi OS API key.
    ApiKey(Secret),
    /// A controller's local user.
    Login { user: String, password: Secret },
}

fn num(v: Option<&Value>) -> Option<f64> {
    let n: Option<f64> = match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|f| f.is_finite() && *f >= 0.0)
}

fn uint(v: Option<&Value>) -> Option<u64> {
    num(v).map(|f| f as u64)
}

/// A `stat/health` answer as a reading.
pub fn parse_health(text: &str) -> Result<Reading, GatewayError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| GatewayError::BadJson(format!("stat/health: {e}")))?;
    if let Some(meta) = v.get("meta") {
        let rc = meta.get("rc").and_then(Value::as_str).unwrap_or_default();
        if rc != "ok" {
            let msg = meta
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let msg: String = msg.chars().take(200).collect();
            return Err(
                match msg.contains("LoginRequired") || msg.contains("Invalid") {
                    true => GatewayError::Auth(format!("the controller answered {msg}")),
                    false => {
                        GatewayError::Fault(format!("stat/health: the controller answered {msg}"))
                    }
                },
            );
        }
    }
    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        GatewayError::BadJson("stat/health: no \"data\" array in the answer".into())
    })?;
    let subsystem = |name: &str| {
        data.iter()
            .find(|d| d.get("subsystem").and_then(Value::as_str) == Some(name))
    };
    let (wan, www) = (subsystem("wan"), subsystem("www"));
    if wan.is_none() && www.is_none() {
        return Err(GatewayError::Unsupported(
            "stat/health lists no wan or www subsystem (has the site a UniFi gateway?)".into(),
        ));
    }
    let status = |s: Option<&Value>| {
        s.and_then(|s| s.get("status"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (www_status, wan_status) = (status(www), status(wan));
    let upstream = match www_status.as_deref().or(wan_status.as_deref()) {
        Some("ok") => Upstream::Up,
        Some("unknown") | None => Upstream::Unknown,
        Some(_) => Upstream::Down,
    };
    let reason = (upstream == Upstream::Down).then(|| match &www_status {
        Some(s) => format!("UniFi reports the internet (www) {s}"),
        None => format!(
            "UniFi reports the WAN {}",
            wan_status.clone().unwrap_or_default()
        ),
    });
    let public_ip = wan
        .and_then(|w| w.get("wan_ip"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(ip) = public_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        let shown: String = ip.chars().take(60).collect();
        return Err(GatewayError::BadJson(format!(
            "stat/health: wan_ip {shown:?} is not an address"
        )));
    }
    let field = |key: &str| {
        www.and_then(|w| w.get(key))
            .or_else(|| wan.and_then(|w| w.get(key)))
    };
    let uptime_secs = uint(www.and_then(|w| w.get("uptime"))).or_else(|| {
        uint(
            wan.and_then(|w| w.get("gw_system-stats"))
                .and_then(|s| s.get("uptime")),
        )
    });
    let mbps = |key: &str| {
        num(www.and_then(|w| w.get(key)))
            .filter(|m| *m > 0.0)
            .map(|m| (m * 1e6) as u64)
    };
    let bytes_rate = |key: &str| uint(field(key)).map(|b| b.saturating_mul(8));
    let link = Link {
        max_up_bps: mbps("xput_up"),
        max_down_bps: mbps("xput_down"),
        up_bps: bytes_rate("tx_bytes-r"),
        down_bps: bytes_rate("rx_bytes-r"),
    };
    Ok(Reading {
        public_ip: public_ip.map(str::to_string),
        upstream,
        link: (link != Link::default()).then_some(link),
        uptime_secs,
        device: wan
            .and_then(|w| w.get("gw_name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        reason,
        latency_ms: num(www.and_then(|w| w.get("latency"))),
        dsl: None,
    })
}

/// The poller's state for one console or controller.
pub struct Unifi {
    /// `https://HOST:PORT`.
    base: Uri,
    site: String,
    auth: Auth,
    tls: Arc<rustls::ClientConfig>,
    /// The controller's session (`name=value; …`), after a login.
    cookie: Option<String>,
}

impl Unifi {
    pub fn new(base: Uri, site: String, auth: Auth, tls: Arc<rustls::ClientConfig>) -> Unifi {
        Unifi {
            base,
            site,
            auth,
            tls,
            cookie: None,
        }
    }

    fn url(&self, path: &str) -> Result<Uri, GatewayError> {
        client::resolve(&self.base, path)
    }

    async fn get_health(&self) -> Result<client::Answer, GatewayError> {
        let (path, headers) = match &self.auth {
            Auth::ApiKey(key) => (
                format!("/proxy/network/api/s/{}/stat/health", self.site),
                vec![
                    (HeaderName::from_static("x-api-key"), key.0.clone()),
                    (header::ACCEPT, "application/json".into()),
                ],
            ),
            Auth::Login { .. } => (
                format!("/api/s/{}/stat/health", self.site),
                vec![
                    (header::COOKIE, self.cookie.clone().unwrap_or_default()),
                    (header::ACCEPT, "application/json".into()),
                ],
            ),
        };
        client::send(
            Method::GET,
            &self.url(&path)?,
            &headers,
            Bytes::new(),
            Some(&self.tls),
        )
        .await
    }

    async fn login(&mut self) -> Result<(), GatewayError> {
        let Auth::Login { user, password } = &self.auth else {
            return Ok(());
        };
        let body = serde_json::json!({"username": user, "password": password.0}).to_string();
        let answer = client::send(
            Method::POST,
            &self.url("/api/login")?,
            &[
                (header::CONTENT_TYPE, "application/json".into()),
                (header::ACCEPT, "application/json".into()),
            ],
            Bytes::from(body),
            Some(&self.tls),
        )
        .await?;
        match answer.status {
            200 => {}
            400 | 401 | 403 => {
                return Err(GatewayError::Auth(format!(
                    "the controller refused user {user:?} with this password (HTTP {})",
                    answer.status
                )));
            }
            404 => {
                return Err(GatewayError::Http(
                    "/api/login: HTTP status 404 (a UniFi OS console? use unifi://HOST with an \
                     API key)"
                        .into(),
                ));
            }
            s => return Err(GatewayError::Http(format!("/api/login: HTTP status {s}"))),
        }
        let cookies: Vec<&str> = answer
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::trim)
            .filter(|c| c.contains('='))
            .collect();
        if cookies.is_empty() {
            return Err(GatewayError::Auth(
                "the controller's login set no session cookie".into(),
            ));
        }
        self.cookie = Some(cookies.join("; "));
        Ok(())
    }

    pub async fn poll(&mut self) -> Result<Reading, GatewayError> {
        let result = self.try_poll().await;
        if result.is_err() {
            self.cookie = None;
        }
        result
    }

    async fn try_poll(&mut self) -> Result<Reading, GatewayError> {
        let login = matches!(self.auth, Auth::Login { .. });
        if login && self.cookie.is_none() {
            self.login().await?;
        }
        let mut answer = self.get_health().await?;
        if login && answer.status == 401 {
            // The session ended: sign in once more.
            self.login().await?;
            answer = self.get_health().await?;
        }
        match answer.status {
            200 => parse_health(&answer.body),
            401 | 403 => Err(GatewayError::Auth(match &self.auth {
                Auth::ApiKey(_) => {
                    format!("the console refused the API key (HTTP {})", answer.status)
                }
                Auth::Login { user, .. } => format!(
                    "the controller refused user {user:?}'s session (HTTP {})",
                    answer.status
                ),
            })),
            404 => Err(GatewayError::Http(format!(
                "stat/health: HTTP status 404 (is the site {:?} right? a classic controller \
                 needs unifi://USER@HOST)",
                self.site
            ))),
            s => match parse_health(&answer.body) {
                Err(e @ (GatewayError::Auth(_) | GatewayError::Fault(_))) => Err(e),
                _ => Err(GatewayError::Http(format!("stat/health: HTTP status {s}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_health_answer() {
        let r = parse_health(include_str!("testdata/unifi-stat-health.json")).unwrap();
        assert_eq!(r.public_ip.as_deref(), Some("81.2.69.160"));
        assert_eq!(r.upstream, Upstream::Up);
        assert_eq!(r.uptime_secs, Some(1209480));
        assert_eq!(r.device.as_deref(), Some("UDM Pro"));
        assert_eq!(r.latency_ms, Some(7.0));
        let link = r.link.unwrap();
        assert_eq!(link.max_down_bps, Some(243_700_000));
        assert_eq!(link.max_up_bps, Some(48_200_000));
        assert_eq!(link.up_bps, Some(187_213 * 8));
        assert_eq!(link.down_bps, Some(1_404_887 * 8));
    }

    #[test]
    fn the_www_subsystem_decides_the_upstream() {
        let down = r#"{"meta":{"rc":"ok"},"data":[
            {"subsystem":"wan","status":"ok","wan_ip":"81.2.69.160","gw_system-stats":{"uptime":"300"}},
            {"subsystem":"www","status":"error","latency":0,"xput_up":0,"xput_down":0}]}"#;
        let r = parse_health(down).unwrap();
        assert_eq!(r.upstream, Upstream::Down);
        assert!(r.reason.unwrap().contains("www"));
        // Without www.uptime, the gateway's uptime; an idle speed test (0) is no capacity.
        assert_eq!(r.uptime_secs, Some(300));
        assert_eq!(r.link, None);
        let wan_only = r#"{"meta":{"rc":"ok"},"data":[{"subsystem":"wan","status":"ok"}]}"#;
        assert_eq!(parse_health(wan_only).unwrap().upstream, Upstream::Up);
    }

    #[test]
    fn bad_answers_say_why() {
        let e = parse_health(include_str!("testdata/unifi-login-required.json")).unwrap_err();
        assert!(matches!(e, GatewayError::Auth(_)), "{e}");
        assert!(e.to_string().contains("LoginRequired"), "{e}");
        let e = parse_health(include_str!("testdata/unifi-os-unauthorized.json")).unwrap_err();
        assert!(e.to_string().contains("no \"data\""), "{e}");
        for (text, wanted) in [
            ("<html>", "malformed JSON"),
            ("{\"data\":[]}", "no wan or www"),
            (
                "{\"data\":[{\"subsystem\":\"wan\",\"wan_ip\":\"x\"}]}",
                "not an address",
            ),
            (
                "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.NoSiteContext\"}}",
                "NoSiteContext",
            ),
        ] {
            let e = parse_health(text).unwrap_err().to_string();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(s in "\\PC{0,300}") {
            let _ = parse_health(&s);
        }

        #[test]
        fn odd_values_never_panic(
            status in proptest::option::of("ok|error|warning|unknown|"),
            ip in proptest::option::of("[0-9.:a-z]{0,20}"),
            n in proptest::option::of(proptest::num::f64::ANY),
            s in proptest::option::of("[0-9.e+-]{0,12}"),
        ) {
            let body = serde_json::json!({"meta": {"rc": "ok"}, "data": [
                {"subsystem": "wan", "status": status, "wan_ip": ip, "tx_bytes-r": s,
                 "gw_system-stats": {"uptime": s}},
                {"subsystem": "www", "status": status, "xput_up": n, "latency": n, "uptime": s},
            ]});
            if let Ok(r) = parse_health(&body.to_string())
                && let Some(ip) = r.public_ip
            {
                proptest::prop_assert!(ip.parse::<std::net::IpAddr>().is_ok());
            }
        }
    }
}
