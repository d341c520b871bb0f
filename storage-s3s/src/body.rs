//! An object's bytes as a download sees them: an open file, the bytes of
//! an inline object already read from the database, or a key upstream.
//! A replacement or delete after the open cannot cut the download short:
//! an open file outlives its name, and upstream bytes are deleted only
//! well after their row is released (`Blobs::release_grace`).

use bytes::Bytes;
use futures::Stream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Chunk size of file downloads: large enough that a big object is not
/// thousands of tiny reads.
const READ_CHUNK: usize = 1024 * 1024;

pub enum ObjectBody {
    File(tokio::fs::File),
    Inline(Bytes),
    /// In an upstream S3 store, read when the download starts.
    Remote(crate::upstream::RemoteBody),
}

impl ObjectBody {
    /// `length` bytes from `start` (a range already checked against the
    /// object's size), as a stream of chunks.
    pub async fn into_stream(self, start: u64, length: u64) -> io::Result<BodyStream> {
        match self {
            ObjectBody::File(mut file) => {
                if start > 0 {
                    file.seek(io::SeekFrom::Start(start)).await?;
                }
                let capacity = (length as usize).clamp(1, READ_CHUNK);
                Ok(BodyStream::File(ReaderStream::with_capacity(
                    file.take(length),
                    capacity,
                )))
            }
            ObjectBody::Inline(bytes) => {
                let end = start.saturating_add(length).min(bytes.len() as u64) as usize;
                let start = (start as usize).min(end);
                let part = bytes.slice(start..end);
                Ok(BodyStream::Inline((!part.is_empty()).then_some(part)))
            }
            ObjectBody::Remote(remote) => Ok(BodyStream::Remote(sync_wrapper::SyncStream::new(
                remote.stream(start, length).await?,
            ))),
        }
    }
}

pub enum BodyStream {
    File(ReaderStream<tokio::io::Take<tokio::fs::File>>),
    Inline(Option<Bytes>),
    /// `Sync` because s3s's body type wants it; the stream is only ever
    /// polled through `&mut`.
    Remote(sync_wrapper::SyncStream<futures::stream::BoxStream<'static, io::Result<Bytes>>>),
}

impl Stream for BodyStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            BodyStream::File(stream) => Pin::new(stream).poll_next(cx),
            BodyStream::Inline(bytes) => Poll::Ready(bytes.take().map(Ok)),
            BodyStream::Remote(stream) => Pin::new(stream).poll_next(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn read(body: ObjectBody, start: u64, length: u64) -> Vec<u8> {
        let mut stream = body.into_stream(start, length).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn inline_and_file_bodies_serve_the_same_ranges() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let path =
            std::env::temp_dir().join(format!("selfdb-body-{}", crate::files::new_version()));
        std::fs::write(&path, &bytes).unwrap();
        for (start, length) in [(0, 5000), (0, 1), (4999, 1), (100, 900), (0, 0)] {
            let file = ObjectBody::File(tokio::fs::File::open(&path).await.unwrap());
            let inline = ObjectBody::Inline(Bytes::from(bytes.clone()));
            let want = &bytes[start as usize..(start + length) as usize];
            assert_eq!(
                read(file, start, length).await,
                want,
                "file {start}+{length}"
            );
            assert_eq!(
                read(inline, start, length).await,
                want,
                "inline {start}+{length}"
            );
        }
        std::fs::remove_file(path).unwrap();
    }
}
