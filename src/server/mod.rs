//! The emulator's HTTP surface: Cloudflare's v4 REST API for D1, Vectorize and R2
//! buckets, under `/client/v4/accounts/{account_id}/`.
//!
//! Any account id is accepted (the emulator has one account). Requests need
//! `Authorization: Bearer <token>` only when an API token is configured. Every request
//! is logged as one line through `tracing`. Beside it, [`bindings`] answers the calls of
//! Worker bindings that Miniflare forwards, on the same port.

pub mod backup;
pub mod bindings;
pub mod d1;
pub mod d1_transfer;
pub mod envelope;
pub mod guard;
pub mod listen;
pub mod meter;
pub mod r2;
pub mod s3;
pub mod stream;
pub mod tls;
pub mod vectorize;

use std::net::SocketAddr;
use std::sync::Arc;

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
    /// S3 port (0 picks a free one).
    pub s3_port: u16,
    /// The key pair S3 requests must be signed with.
    pub s3_credentials: crate::r2::presign::Credentials,
    /// What the Worker's bindings name (for [`bindings`]), and what a reset restores.
    pub plan: crate::provision::Plan,
    /// Host names and browser origins the REST port accepts besides loopback ones.
    pub browsers: guard::BrowserPolicy,
    /// Deadlines and connection caps, the same for each port.
    pub limits: listen::ConnectionLimits,
    /// An upload that sends nothing for this long fails, and stores nothing.
    pub body_timeout: std::time::Duration,
    /// Threads for store calls (tokio's blocking pool); at most
    /// [`stream::MAX_UPLOADS`] of them receive bodies at once.
    pub blocking_threads: usize,
    /// R2's background housekeeping: upload expiry and garbage collection.
    pub r2_housekeeping: crate::r2::Housekeeping,
    /// Count requests (`/metrics`, `usage.json`); off only to measure what counting
    /// costs.
    pub metering: bool,
    /// The free tier's allowances, and what happens past one.
    pub free_tier: crate::usage::FreeTier,
    /// Serve both ports over HTTPS with this configuration (see [`tls`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerOptions {
    /// `127.0.0.1`, REST on 8790, S3 on 8791, any bearer token, the default S3 keys,
    /// Metacogna's bindings.
    fn default() -> Self {
        ServerOptions {
            host: "127.0.0.1".into(),
            port: 8790,
            api_token: None,
            s3_port: 8791,
            s3_credentials: crate::r2::presign::Credentials::new(
                s3::DEFAULT_ACCESS_KEY_ID,
                s3::DEFAULT_SECRET_ACCESS_KEY,
            ),
            plan: crate::defaults::metacogna_plan(),
            browsers: guard::BrowserPolicy::default(),
            limits: listen::ConnectionLimits::default(),
            body_timeout: std::time::Duration::from_secs(30),
            blocking_threads: 512,
            r2_housekeeping: crate::r2::Housekeeping::default(),
            metering: true,
            free_tier: crate::usage::FreeTier::default(),
            tls: None,
        }
    }
}

/// Where `GET` answers the metrics in Prometheus's text format.
pub const METRICS_PATH: &str = "/metrics";
/// Where `GET` answers the usage report (`tristore usage --json`'s shape).
pub const USAGE_PATH: &str = "/cdn-cgi/tristore/usage";

/// The REST API over `store`, with the remote-bindings route for the bindings of
/// `options.plan`, guarded as `options.browsers` and `options.api_token` say, counted
/// by `meter` when there is one.
pub fn router(
    store: Arc<Store>,
    options: &ServerOptions,
    meter: Option<Arc<meter::Meter>>,
) -> Router {
    let api_token = options.api_token.clone();
    let account = Router::new()
        .nest("/d1/database", d1::routes())
        .nest("/vectorize/v2/indexes", vectorize::routes())
        .nest("/r2/buckets", r2::routes());
    let bindings = bindings::routes(
        store.clone(),
        options.plan.clone(),
        api_token.clone(),
        meter.clone(),
    );
    let policy = Arc::new(guard::BrowserPolicy {
        token_required: api_token.is_some(),
        https: options.tls.is_some(),
        ..options.browsers.clone()
    });
    let token = Arc::new(api_token);
    let rest = Router::new()
        .nest("/client/v4/accounts/{account}", account)
        .merge(d1_transfer::file_routes())
        .merge(meter_routes(meter.clone()))
        .merge(backup::routes())
        .fallback(|request: Request| async move {
            ApiError::new(
                404,
                7003,
                format!(
                    "Could not route to {}, perhaps your object identifier is invalid?",
                    request.uri().path()
                ),
            )
        });
    // After the token check, so that an unauthenticated request gets its error.
    let rest = match &meter {
        Some(m) if options.free_tier.policy == crate::usage::Policy::Enforce => {
            let m = m.clone();
            rest.layer(middleware::from_fn(move |request: Request, next: Next| {
                meter::admit_rest(m.clone(), request, next)
            }))
        }
        _ => rest,
    };
    let rest = rest
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = token.clone();
            async move { authorize(token.as_deref(), request, next).await }
        }))
        .layer(middleware::from_fn(envelope::plain_errors_as_envelope))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            meter::observe(
                meter.clone(),
                meter::Surface::Rest,
                meter::rest_operation,
                request,
                next,
            )
        }))
        .layer(axum::Extension(d1_transfer::UrlSigner::new(
            options.api_token.as_deref(),
            options.tls.is_some(),
        )))
        .layer(axum::extract::DefaultBodyLimit::max(REST_BODY_LIMIT))
        .with_state(store);
    // The bindings route checks its own token (`?token=`), logs its own lines and streams
    // R2 values past the REST body limit, so it sits outside those layers; the browser
    // guard covers the whole port.
    bindings
        .merge(rest)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            guard::check(policy.clone(), request, next)
        }))
}

/// `/metrics` and the usage report; without a meter, both say how to get one.
fn meter_routes(meter: Option<Arc<meter::Meter>>) -> Router<Arc<Store>> {
    use axum::extract::State;
    use axum::routing::get;
    let Some(meter) = meter else {
        let off = || async {
            ApiError::new(
                404,
                7003,
                "metering is off (serve without --no-metering to count requests)",
            )
        };
        return Router::new()
            .route(METRICS_PATH, get(off))
            .route(USAGE_PATH, get(off));
    };
    let scraped = meter.clone();
    Router::new()
        .route(
            METRICS_PATH,
            get(move |State(store): State<Arc<Store>>| async move {
                let text = envelope::blocking(move || Ok(scraped.scrape(&store))).await?;
                Ok::<_, ApiError>(
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                )
            }),
        )
        .route(
            USAGE_PATH,
            get(move |State(store): State<Arc<Store>>| async move {
                let report = envelope::blocking(move || Ok(meter.usage().report(&store)?)).await?;
                Ok::<_, ApiError>(envelope::ok(report))
            }),
        )
}

/// Largest REST request body: Cloudflare's API takes up to 100 MB (a Vectorize insert
/// of 5,000 1,536-dimension vectors is about that).
pub const REST_BODY_LIMIT: usize = 100 * 1024 * 1024;

/// Cloudflare's answers: no credentials is 400 (9106), a wrong token 403 (10000).
async fn authorize(token: Option<&str>, request: Request, next: Next) -> Response {
    // Transfer URLs carry their own capability, as presigned URLs do (`d1_transfer`).
    let Some(token) = token.filter(|_| !request.uri().path().starts_with(d1_transfer::FILES_PATH))
    else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut refused = match given.and_then(|v| v.strip_prefix("Bearer ")) {
        Some(t) if t == token => return next.run(request).await,
        Some(_) => ApiError::new(403, 10000, "Authentication error").into_response(),
        None => ApiError::new(
            400,
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        )
        .into_response(),
    };
    refused.extensions_mut().insert(meter::Unauthenticated);
    refused
}

/// Keeps `usage.json` at most a second behind the counts, and the stored amounts at
/// most a minute old.
async fn keep_usage(usage: Arc<crate::usage::Usage>, store: Arc<Store>) {
    const MEASURE_EVERY: u32 = 60;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    for n in 0u32.. {
        tick.tick().await;
        let (usage, store) = (usage.clone(), store.clone());
        let kept = tokio::task::spawn_blocking(move || {
            if n.is_multiple_of(MEASURE_EVERY) {
                usage.measure(&store)?;
            }
            usage.flush()
        })
        .await;
        if let Ok(Err(e)) = kept {
            tracing::warn!(target: "tristore::usage", "the usage counts could not be saved: {e}");
        }
    }
}

/// A server running on its own threads; dropping the handle does not stop it, call
/// [`RunningServer::shutdown`].
pub struct RunningServer {
    /// Where the REST API listens.
    pub addr: SocketAddr,
    /// Where the S3 API listens.
    pub s3_addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.thread.take().map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("server thread panicked")))
        })
    }
}

/// Binds both ports and starts serving `store` on a runtime of its own.
pub fn start(store: Arc<Store>, options: ServerOptions) -> std::io::Result<RunningServer> {
    let body_timeout = options.body_timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(options.blocking_threads.max(stream::MAX_UPLOADS + 1))
        .on_thread_start(move || stream::set_body_timeout(body_timeout))
        .enable_all()
        .build()?;
    let bind =
        |port: u16| runtime.block_on(tokio::net::TcpListener::bind((options.host.as_str(), port)));
    let (rest, s3_listener) = (bind(options.port)?, bind(options.s3_port)?);
    let (addr, s3_addr) = (rest.local_addr()?, s3_listener.local_addr()?);
    let collector =
        crate::r2::Collector::start(store.r2().clone(), options.r2_housekeeping.clone())?;
    let meter = if options.metering {
        let usage = crate::usage::Usage::open(store.dir(), options.free_tier.clone())
            .map_err(std::io::Error::other)?;
        Some(Arc::new(meter::Meter::new(Arc::new(usage))))
    } else {
        None
    };
    let rest_app = router(store.clone(), &options, meter.clone());
    let s3_app = s3::router(store.clone(), options.s3_credentials, meter.clone());
    let usage = meter.map(|m| m.usage().clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = options.limits;
    let tls = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let serve = move |listener: tokio::net::TcpListener, app: Router| {
        listen::serve(listener, app, limits, tls.clone(), stopped.clone())
    };
    let thread = std::thread::Builder::new()
        .name("tristore-http".into())
        .spawn(move || {
            // Stops when the server does, after a run in progress.
            let _collector = collector;
            let flushed = usage.clone();
            let served = runtime.block_on(async move {
                let flusher = flushed.map(|usage| tokio::spawn(keep_usage(usage, store)));
                let (a, b) = tokio::join!(serve(rest, rest_app), serve(s3_listener, s3_app));
                if let Some(flusher) = flusher {
                    flusher.abort();
                }
                a.and(b)
            });
            match usage.map(|usage| usage.flush()) {
                Some(Err(e)) => served.and(Err(std::io::Error::other(e))),
                _ => served,
            }
        })?;
    Ok(RunningServer {
        addr,
        s3_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}
