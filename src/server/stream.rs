//! Bridges between async HTTP bodies and the stores' blocking reads and writes, so that
//! objects of any size cross the server with bounded memory.

use std::future::Future;
use std::io::{self, Read};

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

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

/// A blocking reader over `body`, and the future that feeds it. Read on a blocking
/// thread while the future runs on the async side; a reader that stops early ends the
/// future (the rest of the body is not read).
pub fn body_reader(body: Body) -> (BodyReader, impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::channel(8);
    let pump = async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let item = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue, // HTTP trailers carry no body bytes.
                },
                Err(e) => Err(io::Error::other(e)),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
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
