//! Connection-level defences shared by both listeners: a cap on concurrent connections, and
//! (HTTP) hyper's own refusals rewritten into the API's JSON error envelope.
//!
//! **The cap.** Each listener holds at most `server.max_connections` connections. One over the
//! cap is accepted and closed at once (counted in `switchboard_connections_refused_total`), so
//! the kernel's accept queue never fills with it and a client gets a fast failure instead of a
//! hang; it frees as soon as a slow connection is cut by the header-read timeout (HTTP) or the
//! keep-alive (gRPC). Keep the caps of both listeners well below the process's file-descriptor
//! limit: the rest is the reserve the process needs for Redis, providers and webhooks, and with
//! it `/healthz` keeps being accepted and answered.
//!
//! **Hyper's refusals.** hyper answers a request it cannot parse (malformed framing: 400;
//! headers too large or too many: 431; a URI too long: 414) by itself, with an empty body, before
//! any service sees it, and offers no hook for that answer. [`JsonRefusals`] wraps the socket:
//! a response head of status 400, 414 or 431 that lacks `x-request-id` — every answer of the
//! router has one — can only be hyper's own, and is replaced on its way out by the same status
//! with the JSON envelope, a fresh `x-request-id` and `connection: close`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::ApiError;

/// The connection slots of one listener.
#[derive(Clone, Debug)]
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        ConnectionCap {
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// A slot for a new connection, held until the connection ends; `None` when the listener
    /// is full (the caller closes the connection).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

/// A connection holding its slot.
#[derive(Debug)]
pub struct Admitted<S> {
    pub io: S,
    _slot: OwnedSemaphorePermit,
}

impl<S> Admitted<S> {
    pub fn new(io: S, slot: OwnedSemaphorePermit) -> Self {
        Admitted { io, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Admitted<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// A socket whose hyper-made error answers leave as JSON (see the module docs).
#[derive(Debug)]
pub struct JsonRefusals<S> {
    io: S,
    /// A replacement answer still being written: the bytes and how many are out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonRefusals<S> {
    pub fn new(io: S) -> Self {
        JsonRefusals { io, pending: None }
    }
}

impl<S: AsyncWrite + Unpin> JsonRefusals<S> {
    /// Writes out a pending replacement; ready when nothing is pending.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
            if *sent == bytes.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// When `buf` starts with a whole response head of a status hyper makes on its own and without
/// `x-request-id`: the head's length and the JSON answer to send instead.
fn replacement(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    let status = match buf.get(..12)? {
        b"HTTP/1.1 400" | b"HTTP/1.0 400" => 400,
        b"HTTP/1.1 414" | b"HTTP/1.0 414" => 414,
        b"HTTP/1.1 431" | b"HTTP/1.0 431" => 431,
        _ => return None,
    };
    let head_len = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    if head.contains("\r\nx-request-id:") {
        return None;
    }
    let error = match status {
        400 => ApiError::invalid(
            "malformed HTTP request (request line, headers or body framing); the API is \
             described at /openapi.json",
        ),
        414 => ApiError::new("URI_TOO_LONG", "the request URI is too long"),
        _ => ApiError::new(
            "REQUEST_HEADERS_TOO_LARGE",
            "the request headers are too large or too many",
        ),
    };
    let body = serde_json::to_vec(&super::http::types::ErrorBody::from(&error)).ok()?;
    let reason = match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        _ => "Request Header Fields Too Large",
    };
    let mut answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        uuid::Uuid::new_v4()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some((head_len, answer))
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonRefusals<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some((head_len, answer)) = replacement(buf) {
            // hyper's head counts as written; the replacement goes out in its place.
            // Reported written at once (a retried write would be inspected again); whatever
            // of the replacement is not out yet goes on the next write, flush or shutdown.
            self.pending = Some((answer, 0));
            if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(head_len));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
