//! HTTPS for the host's two ports (the API and S3): the certificate and key
//! from PEM files, served through rustls (ring, as the rest of the host),
//! offering HTTP/2 and HTTP/1.1 by ALPN, and read again on SIGHUP so a
//! renewed certificate (certbot, cert-manager) takes effect without a
//! restart. A reload that fails (a half-written file, a key that does not
//! match) keeps the certificate in use and logs why.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("cannot read the private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the certificate {0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate in use, swapped whole on reload: handshakes in flight
/// keep the one they started with.
#[derive(Debug)]
struct Current {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    key: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock only means a reload panicked mid-swap; the value
        // inside is still a whole certificate.
        Some(match self.key.read() {
            Ok(key) => key.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// The rustls server configuration both ports share.
#[derive(Clone)]
pub struct Tls {
    current: Arc<Current>,
    config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Loads `files`; fails when either cannot be read or they do not match.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_key(&files, &provider)?;
        let current = Arc::new(Current {
            files,
            provider: provider.clone(),
            key: RwLock::new(Arc::new(key)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // HTTP/2 first: clients that speak it get it.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            current,
            config: Arc::new(config),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_key(&self.current.files, &self.current.provider)?;
        let mut slot = match self.current.key.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(key);
        Ok(())
    }

    /// Reloads on every SIGHUP for as long as the host runs.
    pub fn reload_on_sighup(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let tls = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.current.files.cert.display(),
                        "TLS certificate reloaded"
                    ),
                    Err(err) => tracing::error!(
                        %err,
                        "TLS certificate not reloaded; the previous one stays in use"
                    ),
                }
            }
        });
        Ok(())
    }
}

fn load_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| TlsError::Key {
        path: files.key.clone(),
        message: err.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|err| TlsError::Mismatch(err.to_string()))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |message: String| TlsError::Certificate {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|err| failed(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| failed(err.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}
