//! HTTPS: the simulator can serve TLS with a certificate and key given as PEM (the bench
//! generates a self-signed pair and makes the gateway and nginx trust it), since real Bedrock
//! is HTTPS. rustls with ring, as the gateway's client; ALPN offers HTTP/1.1 only, as an
//! nginx upstream speaks, so a TLS row compares the same protocol on every path.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::SimError;

/// A certificate chain and its private key, PEM-encoded. `Debug` does not show the key.
#[derive(Clone)]
pub struct TlsPem {
    /// The server certificate first, then any intermediates.
    pub cert_chain: Vec<u8>,
    /// The private key (PKCS#8, SEC1 or PKCS#1).
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert_chain_bytes", &self.cert_chain.len())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

pub(crate) fn acceptor(pem: &TlsPem) -> Result<TlsAcceptor, SimError> {
    let certs = CertificateDer::pem_slice_iter(&pem.cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SimError::Tls(format!("certificate PEM: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&pem.private_key)
        .map_err(|e| SimError::Tls(format!("private key PEM: {e}")))?;
    // An explicit provider: a build that enables both ring and aws-lc-rs has no default.
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| SimError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
