//! Downloads streamed as they are written: the CSV and JSON of a report
//! go to the client in chunks of `CHUNK` bytes, at most `IN_FLIGHT`
//! chunks ahead of it, so a download's memory is its report, not its
//! bytes (a whole-period JSON built whole was hundreds of MB).
//!
//! A download that cannot finish — its deadline passed, its client
//! stopped reading, the writer failed — ends visibly broken: the body
//! fails, hyper closes the connection without the last chunk, and no
//! client takes a short file for a whole one.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;

use crate::deadline::Deadline;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;
/// Chunks sent and not yet taken by the connection.
const IN_FLIGHT: usize = 4;

/// The writer the blocking work writes a download to.
pub struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    deadline: Deadline,
    runtime: tokio::runtime::Handle,
}

/// The body a download's chunks come out of, and whether it ended whole.
pub struct Chunks {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    /// Set only once every byte was written.
    pub whole: Arc<AtomicBool>,
}

/// A writer on a blocking thread and the body its bytes become.
pub fn channel(deadline: Deadline, runtime: tokio::runtime::Handle) -> (ChunkWriter, Chunks) {
    let (sender, receiver) = tokio::sync::mpsc::channel(IN_FLIGHT);
    (
        ChunkWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK),
            deadline,
            runtime,
        },
        Chunks {
            receiver,
            whole: Arc::new(AtomicBool::new(false)),
        },
    )
}

impl ChunkWriter {
    /// Sends the buffer, `CHUNK` bytes at a time.
    fn send(&mut self) -> std::io::Result<()> {
        while !self.buffer.is_empty() {
            let rest = self.buffer.split_off(self.buffer.len().min(CHUNK));
            let chunk = std::mem::replace(&mut self.buffer, rest);
            self.send_chunk(Bytes::from(chunk))?;
        }
        Ok(())
    }

    fn send_chunk(&mut self, chunk: Bytes) -> std::io::Result<()> {
        let stopped =
            |why: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, why.to_string());
        if self.deadline.is_past() {
            return Err(stopped("the download's time limit passed"));
        }
        // A client that stops reading holds the work only until the
        // deadline, never longer.
        let sent = self.runtime.block_on(tokio::time::timeout(
            self.deadline.remaining(),
            self.sender.send(chunk),
        ));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(stopped("the client closed the connection")),
            Err(_) => Err(stopped("the client read too slowly for the time limit")),
        }
    }

    /// Sends what is left. The body then ends whole (`Chunks::whole`).
    pub fn finish(mut self, whole: &AtomicBool) -> std::io::Result<()> {
        self.send()?;
        whole.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        // Whole chunks go now (a writer may hand over a megabyte at once);
        // the rest waits for more.
        while self.buffer.len() >= CHUNK {
            let rest = self.buffer.split_off(CHUNK);
            let chunk = std::mem::replace(&mut self.buffer, rest);
            self.send_chunk(Bytes::from(chunk))?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Chunks {
    /// The response body: the chunks, then the end if the writer finished,
    /// else an error (hyper then cuts the connection before the last chunk).
    pub fn body(self) -> Body {
        let Chunks { receiver, whole } = self;
        let chunks = futures_util::stream::unfold(
            (receiver, whole, false),
            |(mut receiver, whole, ended)| async move {
                if ended {
                    return None;
                }
                match receiver.recv().await {
                    Some(chunk) => Some((Ok(chunk), (receiver, whole, false))),
                    None if whole.load(Ordering::SeqCst) => None,
                    None => Some((
                        Err(std::io::Error::other("the download was cut before its end")),
                        (receiver, whole, true),
                    )),
                }
            },
        );
        Body::from_stream(chunks)
    }
}
