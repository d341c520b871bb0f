//! Which bucket names and object keys the store accepts.
//!
//! Keys never become paths (files are named by version), so these rules are
//! about what S3 and Supabase accept, and about keeping keys printable in
//! listings and URLs: at most 1024 bytes of UTF-8, no NUL or other control
//! characters.

use crate::error::{StorageError, StorageResult};

pub const MAX_KEY_BYTES: usize = 1024;

pub fn check_key(key: &str) -> StorageResult<()> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::InvalidKey(format!(
            "the key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(StorageError::InvalidKey(
            "the key contains a control character".into(),
        ));
    }
    Ok(())
}

/// S3's rules for bucket names (3-63 of `a-z0-9.-`, starting and ending
/// with a letter or digit), loosened as Supabase does to allow `_` and
/// upper case, since Supabase apps already use such names.
pub fn check_bucket_name(name: &str) -> StorageResult<()> {
    let bad = |why: &str| Err(StorageError::InvalidBucketName(format!("{name:?}: {why}")));
    if name.is_empty() || name.len() > 63 {
        return bad("a bucket name has 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    if name.starts_with('.') || name.contains("..") {
        return bad("a bucket name cannot start with '.' or contain '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in [
            "a",
            "dir/file.txt",
            "../x",
            "/abs",
            "back\\slash",
            "ünï/cödé 🎉",
            "a..b",
        ] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        for bad in ["", "nul\0byte", "new\nline", long.as_str()] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bucket_names() {
        for good in ["avatars", "my-bucket.v2", "Public_Files", "abc"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            ".hidden",
            "x".repeat(64).as_str(),
            "sp ace",
            "a\0",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad:?}");
        }
    }
}
