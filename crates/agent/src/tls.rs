//! TLS to the hub with certificate pinning.
//!
//! The hub's certificate is usually self-signed, so the usual web PKI cannot
//! vouch for it. Instead the agent pins the SHA-256 of the certificate that
//! the join string named, and accepts no other ([`twinbay_proto::tls`] still
//! verifies handshake signatures, so only the holder of the pinned
//! certificate's key can answer).

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use twinbay_proto::join::cert_fingerprint;
use twinbay_proto::tls::{self, CertCheck};

/// The certificate was valid TLS but not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("certificate fingerprint {actual} is not the pinned {expected}")]
pub struct PinMismatch {
    pub expected: String,
    pub actual: String,
}

/// Accepts exactly the certificate with this fingerprint.
#[derive(Debug)]
struct Pinned(String);

impl CertCheck for Pinned {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let actual = cert_fingerprint(end_entity.as_ref());
        if actual.eq_ignore_ascii_case(&self.0) {
            return Ok(());
        }
        Err(tls::refused(PinMismatch {
            expected: self.0.clone(),
            actual,
        }))
    }
}

/// A client config that trusts exactly the certificate with `fingerprint`.
pub fn pinned_client_config(fingerprint: &str) -> rustls::ClientConfig {
    tls::client_config(tls::provider(), Pinned(fingerprint.to_string()))
}

/// Finds a [`PinMismatch`] inside an I/O error from a TLS handshake.
pub fn pin_mismatch(err: &std::io::Error) -> Option<&PinMismatch> {
    tls::refusal(err)
}
