//! What keeps a slow or greedy peer from holding the doors open: connection caps per peer
//! address and in all, and a stream that gives up when no byte has moved for a while. Used by
//! both listeners (HTTP and MLLP).

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections held per peer address; a [`PeerSlot`] gives its place back when dropped.
#[derive(Clone, Default)]
pub struct PeerCounts(Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>);

pub struct PeerSlot {
    counts: PeerCounts,
    ip: IpAddr,
}

impl PeerCounts {
    /// A place for one more connection from `ip`, or `None` when it holds `max` already.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let held = counts.entry(ip).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(PeerSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = counts.get_mut(&self.ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The HTTP listener's limits.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// A request's headers (and, between requests, the first byte of the next) must arrive
    /// within this time.
    pub header_read: Duration,
    /// A connection on which no byte moves either way for this long is closed (a request
    /// body trickled in, a response nobody reads).
    pub idle: Duration,
    /// A TLS handshake must finish within this time.
    pub tls_handshake: Duration,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Connections one peer address may hold at once. A hospital's staff often reach the
    /// network through one NAT address, so this is generous; it stops one host from taking
    /// every slot.
    pub max_connections_per_peer: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read: Duration::from_secs(20),
            idle: Duration::from_secs(300),
            tls_handshake: Duration::from_secs(10),
            max_connections: 8192,
            max_connections_per_peer: 512,
        }
    }
}

/// Accepts a connection only while its peer and the server are under their caps, and wraps it
/// in an [`IdleStream`]; a refused connection is closed at once.
#[derive(Clone)]
pub struct LimitAcceptor {
    peers: PeerCounts,
    total: Arc<Semaphore>,
    limits: HttpLimits,
}

impl LimitAcceptor {
    pub fn new(limits: HttpLimits) -> Self {
        LimitAcceptor {
            peers: PeerCounts::default(),
            total: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
        }
    }

    fn admit(&self, stream: TcpStream) -> io::Result<IdleStream> {
        let peer = stream.peer_addr()?;
        let Some(slot) = self
            .peers
            .take(peer.ip(), self.limits.max_connections_per_peer)
        else {
            tracing::warn!(%peer, "HTTP connection refused: too many from this address");
            return Err(io::Error::other("too many connections from this address"));
        };
        let Ok(permit) = self.total.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "HTTP connection refused: the server is at its connection limit");
            return Err(io::Error::other("too many connections"));
        };
        let _ = stream.set_nodelay(true);
        Ok(IdleStream::new(stream, &self.limits, (slot, permit)))
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for LimitAcceptor {
    type Stream = IdleStream;
    type Service = S;
    type Future = std::future::Ready<io::Result<(IdleStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.admit(stream).map(|s| (s, service)))
    }
}

/// A TCP stream that fails with `TimedOut` once no byte has moved either way for `idle`, and
/// holds its connection's places under the caps until it is dropped.
pub struct IdleStream {
    inner: TcpStream,
    idle: Duration,
    /// Until the first byte arrives, the wait is this (the header-read limit) instead: hyper
    /// reads the first bytes to choose HTTP/1 or HTTP/2 before its own timeout starts.
    first_byte: Option<Duration>,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    _places: (PeerSlot, OwnedSemaphorePermit),
}

impl IdleStream {
    fn new(
        inner: TcpStream,
        limits: &HttpLimits,
        places: (PeerSlot, OwnedSemaphorePermit),
    ) -> Self {
        let now = Instant::now();
        IdleStream {
            inner,
            idle: limits.idle,
            first_byte: Some(limits.header_read),
            last: now,
            timer: Box::pin(tokio::time::sleep_until(
                now + limits.header_read.min(limits.idle),
            )),
            _places: places,
        }
    }

    /// After an operation: a byte moved (ready) restarts the wait; pending checks the timer,
    /// which is moved forward lazily rather than on every byte.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.last = Instant::now();
            return poll;
        }
        let limit = self.first_byte.unwrap_or(self.idle);
        loop {
            let deadline = self.last + limit;
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no bytes moved on the connection",
                    )));
                }
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.first_byte = None;
        }
        this.check(cx, poll)
    }
}

impl AsyncWrite for IdleStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, data);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_places_back() {
        let peers = PeerCounts::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = peers.take(ip, 2).unwrap();
        let _b = peers.take(ip, 2).unwrap();
        assert!(peers.take(ip, 2).is_none(), "a third is refused");
        assert!(peers.take(other, 2).is_some(), "another peer is not");
        drop(a);
        assert!(
            peers.take(ip, 2).is_some(),
            "a closed connection frees its place"
        );
    }
}
