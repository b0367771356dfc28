//! TLS on the client-facing listeners (`http.tls_cert`, `http.tls_key`): rustls under the
//! same accept loop and limits, with a certificate that [`PublicTls::reload`] (SIGHUP) swaps
//! for every connection opened after it; connections already open keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// The certificate files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate {cert} with key {key}: {reason}")]
pub struct PublicTlsError {
    cert: PathBuf,
    key: PathBuf,
    reason: String,
}

/// The certificate in force; swapped whole by a reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A node's TLS for its client-facing listeners; cheap to clone (every listener shares it).
#[derive(Clone)]
pub struct PublicTls {
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    cert: PathBuf,
    key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, PublicTlsError> {
    let fail = |reason: String| PublicTlsError {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| fail(format!("cannot read the certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(fail("the certificate file holds no certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| fail(format!("cannot read the private key: {e}")))?;
    CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| fail(format!("the key does not fit the certificate: {e}")))
}

impl PublicTls {
    /// TLS with the certificate chain in `cert` and its key in `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, PublicTlsError> {
        let current = Arc::new(Current(RwLock::new(Arc::new(load(cert, key)?))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PublicTlsError {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // HTTP/1.1 only, as the listeners serve it (WebSocket upgrades included).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// Reads the files again and puts the certificate in force for new connections; on an
    /// error the certificate in force stays.
    pub fn reload(&self) -> Result<(), PublicTlsError> {
        let fresh = Arc::new(load(&self.cert, &self.key)?);
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// What the accept loop hands each new connection to.
    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
