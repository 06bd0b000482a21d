//! The emulator's HTTP surface: Cloudflare's v4 REST API for D1, Vectorize and R2
//! buckets, under `/client/v4/accounts/{account_id}/`.
//!
//! Any account id is accepted (the emulator has one account). Requests need
//! `Authorization: Bearer <token>` only when an API token is configured. Every request
//! is logged as one line through `tracing`.

pub mod d1;
pub mod envelope;
pub mod r2;
pub mod vectorize;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use envelope::ApiError;

use crate::Store;

/// The account id the banner prints; any other works as well.
pub const DEFAULT_ACCOUNT_ID: &str = "7a1570e0000000000000000000000000";

/// How the server is reached and guarded.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Interface to listen on.
    pub host: String,
    /// REST port (0 picks a free one).
    pub port: u16,
    /// When set, requests must carry `Authorization: Bearer <this>`.
    pub api_token: Option<String>,
}

/// The REST API over `store`.
pub fn router(store: Arc<Store>, api_token: Option<String>) -> Router {
    let account = Router::new()
        .nest("/d1/database", d1::routes())
        .nest("/vectorize/v2/indexes", vectorize::routes())
        .nest("/r2/buckets", r2::routes());
    let token = Arc::new(api_token);
    Router::new()
        .nest("/client/v4/accounts/{account}", account)
        .fallback(|request: Request| async move {
            ApiError::new(
                404,
                7003,
                format!(
                    "Could not route to {}, perhaps your object identifier is invalid?",
                    request.uri().path()
                ),
            )
        })
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = token.clone();
            async move { authorize(token.as_deref(), request, next).await }
        }))
        .layer(middleware::from_fn(log))
        .with_state(store)
}

/// Cloudflare's answers: no credentials is 400 (9106), a wrong token 403 (10000).
async fn authorize(token: Option<&str>, request: Request, next: Next) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match given.and_then(|v| v.strip_prefix("Bearer ")) {
        Some(t) if t == token => next.run(request).await,
        Some(_) => ApiError::new(403, 10000, "Authentication error").into_response(),
        None => ApiError::new(
            400,
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        )
        .into_response(),
    }
}

async fn log(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        target: "tristore::http",
        %method,
        path,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// A server running on its own threads; dropping the handle does not stop it, call
/// [`RunningServer::shutdown`].
pub struct RunningServer {
    /// Where the REST API listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("server thread panicked")))
        })
    }
}

/// Binds and starts serving `store` on a runtime of its own.
pub fn start(store: Arc<Store>, options: ServerOptions) -> std::io::Result<RunningServer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind((
        options.host.as_str(),
        options.port,
    )))?;
    let addr = listener.local_addr()?;
    let app = router(store, options.api_token);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("tristore-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        })?;
    Ok(RunningServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}
