//! The host's listening sockets (the API port and the S3 port): plain TCP,
//! or TLS. TLS handshakes run in their own tasks, off the accept loop, so a
//! client that opens a connection and never finishes its handshake holds
//! up nobody; each has [`HANDSHAKE_TIMEOUT`].

use crate::tls::Tls;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const QUEUE: usize = 256;

/// A bound port that hands out connections (plain or TLS).
pub struct Incoming {
    local: SocketAddr,
    source: Source,
}

enum Source {
    Plain(TcpListener),
    Tls(mpsc::Receiver<(Connection, SocketAddr)>),
}

impl Incoming {
    /// Binds `addr`; with `tls`, every connection is handshaken first.
    pub async fn bind(addr: SocketAddr, tls: Option<&Tls>) -> io::Result<Incoming> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let source = match tls {
            None => Source::Plain(listener),
            Some(tls) => {
                let (sender, receiver) = mpsc::channel(QUEUE);
                tokio::spawn(handshake_loop(listener, tls.acceptor(), sender));
                Source::Tls(receiver)
            }
        };
        Ok(Incoming { local, source })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection. Never fails: errors of single connections are
    /// logged and skipped.
    pub async fn next(&mut self) -> (Connection, SocketAddr) {
        match &mut self.source {
            Source::Plain(listener) => {
                let (stream, peer) = accept(listener).await;
                (Connection::Plain(stream), peer)
            }
            Source::Tls(queue) => match queue.recv().await {
                Some(connection) => connection,
                // The handshake loop only ends when this receiver is gone.
                None => std::future::pending().await,
            },
        }
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        self.next().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts the next TCP connection, with Nagle's algorithm off: it would
/// hold a response's last bytes until the client's delayed ACK (40 ms).
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(%err, "TCP_NODELAY");
                }
                return (stream, peer);
            }
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                // Out of file descriptors, mostly: give connections time to
                // close instead of spinning.
                tracing::error!(%err, "accepting a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn handshake_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    queue: mpsc::Sender<(Connection, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = queue.closed() => return,
        };
        let acceptor = acceptor.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = queue.send((Connection::Tls(Box::new(tls)), peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// One accepted connection.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
