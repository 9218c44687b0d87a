//! `fritzbox://USER@HOST` without a password: a FRITZ!Box answers the UPnP
//! IGD actions without one on port 49000 (when "transmit status information
//! over UPnP" is on), which gives the public address, the connection's state
//! and the link's rates. With a password the poller speaks TR-064 instead
//! ([`super::tr064`]), which tells more.

use http::Uri;

use super::GatewayError;
use super::http::resolve;

/// Where a FRITZ!Box at `base` (`http://HOST:49000`) serves its IGD description.
pub fn description_url(base: &Uri) -> Result<Uri, GatewayError> {
    resolve(base, "/igddesc.xml")
}

#[cfg(test)]
mod tests {
    use crate::gateway::Spec;

    fn url(spec: &str) -> String {
        let Spec::FritzBox { host, .. } = spec.parse::<Spec>().unwrap() else {
            panic!("{spec}")
        };
        super::description_url(&host.base("http", 49000).unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn description_urls() {
        assert_eq!(
            url("fritzbox://admin@fritz.box"),
            "http://fritz.box:49000/igddesc.xml"
        );
        assert_eq!(
            url("fritzbox://admin@fd00::1"),
            "http://[fd00::1]:49000/igddesc.xml"
        );
        assert_eq!(
            url("fritzbox://admin@[fd00::1]:8080"),
            "http://[fd00::1]:8080/igddesc.xml"
        );
        assert_eq!(
            url("fritzbox://admin@127.0.0.1:5000"),
            "http://127.0.0.1:5000/igddesc.xml"
        );
    }
}
