//! What keeps the server bounded: a cap on open connections (accepting waits while
//! the cap is reached, and the kernel's backlog holds the rest), caps on request
//! headers, a header-read timeout (which also closes idle keep-alive connections),
//! a send timeout for clients that stop reading, a request timeout, the image
//! cache's budget, and a grace period for shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// The server's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// A request not answered in this time gets a JSON 503.
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head in this time (from
    /// its opening, or from the end of its last response) is closed.
    pub header_timeout: Duration,
    /// A connection whose client has read nothing of a response for this long
    /// is closed.
    pub send_timeout: Duration,
    /// The most bytes of request headers; past it the answer is 431.
    pub max_header_bytes: usize,
    /// The most bytes of encoded images kept for reuse.
    pub image_cache_bytes: usize,
    /// How long requests in flight may take to finish after a shutdown signal.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            image_cache_bytes: 256 << 20,
            grace: Duration::from_secs(10),
        }
    }
}

/// An accepted connection: holds its slot under the connection cap until it
/// closes, and fails a write that has waited longer than the send timeout for
/// the client to read, so a client that stops reading gives its slot back.
pub struct Guarded {
    stream: TcpStream,
    send_timeout: Duration,
    /// Running while a write waits for the client.
    stalled: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    pub fn new(stream: TcpStream, send_timeout: Duration, permit: OwnedSemaphorePermit) -> Guarded {
        Guarded {
            stream,
            send_timeout,
            stalled: None,
            _permit: permit,
        }
    }

    /// Passes on a write's result; a write still pending past the send timeout
    /// becomes an error, which closes the connection.
    fn watch<T>(
        &mut self,
        context: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.send_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(context, buffer);
        self.watch(context, result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(context);
        self.watch(context, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(context, buffers);
        self.watch(context, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
