//! UPnP Internet Gateway Device: find the router (SSDP, or a given
//! description URL), read its description for the WAN connection and
//! interface services, and ask them over SOAP for the external address,
//! the connection's state and uptime, and the link's rates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::Uri;

use super::xml::{self, Element};
use super::{GatewayError, Link, Reading, Upstream, http as client};

const IGD: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
const SSDP_ADDR: &str = "239.255.255.250:1900";
/// How long SSDP discovery listens for answers.
const SSDP_WAIT: Duration = Duration::from_secs(2);

/// A SOAP service of the device: its type (as advertised) and control URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub service_type: String,
    pub control_url: Uri,
}

/// The services the description offers that the poller uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Services {
    /// WANIPConnection (1 or 2) or WANPPPConnection.
    pub connection: Service,
    pub common: Option<Service>,
    pub friendly_name: Option<String>,
}

/// Finds the WAN services in a device description fetched from `base`.
pub fn parse_description(text: &str, base: &Uri) -> Result<Services, GatewayError> {
    let root = xml::parse(text)?;
    if root.name != "root" {
        return Err(GatewayError::BadXml(format!(
            "a device description's root is <root>, not <{}>",
            root.name
        )));
    }
    let base = match root.child_text("URLBase").filter(|u| !u.is_empty()) {
        Some(u) => u
            .parse::<Uri>()
            .map_err(|_| GatewayError::BadXml(format!("URLBase {u:?} is not a URL")))?,
        None => base.clone(),
    };
    let mut connection: Option<Service> = None;
    let mut common = None;
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
        let found = || -> Result<Service, GatewayError> {
            Ok(Service {
                service_type: kind.to_string(),
                control_url: client::resolve(&base, url)?,
            })
        };
        let is_ip = kind.starts_with("urn:schemas-upnp-org:service:WANIPConnection:");
        let is_ppp = kind.starts_with("urn:schemas-upnp-org:service:WANPPPConnection:");
        // An IP connection wins over a PPP one (boxes list both, one unused).
        let better = match &connection {
            None => is_ip || is_ppp,
            Some(c) => is_ip && c.service_type.contains("WANPPPConnection"),
        };
        if better {
            connection = Some(found()?);
        } else if kind.starts_with("urn:schemas-upnp-org:service:WANCommonInterfaceConfig:")
            && common.is_none()
        {
            common = Some(found()?);
        }
    }
    let connection = connection.ok_or_else(|| {
        GatewayError::Unsupported(
            "the device description has no WANIPConnection or WANPPPConnection service".into(),
        )
    })?;
    let friendly_name = root
        .child("device")
        .and_then(|d| d.child_text("friendlyName"))
        .map(str::to_string);
    Ok(Services {
        connection,
        common,
        friendly_name,
    })
}

/// The SOAP envelope for `action` of `service_type`, without arguments.
pub fn envelope(service_type: &str, action: &str) -> String {
    envelope_with(service_type, action, &[])
}

/// The SOAP envelope for `action` of `service_type` with input arguments.
pub fn envelope_with(service_type: &str, action: &str, args: &[(&str, &str)]) -> String {
    let args: String = args
        .iter()
        .map(|(name, value)| format!("<{name}>{}</{name}>", quick_xml::escape::escape(*value)))
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action} xmlns:u=\"{service_type}\">{args}</u:{action}></s:Body></s:Envelope>\r\n"
    )
}

/// The output arguments of `action`'s answer, or the fault it carries.
pub fn parse_response(
    status: u16,
    text: &str,
    action: &str,
) -> Result<HashMap<String, String>, GatewayError> {
    let root = match xml::parse(text) {
        Ok(root) => root,
        Err(_) if status != 200 => {
            return Err(GatewayError::Http(format!(
                "{action}: HTTP status {status}"
            )));
        }
        Err(e) => return Err(e),
    };
    let body = root
        .child("Body")
        .ok_or_else(|| GatewayError::BadXml(format!("{action}: no SOAP Body")))?;
    if let Some(fault) = body.child("Fault") {
        return Err(fault_error(action, fault));
    }
    if status != 200 {
        return Err(GatewayError::Http(format!(
            "{action}: HTTP status {status}"
        )));
    }
    let wanted = format!("{action}Response");
    let response = body
        .child(&wanted)
        .ok_or_else(|| GatewayError::BadXml(format!("{action}: no <{wanted}> in the answer")))?;
    Ok(response
        .children
        .iter()
        .map(|c| (c.name.clone(), c.text.trim().to_string()))
        .collect())
}

pub fn fault_error(action: &str, fault: &Element) -> GatewayError {
    let upnp = fault.find("UPnPError");
    let code = upnp.and_then(|e| e.child_text("errorCode"));
    let description = upnp.and_then(|e| e.child_text("errorDescription"));
    let string = fault.child_text("faultstring");
    let mut message = format!("{action}: SOAP fault");
    if let Some(s) = string.filter(|s| !s.is_empty()) {
        message.push_str(&format!(" {s}"));
    }
    if let Some(c) = code {
        message.push_str(&format!(" (UPnP error {c}"));
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            message.push_str(&format!(": {d}"));
        }
        message.push(')');
    }
    GatewayError::Fault(message)
}

/// Where the device is: a fixed description URL, or found by SSDP.
#[derive(Debug, Clone)]
pub enum Source {
    Description(Uri),
    Discover,
}

/// The poller's state for one IGD: the services found (kept until a call
/// fails) and the byte counters of the last poll, for rates.
pub struct Upnp {
    source: Source,
    services: Option<Services>,
    last_bytes: Option<(Instant, u64, u64)>,
}

impl Upnp {
    pub fn new(source: Source) -> Upnp {
        Upnp {
            source,
            services: None,
            last_bytes: None,
        }
    }

    pub async fn poll(&mut self) -> Result<Reading, GatewayError> {
        let result = self.try_poll().await;
        if result.is_err() {
            // Find the device afresh next time: it may have moved or restarted.
            self.services = None;
            self.last_bytes = None;
        }
        result
    }

    async fn try_poll(&mut self) -> Result<Reading, GatewayError> {
        let services = match &self.services {
            Some(s) => s.clone(),
            None => {
                let url = match &self.source {
                    Source::Description(url) => url.clone(),
                    Source::Discover => discover().await?,
                };
                let answer = client::request(&url, None).await?;
                if answer.status != 200 {
                    return Err(GatewayError::Http(format!(
                        "{url}: HTTP status {}",
                        answer.status
                    )));
                }
                let services = parse_description(&answer.body, &url)?;
                self.services = Some(services.clone());
                services
            }
        };
        let conn = &services.connection;
        let ip = call(conn, "GetExternalIPAddress").await?;
        let status = call(conn, "GetStatusInfo").await?;
        let public_ip = ip
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
        let mut upstream = match status.get("NewConnectionStatus").map(String::as_str) {
            Some("Connected") => Upstream::Up,
            Some(_) => Upstream::Down,
            None => Upstream::Unknown,
        };
        let uptime_secs = status.get("NewUptime").and_then(|u| u.parse().ok());
        let mut reason = (upstream == Upstream::Down).then(|| {
            let state = status
                .get("NewConnectionStatus")
                .cloned()
                .unwrap_or_default();
            match status
                .get("NewLastConnectionError")
                .filter(|e| *e != "ERROR_NONE")
            {
                Some(e) => format!("the router reports the connection {state} ({e})"),
                None => format!("the router reports the connection {state}"),
            }
        });
        let mut link = None;
        if let Some(common) = &services.common {
            let props = call(common, "GetCommonLinkProperties").await?;
            if props.get("NewPhysicalLinkStatus").map(String::as_str) == Some("Down") {
                upstream = Upstream::Down;
                reason = Some("the router reports the physical link down".into());
            }
            let number = |m: &HashMap<String, String>, k: &str| -> Option<u64> {
                m.get(k).and_then(|v| v.parse().ok())
            };
            let sent = call(common, "GetTotalBytesSent").await.ok();
            let received = call(common, "GetTotalBytesReceived").await.ok();
            let counters = sent
                .as_ref()
                .and_then(|s| number(s, "NewTotalBytesSent"))
                .zip(
                    received
                        .as_ref()
                        .and_then(|r| number(r, "NewTotalBytesReceived")),
                );
            let now = Instant::now();
            let rates = match (self.last_bytes, counters) {
                (Some((then, old_sent, old_received)), Some((sent, received))) => {
                    let secs = now.duration_since(then).as_secs_f64();
                    (secs > 0.0).then(|| {
                        (
                            rate(old_sent, sent, secs),
                            rate(old_received, received, secs),
                        )
                    })
                }
                _ => None,
            };
            self.last_bytes = counters.map(|(s, r)| (now, s, r));
            link = Some(Link {
                max_up_bps: number(&props, "NewLayer1UpstreamMaxBitRate"),
                max_down_bps: number(&props, "NewLayer1DownstreamMaxBitRate"),
                up_bps: rates.and_then(|r| r.0),
                down_bps: rates.and_then(|r| r.1),
            });
        }
        Ok(Reading {
            public_ip,
            upstream,
            link,
            uptime_secs,
            device: services.friendly_name.clone(),
            reason,
            ..Reading::default()
        })
    }
}

/// Bits per second between two byte counters `secs` apart. Counters are
/// 32-bit on many routers and wrap; a counter that went back otherwise
/// (a reboot) gives no rate.
pub fn rate(old: u64, new: u64, secs: f64) -> Option<u64> {
    let delta = if new >= old {
        new - old
    } else if old <= u64::from(u32::MAX) {
        (u64::from(u32::MAX) - old) + new + 1
    } else {
        return None;
    };
    Some((delta as f64 * 8.0 / secs) as u64)
}

/// Calls `action`; a device that advertises version 2 of a service but only
/// answers version 1 (miniupnpd does) is asked again as version 1.
async fn call(service: &Service, action: &str) -> Result<HashMap<String, String>, GatewayError> {
    let once = |kind: String| async move {
        let answer = client::request(
            &service.control_url,
            Some((&format!("{kind}#{action}"), envelope(&kind, action))),
        )
        .await?;
        parse_response(answer.status, &answer.body, action)
    };
    match once(service.service_type.clone()).await {
        Err(GatewayError::Fault(_) | GatewayError::Http(_))
            if service.service_type.ends_with(":2") =>
        {
            let v1 = format!("{}1", service.service_type.trim_end_matches('2'));
            once(v1).await
        }
        other => other,
    }
}

/// The M-SEARCH request for internet gateways.
pub fn m_search() -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {SSDP_ADDR}\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: {IGD}\r\n\r\n"
    )
}

/// The LOCATION of an SSDP answer for an IGD.
pub fn parse_ssdp(answer: &str) -> Option<Uri> {
    let mut lines = answer.split("\r\n");
    if !lines.next()?.starts_with("HTTP/1.1 200") {
        return None;
    }
    let mut location = None;
    let mut st = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "location" => location = Some(value.trim()),
            "st" => st = Some(value.trim()),
            _ => {}
        }
    }
    st?.starts_with("urn:schemas-upnp-org:device:InternetGatewayDevice:")
        .then_some(())?;
    location?.parse().ok()
}

/// Asks the LAN for an internet gateway device (SSDP multicast) and takes
/// the first that answers.
async fn discover() -> Result<Uri, GatewayError> {
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| GatewayError::Unreachable(format!("SSDP: {e}")))?;
    socket
        .send_to(m_search().as_bytes(), SSDP_ADDR)
        .await
        .map_err(|e| GatewayError::Unreachable(format!("SSDP: {e}")))?;
    let deadline = tokio::time::Instant::now() + SSDP_WAIT;
    let mut buf = [0u8; 2048];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        match received {
            Ok(Ok((n, _))) => {
                if let Some(url) = parse_ssdp(&String::from_utf8_lossy(&buf[..n])) {
                    return Ok(url);
                }
            }
            Ok(Err(e)) => return Err(GatewayError::Unreachable(format!("SSDP: {e}"))),
            Err(_) => {
                return Err(GatewayError::Unreachable(
                    "no internet gateway device answered SSDP discovery".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
