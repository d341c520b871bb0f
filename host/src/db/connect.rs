//! Connection settings from a PostgreSQL URL, TLS included.
//!
//! tokio-postgres parses URLs itself but knows only `sslmode=disable`,
//! `prefer` and `require`, and brings no TLS. Managed databases need the
//! rest of libpq's vocabulary, so this module takes `sslmode` (all six of
//! libpq's values) and `sslrootcert` out of the URL, hands the remainder to
//! tokio-postgres, and builds the rustls connector the mode calls for:
//!
//! - `disable`: plain TCP.
//! - `allow`, `prefer` (libpq's default): TLS when the server offers it,
//!   without checking its certificate. tokio-postgres has no `allow`
//!   (plain first, TLS on refusal); it is served as `prefer`.
//! - `require`: TLS or no connection; the certificate is not checked,
//!   unless a root certificate is given, when it is `verify-ca` (as libpq
//!   does).
//! - `verify-ca`: the certificate must chain to a trusted root.
//! - `verify-full`: that, and it must name the host connected to.
//!
//! Trusted roots: `sslrootcert=PATH` (a PEM file), a PEM given apart from
//! the URL (a project's `ca_certificate`), or otherwise, and for
//! `sslrootcert=system`, the Mozilla roots (webpki-roots) that public
//! managed services chain to. Client certificates (`sslcert`, `sslkey`) are
//! refused with a clear error rather than ignored.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The connector every PostgreSQL connection of the host is made with; with
/// `sslmode=disable` tokio-postgres never calls it.
pub type PgTls = tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error(
        "unknown sslmode {0:?}: use disable, allow, prefer, require, verify-ca or verify-full"
    )]
    SslMode(String),
    #[error("{0} is not supported: client certificates cannot be used yet")]
    ClientCertificate(&'static str),
    #[error("root certificate: {0}")]
    RootCertificate(String),
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, ConnectError> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(ConnectError::SslMode(other.to_owned())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A URL's settings and the connector its `sslmode` asks for.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: PgTls,
    pub ssl_mode: SslMode,
    /// `sslrootcert`'s file, for connections made by other libraries (the
    /// realtime capture's replication client reads it itself).
    pub root_cert_path: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: only what is safe to print.
        f.debug_struct("PgTarget")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

/// Whether `url` names a root certificate file (`sslrootcert=PATH`, not
/// `system`): a path on this host, which a project's URL must not use (a
/// project gives its certificate as PEM, and every host must reach it).
pub fn names_root_file(url: &str) -> bool {
    matches!(take_tls_options(url), Ok((_, _, Some(root))) if root != "system")
}

/// Parses `url` (`postgres://` or `postgresql://`, or libpq's `key=value`
/// form); `ca_pem` is a root certificate given apart from the URL.
pub fn parse(url: &str, ca_pem: Option<&str>) -> Result<PgTarget, ConnectError> {
    let (rest, ssl_mode, root_cert) = take_tls_options(url)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnectError::Url(e.to_string()))?;
    let roots = match (root_cert.as_deref(), ca_pem) {
        (_, Some(pem)) => Some(Roots::Pem(pem.as_bytes().to_vec())),
        (Some("system"), None) => Some(Roots::Mozilla),
        (Some(path), None) => Some(Roots::Pem(std::fs::read(path).map_err(|e| {
            ConnectError::RootCertificate(format!("cannot read sslrootcert {path}: {e}"))
        })?)),
        (None, None) => None,
    };
    let mode = match (ssl_mode.unwrap_or(SslMode::Prefer), &roots) {
        // Public roots vouch for anyone's certificate: only the name on it
        // authenticates the server (libpq 16 insists on verify-full with
        // `sslrootcert=system` too).
        (SslMode::Require | SslMode::VerifyCa, Some(Roots::Mozilla))
        | (SslMode::VerifyCa, None) => SslMode::VerifyFull,
        // libpq: with a root certificate, `require` checks the chain; a
        // certificate given for the connection is not to be ignored under
        // `prefer` or `allow` either.
        (SslMode::Require | SslMode::Prefer | SslMode::Allow, Some(Roots::Pem(_))) => {
            SslMode::VerifyCa
        }
        (mode, _) => mode,
    };
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    let tls = connector(mode, roots)?;
    let root_cert_path = match (root_cert.as_deref(), ca_pem) {
        (Some(path), None) if path != "system" => Some(path.into()),
        _ => None,
    };
    Ok(PgTarget {
        config,
        tls,
        ssl_mode: mode,
        root_cert_path,
    })
}

/// Settings made without a URL (a Unix socket): no TLS.
pub fn plain(mut config: tokio_postgres::Config) -> Result<PgTarget, ConnectError> {
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    Ok(PgTarget {
        config,
        tls: connector(SslMode::Disable, None)?,
        ssl_mode: SslMode::Disable,
        root_cert_path: None,
    })
}

enum Roots {
    Pem(Vec<u8>),
    Mozilla,
}

/// Takes `sslmode`, `sslrootcert` (and refuses `sslcert`/`sslkey`) out of a
/// URL's query or a `key=value` string, returning the rest.
fn take_tls_options(url: &str) -> Result<(String, Option<SslMode>, Option<String>), ConnectError> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, ConnectError> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(value)?),
            "sslrootcert" => root = Some(value.to_owned()),
            "sslcert" => return Err(ConnectError::ClientCertificate("sslcert")),
            "sslkey" => return Err(ConnectError::ClientCertificate("sslkey")),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // tokio-postgres decodes keys too: `ssl%6Dode` is `sslmode`.
            let key = percent_decode(key)
                .ok_or_else(|| ConnectError::Url("bad percent-encoding in a key".into()))?;
            let decoded = percent_decode(value)
                .ok_or_else(|| ConnectError::Url(format!("bad percent-encoding in {key}")))?;
            if !take(&key, &decoded)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        // libpq's `key=value` form; values with spaces are quoted, which
        // this split would break, so such strings must use the URL form
        // for the TLS options (others pass through untouched).
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            let consumed = match token.split_once('=') {
                Some((key, value)) => take(key.trim(), value.trim_matches('\''))?,
                None => false,
            };
            if !consumed {
                kept.push(token);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(mode: SslMode, roots: Option<Roots>) -> Result<PgTls, ConnectError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => {
            Arc::new(EncryptOnly { provider })
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut store = RootCertStore::empty();
            match roots.unwrap_or(Roots::Mozilla) {
                Roots::Mozilla => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                Roots::Pem(pem) => {
                    let mut added = 0;
                    for cert in CertificateDer::pem_slice_iter(&pem) {
                        let cert =
                            cert.map_err(|e| ConnectError::RootCertificate(e.to_string()))?;
                        store
                            .add(cert)
                            .map_err(|e| ConnectError::RootCertificate(e.to_string()))?;
                        added += 1;
                    }
                    if added == 0 {
                        return Err(ConnectError::RootCertificate(
                            "no PEM certificate found".into(),
                        ));
                    }
                }
            }
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| ConnectError::Tls(e.to_string()))?;
            if mode == SslMode::VerifyFull {
                chain
            } else {
                Arc::new(ChainOnly { chain })
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// libpq's `require`: the connection is encrypted, the server not
/// authenticated. Handshake signatures are still checked, so the session
/// key is the certificate holder's.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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

/// libpq's `verify-ca`: the chain must reach a trusted root; the name on
/// the certificate is not compared with the host.
#[derive(Debug)]
struct ChainOnly {
    chain: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_leave_the_url_and_the_rest_stays() {
        let (rest, mode, root) = take_tls_options(
            "postgres://u:p%40ss@db.example.com:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db.example.com:5432/app?application_name=x"
        );
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) =
            take_tls_options("host=db.example.com sslmode=require dbname=app").unwrap();
        assert_eq!(rest, "host=db.example.com dbname=app");
        assert_eq!(mode, Some(SslMode::Require));
    }

    #[test]
    fn bad_tls_options_are_named() {
        assert!(matches!(
            take_tls_options("postgres://h/d?sslmode=sometimes"),
            Err(ConnectError::SslMode(m)) if m == "sometimes"
        ));
        assert!(matches!(
            take_tls_options("postgres://h/d?sslcert=/c.pem"),
            Err(ConnectError::ClientCertificate("sslcert"))
        ));
        assert!(matches!(
            parse(
                "postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent.pem",
                None
            ),
            Err(ConnectError::RootCertificate(_))
        ));
        assert!(matches!(
            parse(
                "postgres://h/d?sslmode=verify-ca",
                Some("not a certificate")
            ),
            Err(ConnectError::RootCertificate(_))
        ));
    }

    #[test]
    fn modes_map_to_what_tokio_postgres_enforces() {
        use tokio_postgres::config::SslMode as Pg;
        for (url, ours, theirs) in [
            ("postgres://h/d", SslMode::Prefer, Pg::Prefer),
            (
                "postgres://h/d?sslmode=disable",
                SslMode::Disable,
                Pg::Disable,
            ),
            ("postgres://h/d?sslmode=allow", SslMode::Allow, Pg::Prefer),
            (
                "postgres://h/d?sslmode=require",
                SslMode::Require,
                Pg::Require,
            ),
            (
                "postgres://h/d?sslmode=require&sslrootcert=system",
                SslMode::VerifyFull,
                Pg::Require,
            ),
            (
                "postgres://h/d?sslmode=verify-ca",
                SslMode::VerifyFull,
                Pg::Require,
            ),
            (
                "postgres://h/d?ssl%6Dode=disable",
                SslMode::Disable,
                Pg::Disable,
            ),
            (
                "postgres://h/d?sslmode=verify-full",
                SslMode::VerifyFull,
                Pg::Require,
            ),
        ] {
            let target = parse(url, None).unwrap();
            assert_eq!(target.ssl_mode, ours, "{url}");
            assert_eq!(target.config.get_ssl_mode(), theirs, "{url}");
        }
    }
}
