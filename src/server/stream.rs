//! Bridges between async HTTP bodies and the stores' blocking reads and writes, so that
//! objects of any size cross the server with bounded memory.
//!
//! A body being received holds a blocking thread (the store reads it as a `Read`), so
//! two bounds keep slow or silent uploaders from starving everything else, which shares
//! tokio's blocking pool: a body that sends nothing for the body timeout fails (the store
//! then commits nothing), and at most [`MAX_UPLOADS`] bodies are received at once (more
//! wait, without a thread, for a slot).

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Read};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Bodies received at once: well under tokio's 512 blocking threads, so store calls
/// always find one.
pub const MAX_UPLOADS: usize = 64;

thread_local! {
    /// How long a body may send nothing before it fails, per server: each server's
    /// runtime sets it on its threads (several servers can share a process, as tests do).
    static BODY_TIMEOUT: Cell<Duration> = const { Cell::new(Duration::from_secs(30)) };
}

/// Sets how long a body may send nothing, for bodies received on this thread; a server
/// calls it on each of its runtime's threads (`ServerOptions::body_timeout`).
pub fn set_body_timeout(timeout: Duration) {
    BODY_TIMEOUT.with(|t| t.set(timeout.max(Duration::from_millis(1))));
}

/// The error a reader gets when the body stalls; `io::ErrorKind::TimedOut`.
pub fn is_body_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

/// A slot to receive a body in; hold it until the store has read the body.
pub async fn upload_slot() -> OwnedSemaphorePermit {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<Semaphore>> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| std::sync::Arc::new(Semaphore::new(MAX_UPLOADS)));
    slots
        .clone()
        .acquire_owned()
        .await
        .expect("the upload semaphore is never closed")
}

/// The blocking end of an HTTP body being received (see [`body_reader`]).
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// How much of a body the reader did not want is still read and dropped, so that the
/// client, still sending, gets the answer (an early error) instead of a connection
/// reset; over TLS a reset surfaces as an EOF error that hides the answer. Beyond it
/// the connection is closed, as S3 does for a large body it will not take.
const DRAIN_LIMIT: usize = 64 << 20;

/// A blocking reader over `body`, and the future that feeds it. Read on a blocking
/// thread while the future runs on the async side; a reader that stops early ends the
/// future once up to [`DRAIN_LIMIT`] more bytes have been read and dropped. A body
/// that sends nothing for the body timeout gives the reader a `TimedOut` error. Take
/// an [`upload_slot`] first.
pub fn body_reader(body: Body) -> (BodyReader, impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::channel(8);
    let timeout = BODY_TIMEOUT.with(Cell::get);
    let pump = async move {
        let mut body = body;
        loop {
            let Ok(next) = tokio::time::timeout(timeout, body.frame()).await else {
                let stalled = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the body sent nothing for {} s", timeout.as_secs()),
                );
                let _ = tx.send(Err(stalled)).await;
                break;
            };
            let Some(frame) = next else { break };
            let item = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue, // HTTP trailers carry no body bytes.
                },
                Err(e) => Err(io::Error::other(e)),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() {
                drain(&mut body, timeout).await;
                break;
            }
            if stop {
                break;
            }
        }
    };
    let reader = BodyReader {
        rx,
        current: Bytes::new(),
    };
    (reader, pump)
}

/// Reads and drops up to [`DRAIN_LIMIT`] bytes of what is left of `body`.
async fn drain(body: &mut Body, timeout: std::time::Duration) {
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match tokio::time::timeout(timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => drained += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// `length` bytes of `reader` as a response body: read at once when small, else
/// streamed from a blocking thread.
pub async fn reader_body(mut reader: impl Read + Send + 'static, length: u64) -> io::Result<Body> {
    const SMALL: u64 = 1 << 20;
    if length <= SMALL {
        let bytes = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(length as usize);
            reader.read_to_end(&mut out).map(|_| out)
        })
        .await
        .map_err(io::Error::other)??;
        return Ok(Body::from(bytes));
    }
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut chunk = vec![0u8; 256 * 1024];
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                chunk.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    });
    Ok(Body::from_stream(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
    )))
}
