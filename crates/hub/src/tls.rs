//! The hub's TLS identity: a given certificate, or a self-signed one made on first start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::HubError;

pub struct TlsIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// `sha256:…` of the leaf certificate, for agents to pin.
    pub fingerprint: String,
}

/// Loads `cert`/`key` if given, else `DIR/tls/{cert,key}.pem`, creating a
/// self-signed pair there on first start.
pub fn load_or_create(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsIdentity, HubError> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        (None, None) => {
            let dir = data_dir.join("tls");
            let pair = (dir.join("cert.pem"), dir.join("key.pem"));
            if !pair.0.exists() {
                create_self_signed(&dir, &pair.0, &pair.1)?;
            }
            pair
        }
        _ => {
            return Err(HubError::Config(
                "--tls-cert and --tls-key go together".into(),
            ));
        }
    };
    let tls_err = |path: &PathBuf, e: &dyn std::fmt::Display| {
        HubError::Tls(format!("{}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| tls_err(&cert_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&cert_path, &e))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tls_err(&cert_path, &"no certificate in file"))?;
    let fingerprint = twinbay_proto::join::cert_fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| tls_err(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HubError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HubError::Tls(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint,
    })
}

fn create_self_signed(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), HubError> {
    let hostname = crate::hostname();
    let sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        hostname.clone(),
    ];
    let make = || -> Result<(String, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(sans)?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, format!("twinbay hub {hostname}"));
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert_pem, key_pem) =
        make().map_err(|e| HubError::Tls(format!("generating a certificate: {e}")))?;
    crate::fsutil::create_private_dir(dir)?;
    crate::fsutil::write_private(key_path, key_pem.as_bytes())?;
    crate::fsutil::write_private(cert_path, cert_pem.as_bytes())?;
    tracing::info!(path = %cert_path.display(), "created a self-signed TLS certificate");
    Ok(())
}
