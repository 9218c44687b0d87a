//! `fritzbox://USER@HOST`: a FRITZ!Box answers the UPnP IGD actions without
//! a password on port 49000 (when "transmit status information over UPnP"
//! is on), which gives the public address, the connection's state and the
//! link's rates. Its TR-064 interface, which needs USER's password, is not
//! used yet.

use http::Uri;

use super::GatewayError;

/// Where a FRITZ!Box serves its IGD description.
pub fn description_url(host: &str) -> Result<Uri, GatewayError> {
    let host = match host.contains(':') && !host.starts_with('[') {
        true => format!("[{host}]"),
        false => host.to_string(),
    };
    format!("http://{host}:49000/igddesc.xml")
        .parse()
        .map_err(|_| GatewayError::Config(format!("{host:?} is not a host name")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn description_urls() {
        assert_eq!(
            super::description_url("fritz.box").unwrap().to_string(),
            "http://fritz.box:49000/igddesc.xml"
        );
        assert_eq!(
            super::description_url("fd00::1").unwrap().to_string(),
            "http://[fd00::1]:49000/igddesc.xml"
        );
    }
}
