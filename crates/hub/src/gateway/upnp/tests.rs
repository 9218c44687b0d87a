//! Parsing recorded answers of a real IGD (Debian's miniupnpd 2.3.1, in a
//! network namespace) and hostile ones.

use super::*;

const WAN_COMMON: &str = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1";
const DESC: &str = include_str!("../testdata/miniupnpd-rootDesc.xml");
const IP: &str = include_str!("../testdata/miniupnpd-GetExternalIPAddress.xml");
const STATUS: &str = include_str!("../testdata/miniupnpd-GetStatusInfo.xml");
const LINK: &str = include_str!("../testdata/miniupnpd-GetCommonLinkProperties.xml");
const SENT: &str = include_str!("../testdata/miniupnpd-GetTotalBytesSent.xml");
const FAULT: &str = include_str!("../testdata/miniupnpd-fault.xml");

fn base() -> Uri {
    "http://10.233.7.2:5000/rootDesc.xml".parse().unwrap()
}

#[test]
fn finds_the_services_of_a_real_description() {
    let s = parse_description(DESC, &base()).unwrap();
    assert_eq!(
        s.connection.service_type,
        "urn:schemas-upnp-org:service:WANIPConnection:2"
    );
    assert_eq!(
        s.connection.control_url.to_string(),
        "http://10.233.7.2:5000/ctl/IPConn"
    );
    let common = s.common.unwrap();
    assert_eq!(common.service_type, WAN_COMMON);
    assert_eq!(
        common.control_url.to_string(),
        "http://10.233.7.2:5000/ctl/CmnIfCfg"
    );
    assert_eq!(s.friendly_name.as_deref(), Some("Debian router"));
}

#[test]
fn url_base_and_ppp_connections() {
    let desc = r#"<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">
        <URLBase>http://192.168.178.1:49000</URLBase><device><friendlyName>Box</friendlyName>
        <serviceList><service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>
        <controlURL>/igdupnp/control/WANPPPConn1</controlURL></service></serviceList></device></root>"#;
    let s = parse_description(desc, &base()).unwrap();
    assert_eq!(
        s.connection.control_url.to_string(),
        "http://192.168.178.1:49000/igdupnp/control/WANPPPConn1"
    );
    assert!(s.common.is_none());
}

#[test]
fn a_description_without_a_wan_connection_is_a_clear_error() {
    let desc = r#"<root><device><serviceList><service>
        <serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
        <controlURL>/ctl/L3F</controlURL></service></serviceList></device></root>"#;
    let e = parse_description(desc, &base()).unwrap_err().to_string();
    assert!(e.contains("no WANIPConnection"), "{e}");
    let e = parse_description("<html><body>login</body></html>", &base()).unwrap_err();
    assert!(e.to_string().contains("<root>"), "{e}");
    assert!(parse_description("garbage", &base()).is_err());
}

#[test]
fn reads_real_soap_answers() {
    let ip = parse_response(200, IP, "GetExternalIPAddress").unwrap();
    assert_eq!(ip["NewExternalIPAddress"], "81.2.69.10");
    let status = parse_response(200, STATUS, "GetStatusInfo").unwrap();
    assert_eq!(status["NewConnectionStatus"], "Connected");
    assert_eq!(status["NewUptime"], "10");
    let link = parse_response(200, LINK, "GetCommonLinkProperties").unwrap();
    assert_eq!(link["NewLayer1UpstreamMaxBitRate"], "1410065408");
    assert_eq!(link["NewPhysicalLinkStatus"], "Up");
    let sent = parse_response(200, SENT, "GetTotalBytesSent").unwrap();
    assert_eq!(sent["NewTotalBytesSent"], "586");
}

#[test]
fn a_fault_names_its_upnp_error() {
    let e = parse_response(500, FAULT, "NoSuchAction").unwrap_err();
    assert!(matches!(e, GatewayError::Fault(_)));
    assert_eq!(
        e.to_string(),
        "NoSuchAction: SOAP fault UPnPError (UPnP error 401: Invalid Action)"
    );
}

#[test]
fn wrong_answers_are_errors() {
    // The answer to another action.
    assert!(parse_response(200, IP, "GetStatusInfo").is_err());
    // An error page instead of SOAP.
    let e = parse_response(404, "<html>not found", "GetStatusInfo").unwrap_err();
    assert_eq!(e.to_string(), "HTTP: GetStatusInfo: HTTP status 404");
    // Well-formed SOAP but an error status without a fault.
    assert!(parse_response(500, IP, "GetExternalIPAddress").is_err());
    // No body.
    assert!(parse_response(200, "<Envelope/>", "GetStatusInfo").is_err());
    let big = format!("<Envelope>{}</Envelope>", " ".repeat(xml::MAX_BYTES));
    assert!(matches!(
        parse_response(200, &big, "GetStatusInfo"),
        Err(GatewayError::TooLarge(_))
    ));
}

#[test]
fn envelopes_name_the_action_and_service() {
    let e = envelope(
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "GetStatusInfo",
    );
    let root = xml::parse(&e).unwrap();
    let body = root.child("Body").unwrap();
    assert!(body.child("GetStatusInfo").is_some());
}

#[test]
fn ssdp_answers() {
    let answer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                  USN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n\
                  LOCATION: http://10.233.7.2:5000/rootDesc.xml\r\n\r\n";
    assert_eq!(
        parse_ssdp(answer).unwrap().to_string(),
        "http://10.233.7.2:5000/rootDesc.xml"
    );
    assert!(parse_ssdp(&answer.replace("InternetGatewayDevice", "MediaServer")).is_none());
    assert!(parse_ssdp("NOTIFY * HTTP/1.1\r\n\r\n").is_none());
    assert!(parse_ssdp("").is_none());
    assert!(m_search().contains("ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"));
}

#[test]
fn rates_from_counters() {
    assert_eq!(rate(1000, 2000, 1.0), Some(8000));
    assert_eq!(rate(0, 1000, 2.0), Some(4000));
    // A 32-bit counter wrapped.
    assert_eq!(rate(u64::from(u32::MAX) - 99, 100, 1.0), Some(1600));
    // A 64-bit counter that went back (a reboot): no rate.
    assert_eq!(rate(u64::from(u32::MAX) + 10, 5, 1.0), None);
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC{0,300}", status in 100u16..600) {
        let _ = parse_description(&s, &base());
        let _ = parse_response(status, &s, "GetStatusInfo");
        let _ = parse_ssdp(&s);
    }

    #[test]
    fn mangled_real_answers_never_panic(cut in 0usize..3200, byte in 0u8..128) {
        for text in [DESC, STATUS, FAULT] {
            let mut v = text.as_bytes().to_vec();
            let at = cut % v.len();
            v[at] = byte;
            if let Ok(s) = String::from_utf8(v) {
                let _ = parse_description(&s, &base());
                let _ = parse_response(200, &s, "GetStatusInfo");
            }
            let _ = parse_response(200, &text[..at.min(text.len())], "GetStatusInfo");
        }
    }
}
