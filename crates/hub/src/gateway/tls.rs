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
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use twinbay_proto::join::cert_fingerprint;

use super::GatewayError;

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
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refused(
        message,
    )))))
}

#[derive(Debug)]
struct Verifier {
    mode: TlsMode,
    system: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = cert_fingerprint(end_entity.as_ref());
        match &self.mode {
            TlsMode::Insecure => Ok(ServerCertVerified::assertion()),
            TlsMode::Pinned(expected) if *expected == actual => Ok(ServerCertVerified::assertion()),
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
                    .map_err(|e| {
                        refused(format!(
                            "{e}; its fingerprint is {actual} (pin it with ?fingerprint=, \
                             or accept any certificate with ?insecure-tls)"
                        ))
                    })
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client configuration for `mode`.
pub fn client_config(mode: &TlsMode) -> Result<Arc<rustls::ClientConfig>, GatewayError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
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
    let verifier = Arc::new(Verifier {
        mode: mode.clone(),
        system,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
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
