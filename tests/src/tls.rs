//! Certificates for tests: a throwaway CA (openssl, as installed by
//! `make test`) and server certificates it signs for `localhost` and
//! 127.0.0.1, so clients can verify the chain instead of turning checks
//! off.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command, what: &str) {
    let output = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM), for clients to trust.
    pub cert: PathBuf,
    key: PathBuf,
}

/// A server certificate and its key.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA whose files live in `dir`.
    pub fn create(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("CA dir");
        let key = dir.join("ca.key");
        let cert = dir.join("ca.crt");
        run(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .args(["-days", "3", "-subj", "/CN=selfdb test CA"]),
            "openssl: the CA",
        );
        TestCa {
            dir: dir.to_owned(),
            cert,
            key,
        }
    }

    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("read the CA")
    }

    /// A certificate for `localhost` and 127.0.0.1 written to `cert` and
    /// `key` (a new key each time).
    pub fn issue_to(&self, cert: &Path, key: &Path) -> ServerCert {
        let csr = self.dir.join("server.csr");
        run(
            Command::new("openssl")
                .args(["req", "-newkey", "rsa:2048", "-nodes"])
                .arg("-keyout")
                .arg(key)
                .arg("-out")
                .arg(&csr)
                .args(["-subj", "/CN=localhost"]),
            "openssl: the server key",
        );
        let ext = self.dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions");
        run(
            Command::new("openssl")
                .args(["x509", "-req", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .arg("-CAcreateserial")
                .arg("-out")
                .arg(cert)
                .args(["-days", "3", "-extfile"])
                .arg(&ext),
            "openssl: sign the server certificate",
        );
        ServerCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }
    }

    /// A certificate in the CA's own directory.
    pub fn issue(&self, name: &str) -> ServerCert {
        self.issue_to(
            &self.dir.join(format!("{name}.crt")),
            &self.dir.join(format!("{name}.key")),
        )
    }
}

/// The DER bytes of the first certificate in a PEM file.
pub fn first_der(pem_path: &Path) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(pem_path).expect("read the certificate");
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64 of the certificate")
}
