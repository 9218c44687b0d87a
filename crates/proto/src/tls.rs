//! A TLS client's check of the server's certificate when the web PKI cannot
//! vouch for it (feature `tls`): the hub's self-signed certificate, pinned by
//! the join string; a router's, pinned by the admin. The check decides on the
//! certificate; handshake signatures are still verified with the provider's
//! algorithms, so only the holder of the accepted certificate's key can answer.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// Decides whether the server's certificate is the right one.
pub trait CertCheck: fmt::Debug + Send + Sync {
    /// `Ok` to go on with the handshake; a refusal is best made with [`refused`].
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<(), rustls::Error>;
}

/// The certificate is refused because of `why` (found again with
/// [`refusal`] in the handshake's error).
pub fn refused(why: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(why))))
}

/// The reason a [`refused`] certificate was refused, of type `E`, inside an
/// I/O error from a TLS handshake.
pub fn refusal<E: std::error::Error + 'static>(err: &std::io::Error) -> Option<&E> {
    let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) =
        err.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    inner.downcast_ref::<E>()
}

/// The crypto provider twinbay's clients use (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration whose certificate check is `check`.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    check: impl CertCheck + 'static,
) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Checked { check, provider }))
        .with_no_client_auth()
}

#[derive(Debug)]
struct Checked<C> {
    check: C,
    provider: Arc<CryptoProvider>,
}

impl<C: CertCheck> ServerCertVerifier for Checked<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check
            .check(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|()| ServerCertVerified::assertion())
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
