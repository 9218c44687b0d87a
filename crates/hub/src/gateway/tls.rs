//! How the gateway client checks a router's TLS certificate. Routers mostly
//! present self-signed certificates (a FRITZ!Box on :49443, a UniFi
//! console), so besides the system's roots a gateway can pin the
//! certificate's SHA-256 fingerprint (`?fingerprint=sha256:…`) or, said
//! explicitly, accept any certificate (`?insecure-tls`). Verification is
//! never skipped silently: a certificate the roots do not vouch for fails
//! with its fingerprint in the message, ready to pin.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use twinbay_proto::join::cert_fingerprint;
use twinbay_proto::tls::{self, CertCheck};

/// The certificate check of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The system's roots and the host name.
    System,
    /// Exactly this certificate (`sha256:` and 64 lowercase hex digits).
    Pinned(String),
    /// Any certificate (still a TLS handshake; documented as insecure).
    Insecure,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsMode::System => Ok(()),
            TlsMode::Pinned(fp) => write!(f, "fingerprint={fp}"),
            TlsMode::Insecure => write!(f, "insecure-tls"),
        }
    }
}

/// `sha256:AB:CD…`, `SHA256:abcd…` or bare hex → `sha256:abcd…`.
pub fn normalize_fingerprint(s: &str) -> Result<String, String> {
    let s = s.trim();
    let hex: String = match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256:") => &s[7..],
        _ => s,
    }
    .chars()
    .filter(|c| *c != ':')
    .collect::<String>()
    .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("a fingerprint is sha256: and 64 hex digits".into());
    }
    Ok(format!("sha256:{hex}"))
}

/// The certificate was not the pinned one, or the roots refused it.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(message: String) -> rustls::Error {
    tls::refused(Refused(message))
}

#[derive(Debug)]
struct Check {
    mode: TlsMode,
    system: Option<Arc<WebPkiServerVerifier>>,
}

impl CertCheck for Check {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let actual = cert_fingerprint(end_entity.as_ref());
        match &self.mode {
            TlsMode::Insecure => Ok(()),
            TlsMode::Pinned(expected) if *expected == actual => Ok(()),
            TlsMode::Pinned(expected) => Err(refused(format!(
                "the certificate's fingerprint is {actual}, not the pinned {expected}"
            ))),
            TlsMode::System => {
                let Some(system) = &self.system else {
                    return Err(refused(format!(
                        "no system root certificates to check it with; its fingerprint is \
                         {actual} (pin it with ?fingerprint=)"
                    )));
                };
                system
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .map(|_| ())
                    .map_err(|e| {
                        refused(format!(
                            "{e}; its fingerprint is {actual} (pin it with ?fingerprint=, \
                             or accept any certificate with ?insecure-tls)"
                        ))
                    })
            }
        }
    }
}

/// The client configuration for `mode`.
pub fn client_config(mode: &TlsMode) -> Arc<rustls::ClientConfig> {
    let provider = tls::provider();
    let system = match mode {
        TlsMode::System => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            (!roots.is_empty())
                .then(|| {
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .ok()
                })
                .flatten()
        }
        _ => None,
    };
    let check = Check {
        mode: mode.clone(),
        system,
    };
    Arc::new(tls::client_config(provider, check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalize() {
        let hex = "ab".repeat(32);
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        for s in [
            hex.clone(),
            format!("SHA256:{colons}"),
            format!("sha256:{hex}"),
        ] {
            assert_eq!(normalize_fingerprint(&s).unwrap(), format!("sha256:{hex}"));
        }
        assert!(normalize_fingerprint("sha256:abc").is_err());
        assert!(normalize_fingerprint(&"zz".repeat(32)).is_err());
    }
}
