//! FRITZ!Box TR-064 (`fritzbox://USER@HOST` with a password): the box's
//! own SOAP interface on :49000 (or HTTPS on :49443), every action behind
//! HTTP digest authentication. It tells what the password-less IGD does
//! not: the default connection's `GetInfo` (state, uptime, public address,
//! last error), the DSL line's sync and attainable rates, and AVM's online
//! monitor (the current byte rates, sampled by the box every 5 s).
//!
//! The description (`/tr64desc.xml`) needs no password; it is read once and
//! kept until a poll fails. A wrong password is "authentication failed",
//! never stale values.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use http::{Method, Uri, header};

use super::digest::{self, Challenge};
use super::upnp::{self, Service};
use super::xml;
use super::{Dsl, GatewayError, Link, Reading, Secret, Upstream, http as client};

/// The TR-064 services the poller uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Services {
    pub friendly_name: Option<String>,
    pub layer3: Option<Service>,
    pub ppp: Option<Service>,
    pub ip: Option<Service>,
    pub common: Option<Service>,
    pub dsl: Option<Service>,
}

/// Finds the services in a TR-064 description (`tr64desc.xml`) fetched from `base`.
pub fn parse_description(text: &str, base: &Uri) -> Result<Services, GatewayError> {
    let root = xml::parse(text)?;
    if root.name != "root" {
        return Err(GatewayError::BadXml(format!(
            "a device description's root is <root>, not <{}>",
            root.name
        )));
    }
    let mut out = Services {
        friendly_name: root
            .child("device")
            .and_then(|d| d.child_text("friendlyName"))
            .map(str::to_string),
        ..Services::default()
    };
    for service in root
        .descendants()
        .into_iter()
        .filter(|e| e.name == "service")
    {
        let (Some(kind), Some(url)) = (
            service.child_text("serviceType"),
            service.child_text("controlURL"),
        ) else {
            continue;
        };
        let slot = match kind.strip_prefix("urn:dslforum-org:service:") {
            Some("Layer3Forwarding:1") => &mut out.layer3,
            Some("WANPPPConnection:1") => &mut out.ppp,
            Some("WANIPConnection:1") => &mut out.ip,
            Some("WANCommonInterfaceConfig:1") => &mut out.common,
            Some("WANDSLInterfaceConfig:1") => &mut out.dsl,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(Service {
                service_type: kind.to_string(),
                control_url: client::resolve(base, url)?,
            });
        }
    }
    if out.ppp.is_none() && out.ip.is_none() {
        return Err(GatewayError::Unsupported(
            "the TR-064 description has no WANPPPConnection or WANIPConnection service".into(),
        ));
    }
    Ok(out)
}

fn number(m: &HashMap<String, String>, k: &str) -> Option<u64> {
    m.get(k).and_then(|v| v.trim().parse().ok())
}

/// What a connection's `GetInfo` says (WANPPPConnection or WANIPConnection).
pub fn read_connection(info: &HashMap<String, String>) -> Result<Reading, GatewayError> {
    let public_ip = info
        .get("NewExternalIPAddress")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "0.0.0.0");
    if let Some(ip) = &public_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(GatewayError::BadXml(format!(
            "NewExternalIPAddress {ip:?} is not an address"
        )));
    }
    let state = info.get("NewConnectionStatus").map(|s| s.trim());
    let upstream = match state {
        Some("Connected") => Upstream::Up,
        Some(_) => Upstream::Down,
        None => Upstream::Unknown,
    };
    let reason = (upstream == Upstream::Down).then(|| {
        let state = state.unwrap_or_default();
        match info
            .get("NewLastConnectionError")
            .map(|e| e.trim())
            .filter(|e| !e.is_empty() && *e != "ERROR_NONE")
        {
            Some(e) => format!("the FRITZ!Box reports the connection {state} ({e})"),
            None => format!("the FRITZ!Box reports the connection {state}"),
        }
    });
    Ok(Reading {
        public_ip,
        upstream,
        uptime_secs: number(info, "NewUptime"),
        reason,
        ..Reading::default()
    })
}

/// The link's capacity and state from `GetCommonLinkProperties`.
pub fn apply_link_properties(reading: &mut Reading, props: &HashMap<String, String>) {
    let link = reading.link.get_or_insert_with(Link::default);
    link.max_up_bps = number(props, "NewLayer1UpstreamMaxBitRate").or(link.max_up_bps);
    link.max_down_bps = number(props, "NewLayer1DownstreamMaxBitRate").or(link.max_down_bps);
    if props.get("NewPhysicalLinkStatus").map(|s| s.trim()) == Some("Down") {
        reading.upstream = Upstream::Down;
        reading.reason = Some("the FRITZ!Box reports the physical link down".into());
    }
}

/// The newest sample of an online-monitor series ("newest,older,…", bytes
/// per second) in bits per second.
fn newest_bps(series: Option<&String>) -> Option<u64> {
    let first = series?.split(',').next()?.trim();
    first.parse::<u64>().ok().map(|b| b.saturating_mul(8))
}

/// The current rates (up, down) from `X_AVM-DE_GetOnlineMonitor`.
pub fn monitor_rates(monitor: &HashMap<String, String>) -> (Option<u64>, Option<u64>) {
    (
        newest_bps(monitor.get("Newus_current_bps")),
        newest_bps(monitor.get("Newds_current_bps")),
    )
}

/// The DSL line from `WANDSLInterfaceConfig` `GetInfo` (rates in kbit/s).
pub fn dsl_line(info: &HashMap<String, String>) -> Option<Dsl> {
    let kbit = |k: &str| number(info, k).map(|v| v.saturating_mul(1000));
    Some(Dsl {
        status: info.get("NewStatus")?.trim().to_string(),
        up_sync_bps: kbit("NewUpstreamCurrRate"),
        down_sync_bps: kbit("NewDownstreamCurrRate"),
        up_attainable_bps: kbit("NewUpstreamMaxRate"),
        down_attainable_bps: kbit("NewDownstreamMaxRate"),
    })
}

/// The poller's state for one FRITZ!Box.
pub struct Tr064 {
    /// `http://HOST:49000` or `https://HOST:49443`.
    base: Uri,
    user: String,
    password: Secret,
    tls: Option<Arc<rustls::ClientConfig>>,
    services: Option<Services>,
    /// The last digest challenge and the requests made with it.
    challenge: Option<(Challenge, u32)>,
}

impl Tr064 {
    pub fn new(
        base: Uri,
        user: String,
        password: Secret,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Tr064 {
        Tr064 {
            base,
            user,
            password,
            tls,
            services: None,
            challenge: None,
        }
    }

    pub async fn poll(&mut self) -> Result<Reading, GatewayError> {
        let result = self.try_poll().await;
        if result.is_err() {
            self.services = None;
            self.challenge = None;
        }
        result
    }

    async fn try_poll(&mut self) -> Result<Reading, GatewayError> {
        let services = match &self.services {
            Some(s) => s.clone(),
            None => {
                let url = client::resolve(&self.base, "/tr64desc.xml")?;
                let answer =
                    client::send(Method::GET, &url, &[], Bytes::new(), self.tls.as_ref()).await?;
                if answer.status != 200 {
                    return Err(GatewayError::Http(format!(
                        "{url}: HTTP status {} (is TR-064 on? Home Network → Network → \
                         Network Settings → \"Allow access for applications\")",
                        answer.status
                    )));
                }
                let services = parse_description(&answer.body, &self.base)?;
                self.services = Some(services.clone());
                services
            }
        };
        let connection = self.default_connection(&services).await?;
        let info = self.call(&connection, "GetInfo", &[]).await?;
        let mut reading = read_connection(&info)?;
        reading.device = services.friendly_name.clone();
        if let Some(common) = &services.common {
            match self.call(common, "GetCommonLinkProperties", &[]).await {
                Ok(props) => apply_link_properties(&mut reading, &props),
                Err(e @ GatewayError::Auth(_)) => return Err(e),
                Err(e) => tracing::debug!(error = %e, "TR-064 GetCommonLinkProperties"),
            }
            match self
                .call(
                    common,
                    "X_AVM-DE_GetOnlineMonitor",
                    &[("NewSyncGroupIndex", "0")],
                )
                .await
            {
                Ok(monitor) => {
                    let (up, down) = monitor_rates(&monitor);
                    let link = reading.link.get_or_insert_with(Link::default);
                    link.up_bps = up;
                    link.down_bps = down;
                }
                Err(e @ GatewayError::Auth(_)) => return Err(e),
                Err(e) => tracing::debug!(error = %e, "TR-064 X_AVM-DE_GetOnlineMonitor"),
            }
        }
        if let Some(dsl) = &services.dsl {
            // Boxes on cable or fibre answer with a fault: no DSL line.
            match self.call(dsl, "GetInfo", &[]).await {
                Ok(info) => reading.dsl = dsl_line(&info),
                Err(e @ GatewayError::Auth(_)) => return Err(e),
                Err(_) => {}
            }
            if let (Some(line), Some(link)) = (&reading.dsl, &mut reading.link) {
                link.max_up_bps = link.max_up_bps.or(line.up_sync_bps);
                link.max_down_bps = link.max_down_bps.or(line.down_sync_bps);
            }
        }
        Ok(reading)
    }

    /// The connection service the box routes through (Layer3Forwarding's
    /// default), else PPP if it has one, else IP.
    async fn default_connection(&mut self, services: &Services) -> Result<Service, GatewayError> {
        let fallback = services.ppp.clone().or(services.ip.clone());
        let Some(layer3) = &services.layer3 else {
            return fallback.ok_or_else(|| GatewayError::Unsupported("no connection".into()));
        };
        let named = match self.call(layer3, "GetDefaultConnectionService", &[]).await {
            Ok(m) => m
                .get("NewDefaultConnectionService")
                .cloned()
                .unwrap_or_default(),
            Err(e @ GatewayError::Auth(_)) => return Err(e),
            Err(_) => String::new(),
        };
        let chosen = if named.contains("WANIPConnection") {
            services.ip.clone()
        } else if named.contains("WANPPPConnection") {
            services.ppp.clone()
        } else {
            None
        };
        chosen
            .or(fallback)
            .ok_or_else(|| GatewayError::Unsupported("no connection".into()))
    }

    /// Calls `action` with digest authentication: answers the box's
    /// challenge, and asks again once when a remembered nonce has expired.
    async fn call(
        &mut self,
        service: &Service,
        action: &str,
        args: &[(&str, &str)],
    ) -> Result<HashMap<String, String>, GatewayError> {
        let envelope = upnp::envelope_with(&service.service_type, action, args);
        let soap_action = format!("{}#{action}", service.service_type);
        let uri = service
            .control_url
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let mut fresh = false;
        for _ in 0..3 {
            let mut headers = client::soap_headers(&soap_action);
            if let Some((challenge, nc)) = &mut self.challenge {
                *nc += 1;
                headers.push((
                    header::AUTHORIZATION,
                    digest::authorization(
                        challenge,
                        &self.user,
                        &self.password.0,
                        "POST",
                        &uri,
                        *nc,
                        &cnonce(),
                    ),
                ));
            }
            let answer = client::send(
                Method::POST,
                &service.control_url,
                &headers,
                Bytes::from(envelope.clone()),
                self.tls.as_ref(),
            )
            .await?;
            if answer.status != 401 {
                return upnp::parse_response(answer.status, &answer.body, action);
            }
            let challenge = answer
                .headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
                .ok_or_else(|| {
                    GatewayError::Auth(format!(
                        "{action}: HTTP status 401 without a Digest challenge"
                    ))
                })
                .and_then(|h| {
                    digest::parse_challenge(h)
                        .map_err(|e| GatewayError::Auth(format!("{action}: {e}")))
                })?;
            let stale = challenge.stale;
            self.challenge = Some((challenge, 0));
            if fresh && !stale {
                break;
            }
            fresh = true;
        }
        self.challenge = None;
        Err(GatewayError::Auth(format!(
            "the FRITZ!Box refused user {:?} with this password",
            self.user
        )))
    }
}

/// A client nonce: 16 random bytes, hex.
fn cnonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str, action: &str) -> HashMap<String, String> {
        upnp::parse_response(200, text, action).unwrap()
    }

    #[test]
    fn the_recorded_description_names_the_wan_services() {
        let base: Uri = "http://192.168.178.1:49000".parse().unwrap();
        let s = parse_description(include_str!("testdata/fritzbox-tr64desc.xml"), &base).unwrap();
        assert_eq!(s.friendly_name.as_deref(), Some("FRITZ!Box 7590"));
        let url = |s: &Option<Service>| s.as_ref().unwrap().control_url.to_string();
        assert_eq!(
            url(&s.ppp),
            "http://192.168.178.1:49000/upnp/control/wanpppconn1"
        );
        assert_eq!(
            url(&s.ip),
            "http://192.168.178.1:49000/upnp/control/wanipconnection1"
        );
        assert_eq!(
            url(&s.common),
            "http://192.168.178.1:49000/upnp/control/wancommonifconfig1"
        );
        assert_eq!(
            url(&s.dsl),
            "http://192.168.178.1:49000/upnp/control/wandslifconfig1"
        );
        assert_eq!(
            url(&s.layer3),
            "http://192.168.178.1:49000/upnp/control/layer3forwarding"
        );
        // Over TLS the control URLs keep https.
        let tls: Uri = "https://fritz.box:49443".parse().unwrap();
        let s = parse_description(include_str!("testdata/fritzbox-tr64desc.xml"), &tls).unwrap();
        assert_eq!(
            url(&s.ppp),
            "https://fritz.box:49443/upnp/control/wanpppconn1"
        );
        // The IGD description is not a TR-064 one.
        let igd = include_str!("testdata/miniupnpd-rootDesc.xml");
        assert!(matches!(
            parse_description(igd, &base),
            Err(GatewayError::Unsupported(_))
        ));
    }

    #[test]
    fn recorded_answers_give_a_reading() {
        let info = answer(
            include_str!("testdata/fritzbox-WANPPPConnection-GetInfo.xml"),
            "GetInfo",
        );
        let mut r = read_connection(&info).unwrap();
        assert_eq!(r.public_ip.as_deref(), Some("81.2.69.142"));
        assert_eq!(r.upstream, Upstream::Up);
        assert_eq!(r.uptime_secs, Some(263511));
        assert_eq!(r.reason, None);
        apply_link_properties(
            &mut r,
            &answer(
                include_str!("testdata/fritzbox-GetCommonLinkProperties.xml"),
                "GetCommonLinkProperties",
            ),
        );
        let link = r.link.unwrap();
        assert_eq!(link.max_up_bps, Some(46_720_000));
        assert_eq!(link.max_down_bps, Some(116_798_000));
        let monitor = answer(
            include_str!("testdata/fritzbox-GetOnlineMonitor.xml"),
            "X_AVM-DE_GetOnlineMonitor",
        );
        assert_eq!(
            monitor_rates(&monitor),
            (Some(250_000 * 8), Some(1_250_000 * 8))
        );
        let dsl = dsl_line(&answer(
            include_str!("testdata/fritzbox-WANDSLInterfaceConfig-GetInfo.xml"),
            "GetInfo",
        ))
        .unwrap();
        assert_eq!(dsl.status, "Up");
        assert_eq!(dsl.down_sync_bps, Some(116_798_000));
        assert_eq!(dsl.up_attainable_bps, Some(48_103_000));
    }

    #[test]
    fn a_disconnected_box_says_why() {
        let info: HashMap<String, String> = [
            ("NewConnectionStatus", "Disconnected"),
            ("NewLastConnectionError", "ERROR_AUTHENTICATION_FAILURE"),
            ("NewExternalIPAddress", "0.0.0.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = read_connection(&info).unwrap();
        assert_eq!(r.upstream, Upstream::Down);
        assert_eq!(r.public_ip, None);
        assert!(r.reason.unwrap().contains("ERROR_AUTHENTICATION_FAILURE"));
        let mut bad = info.clone();
        bad.insert("NewExternalIPAddress".into(), "not-an-ip".into());
        assert!(read_connection(&bad).is_err());
    }

    #[test]
    fn a_fault_names_its_code() {
        let e = upnp::parse_response(
            500,
            include_str!("testdata/fritzbox-fault-606.xml"),
            "GetInfo",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("606") && e.contains("Action Not Authorized"),
            "{e}"
        );
    }

    proptest::proptest! {
        #[test]
        fn monitor_series_never_panic(s in "[0-9,]{0,60}|\\PC{0,30}") {
            let m: HashMap<String, String> =
                [("Newus_current_bps".to_string(), s.clone()), ("Newds_current_bps".to_string(), s)]
                    .into_iter()
                    .collect();
            let _ = monitor_rates(&m);
        }

        #[test]
        fn descriptions_never_panic(s in "(<[a-zA-Z]{1,12}>|</[a-zA-Z]{1,12}>|urn:dslforum-org:service:WANPPPConnection:1|/upnp/x|[a-z ]{0,5}){0,40}") {
            let base: Uri = "http://10.0.0.1:49000".parse().unwrap();
            let _ = parse_description(&s, &base);
        }
    }
}
