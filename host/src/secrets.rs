//! Random secrets: tokens the host generates (keys, passwords, access key
//! ids) and secret files kept in the data directory.

use rand::Rng;
use std::io;
use std::path::Path;

/// A random hex string of `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

/// Reads a secret file, creating it (mode 0600) with a fresh random value
/// first.
pub fn read_or_create_secret(path: &Path) -> io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        if !text.is_empty() {
            return Ok(text.to_owned());
        }
    }
    let secret = random_token(24);
    crate::files::write_private(path, secret.as_bytes())?;
    Ok(secret)
}
