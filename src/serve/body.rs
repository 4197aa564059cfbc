//! A response body that says when it has ended: sent whole, failed, or
//! dropped before its end (the client left, or hyper had no use for it,
//! as for a HEAD). The access line (`access`) and a connection's clocks
//! (`connection`) both need that moment.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;

/// What is called once, at the end: the bytes sent, and whether the body
/// went out whole.
type OnEnd = Box<dyn FnOnce(u64, bool) + Send>;

/// `body`, and `on_end` called once when it ends.
pub fn ended(body: Body, on_end: impl FnOnce(u64, bool) + Send + 'static) -> Body {
    Body::new(EndedBody {
        body,
        bytes: 0,
        on_end: Some(Box::new(on_end)),
    })
}

struct EndedBody {
    body: Body,
    bytes: u64,
    on_end: Option<OnEnd>,
}

impl EndedBody {
    fn end(&mut self, whole: bool) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.bytes, whole);
        }
    }
}

impl hyper::body::Body for EndedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.bytes += frame.data_ref().map_or(0, |d| d.len()) as u64;
                if hyper::body::Body::is_end_stream(&self.body) {
                    self.end(true);
                }
            }
            Poll::Ready(Some(Err(_))) => self.end(false),
            Poll::Ready(None) => self.end(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}

impl Drop for EndedBody {
    fn drop(&mut self) {
        // Not polled to its end: whole when nothing was left to send.
        let whole = hyper::body::Body::is_end_stream(&self.body);
        self.end(whole);
    }
}
