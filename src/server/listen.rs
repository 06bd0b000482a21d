//! The accept loop of both ports: every connection gets a header-read deadline and an
//! idle deadline, and each port a cap on open connections, so that slow, silent or
//! idle clients cannot hold the server's sockets (or file descriptors) for long, and a
//! flood on one port cannot starve the other (each has its own cap).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Deadlines and caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this time.
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; more are refused until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// 10 s for headers, 60 s idle, 512 connections.
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stopped` turns true,
/// then lets open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                tracing::warn!(target: "tristore::http", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                target: "tristore::http",
                max = limits.max_connections,
                "connection refused: too many open connections"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stopped = stopped.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let (io, idle) = Watched::new(stream);
            match tls {
                // The handshake is held to the header deadline: a client that connects
                // and says nothing is a slow client either way.
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, tls.accept(io));
                    match handshake.await {
                        Ok(Ok(io)) => serve_connection(io, idle, app, limits, stopped).await,
                        Ok(Err(e)) => {
                            tracing::debug!(target: "tristore::http", "TLS handshake failed: {e}")
                        }
                        Err(_) => {
                            tracing::debug!(target: "tristore::http", "TLS handshake timed out")
                        }
                    }
                }
                None => serve_connection(io, idle, app, limits, stopped).await,
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection<I>(
    io: I,
    idle: watch::Receiver<Instant>,
    app: Router,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let service = TowerToHyperService::new(app);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        let deadline = *idle.borrow() + limits.idle_timeout;
        tokio::select! {
            _ = &mut connection => return,
            _ = stopped.wait_for(|s| *s), if !shutting_down => {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            _ = tokio::time::sleep_until(deadline) => {
                if *idle.borrow() + limits.idle_timeout <= Instant::now() {
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// A socket that records when bytes last moved, for the idle deadline.
struct Watched {
    stream: TcpStream,
    last: watch::Sender<Instant>,
}

impl Watched {
    fn new(stream: TcpStream) -> (Watched, watch::Receiver<Instant>) {
        let (last, seen) = watch::channel(Instant::now());
        (Watched { stream, last }, seen)
    }

    fn moved<T>(&self, poll: &Poll<std::io::Result<T>>) {
        if matches!(poll, Poll::Ready(Ok(_))) {
            self.last.send_replace(Instant::now());
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.moved(&poll);
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.moved(&poll);
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
