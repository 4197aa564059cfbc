//! The two clocks of a connection, which hyper keeps as one.
//!
//! A client gets `head` to send its first request's head from the moment
//! it connects, and each later one from its first byte (a slow or silent
//! client cannot hold a connection open for ever); an idle keep-alive
//! connection is kept for `idle` between requests; an answer (its body
//! included) may take `answer` at most, however slowly the client reads. hyper's
//! `header_read_timeout` also runs while a connection waits for its next
//! request, so one value served both: 10 s cut idle connections sooner
//! than the ingress in front keeps them (60 s for ingress-nginx and AWS
//! load balancers), and the ingress then sent requests down connections
//! already closed (occasional 502s). Here the connection's reads tell a
//! head begun from an idle wait, and a watchdog ends the connection when
//! either clock runs out.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a connection is doing, as its reads, writes and requests tell.
#[derive(Debug)]
struct State {
    /// When the bytes of a request's head began to arrive (None: idle, or
    /// a request is being answered).
    head_since: Option<Instant>,
    /// Requests being answered (until their body has gone out).
    answering: usize,
    /// When the answer being sent began.
    answer_since: Instant,
    /// The last byte read or written.
    last: Instant,
}

/// A connection's clocks, shared by its stream, its service and its
/// watchdog.
#[derive(Debug, Clone)]
pub struct Clocks(Arc<Mutex<State>>);

impl Clocks {
    pub fn new() -> Clocks {
        // A new connection owes its first head at once: one that sends
        // nothing is as slow as one that sends half.
        Clocks(Arc::new(Mutex::new(State {
            head_since: Some(Instant::now()),
            answering: 0,
            answer_since: Instant::now(),
            last: Instant::now(),
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A request's head was read whole: it is being answered.
    pub fn request_began(&self) {
        self.with(|s| {
            s.head_since = None;
            s.answering += 1;
            s.answer_since = Instant::now();
        });
    }

    /// A request's answer went out, its body included.
    pub fn request_ended(&self) {
        self.with(|s| {
            s.answering = s.answering.saturating_sub(1);
            s.last = Instant::now();
        });
    }

    /// Returns once the connection has overrun a clock: a head owed for
    /// `head` and not read whole, `idle` without a byte between requests,
    /// or an answer going on for `answer`.
    pub async fn overrun(self, head: Duration, idle: Duration, answer: Duration) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let over = self.with(|s| match s.head_since {
                Some(since) => since.elapsed() >= head,
                None if s.answering > 0 => s.answer_since.elapsed() >= answer,
                None => s.last.elapsed() >= idle,
            });
            if over {
                return;
            }
        }
    }
}

/// Ends a request's answer on the clocks when dropped: with its body,
/// once hyper is done with it (`body::ended`: sent, cut, or the request
/// abandoned).
pub struct Answered(pub Clocks);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A stream that tells its `Clocks` of its reads and writes.
pub struct Clocked<S> {
    pub stream: S,
    pub clocks: Clocks,
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clocks.with(|s| {
                s.last = Instant::now();
                if s.answering == 0 && s.head_since.is_none() {
                    s.head_since = Some(Instant::now());
                }
            });
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, bytes);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.clocks.with(|s| s.last = Instant::now());
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
