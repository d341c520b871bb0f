//! Small objects, kept in Postgres (`storage.object_data`) beside their
//! metadata row rather than in files of their own.
//!
//! A file costs an inode, a directory entry, a rename and a share of a
//! filesystem sync on every upload. A small object's bytes instead travel
//! in the transaction that commits its row, so they are durable with the
//! WAL flush that commit pays for anyway, and the row and its bytes appear
//! and disappear together. Versions of inline objects carry a prefix that
//! is not hex, so no file path is ever made of one.

use crate::blobs::WriteError;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::pin::Pin;

/// Objects up to this size are kept inline. Rows of up to about 8,090
/// bytes of data stay in their heap page (`toast_tuple_target` is a page);
/// larger ones go to TOAST, still within the same transaction.
pub const INLINE_MAX_BYTES: u64 = 8 * 1024;

const PREFIX: &str = "inline-";

/// Stores the bytes of a new inline version; runs as the pool's login role
/// before the caller's role is taken, so request roles need no privilege on
/// the table.
pub(crate) const STORE_SQL: &str =
    "insert into storage.object_data (version, data) values ($1, $2)";

pub(crate) const LOAD_SQL: &str = "select data from storage.object_data where version = $1";

pub fn new_version() -> String {
    format!("{PREFIX}{}", crate::files::new_version())
}

pub fn is_inline(version: &str) -> bool {
    version.starts_with(PREFIX)
}

/// An upload body after its first bytes were read.
pub enum Gathered<S> {
    /// It ended within [`INLINE_MAX_BYTES`]: the whole body.
    Small(Bytes),
    /// It is larger: the bytes read so far, then the rest, as one stream.
    Large(Pin<Box<S>>, Vec<Bytes>),
}

/// Reads `body` until it ends or passes [`INLINE_MAX_BYTES`], refusing it
/// once it passes `limit`.
pub async fn gather<S, E>(body: S, limit: u64) -> Result<Gathered<S>, WriteError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut body = Box::pin(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0u64;
    while size <= INLINE_MAX_BYTES {
        match body.next().await {
            None => {
                let mut whole = BytesMut::with_capacity(size as usize);
                for chunk in chunks {
                    whole.extend_from_slice(&chunk);
                }
                return Ok(Gathered::Small(whole.freeze()));
            }
            Some(chunk) => {
                let chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(WriteError::TooLarge { limit });
                }
                chunks.push(chunk);
            }
        }
    }
    Ok(Gathered::Large(body, chunks))
}

/// The bytes already read, followed by the rest of the body.
pub fn rejoin<S, E>(rest: Pin<Box<S>>, head: Vec<Bytes>) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    futures::stream::iter(head.into_iter().map(Ok)).chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(sizes: &[usize]) -> impl Stream<Item = Result<Bytes, String>> {
        let chunks: Vec<Result<Bytes, String>> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| Ok(Bytes::from(vec![i as u8; *n])))
            .collect();
        futures::stream::iter(chunks)
    }

    #[tokio::test]
    async fn a_body_within_the_threshold_is_gathered_whole() {
        let max = INLINE_MAX_BYTES as usize;
        match gather(body(&[100, max - 100]), u64::MAX).await.unwrap() {
            Gathered::Small(bytes) => {
                assert_eq!(bytes.len(), max);
                assert_eq!(bytes[0], 0);
                assert_eq!(bytes[max - 1], 1);
            }
            Gathered::Large(..) => panic!("a body of exactly the threshold is small"),
        }
    }

    #[tokio::test]
    async fn a_larger_body_comes_back_whole_and_in_order() {
        let max = INLINE_MAX_BYTES as usize;
        let sizes = [max, 1, 5000, 7];
        let Gathered::Large(rest, head) = gather(body(&sizes), u64::MAX).await.unwrap() else {
            panic!("a body past the threshold is large");
        };
        let all: Vec<Bytes> = rejoin(rest, head)
            .map(|c| c.unwrap())
            .collect::<Vec<_>>()
            .await;
        let lens: Vec<usize> = all.iter().map(Bytes::len).collect();
        assert_eq!(lens, sizes);
        for (i, chunk) in all.iter().enumerate() {
            assert!(chunk.iter().all(|b| *b == i as u8));
        }
    }

    #[tokio::test]
    async fn the_limit_applies_before_the_threshold() {
        let err = gather(body(&[600, 600]), 1000).await.err().unwrap();
        assert!(matches!(err, WriteError::TooLarge { limit: 1000 }));
    }

    #[test]
    fn inline_versions_are_never_file_versions() {
        let version = new_version();
        assert!(is_inline(&version));
        assert!(!is_inline(&crate::files::new_version()));
        assert!(!version.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
