//! Miniflare's remote-bindings protocol: a Worker's real `env.VECTORIZE`, `env.DB` and
//! `env.BUCKET`, answered by this store.
//!
//! Miniflare builds each binding from workerd's own implementation and gives it a
//! fetcher that forwards every call to the binding's `remoteProxyConnectionString`:
//! the call's method and body unchanged, its URL in `MF-URL`, its headers as
//! `MF-Header-<name>`, the binding's name in `MF-Binding`. In production the server at
//! that URL is a proxy Worker in front of Cloudflare's services; here it is
//! [`PATH`], and each kind answers in its binding's own wire format: [`vectorize`] plain
//! JSON with `{code, error}` failures, [`d1`] `{success, meta, results}`, [`r2`]
//! metadata-framed bodies with `cf-r2-error` failures.
//!
//! The resource a binding names is, first match wins: the path's `{kind}/{name}`
//! (one URL per binding); a query parameter named after the binding
//! (`?VECTORIZE=docs&DB=app`, one URL for all, as Miniflare 5 requires); the binding
//! map of the `--config` file; Metacogna's bindings.

mod d1;
mod r2;
mod vectorize;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::json;

use super::envelope::{blocking, ok, ApiError};
use super::meter::{Api, Meter, Operation, Surface};
use crate::provision::Plan;
use crate::Store;

/// Where Miniflare's proxy client sends the calls of bindings pointed at tristore.
pub const PATH: &str = "/cdn-cgi/tristore/remote-bindings";

/// `POST` here empties every provisioned resource and provisions it again.
pub const RESET_PATH: &str = "/cdn-cgi/tristore/reset";

/// The three kinds of binding served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vectorize,
    D1,
    R2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Vectorize => "vectorize",
            Kind::D1 => "d1",
            Kind::R2 => "r2",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        [Kind::Vectorize, Kind::D1, Kind::R2]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The kind a forwarded call belongs to: the binding's URL host for Vectorize
    /// (`vector-search`) and D1 (`d1`), its framing headers for R2.
    fn of_call(url: &Uri, headers: &HeaderMap) -> Option<Kind> {
        match url.host() {
            Some("vector-search") => Some(Kind::Vectorize),
            Some("d1") => Some(Kind::D1),
            _ if headers.contains_key(r2::REQUEST) || headers.contains_key(r2::METADATA_SIZE) => {
                Some(Kind::R2)
            }
            _ => None,
        }
    }

    /// A failure in this binding's own error format, so that the Worker sees the message.
    fn error(self, status: u16, message: &str) -> Response {
        match self {
            Kind::Vectorize => vectorize::error(status, vectorize::INDEX_NOT_FOUND, message),
            Kind::D1 => d1::error(status, message),
            Kind::R2 => r2::error(status, r2::NO_SUCH_BUCKET, message),
        }
    }
}

/// One forwarded binding call.
struct Call {
    /// The binding's HTTP method.
    method: Method,
    /// The URL the binding fetched (`MF-URL`).
    url: Uri,
    /// The binding's request headers (`MF-Header-*`, without the prefix).
    headers: HeaderMap,
    /// The binding's body.
    body: Body,
}

/// What a kind's handler did: the operation (for the log line) and the answer.
struct Answer {
    op: String,
    response: Response,
}

struct Shared {
    store: Arc<Store>,
    plan: Plan,
    defaults: Plan,
    token: Option<String>,
    meter: Option<Arc<Meter>>,
}

/// The remote-bindings route and the reset route over `store`. `plan` maps binding
/// names to resources (and is what a reset restores); `token`, when set, must come as
/// `?token=` (the proxy client sends no `Authorization`, but keeps the URL's query);
/// `meter`, when there is one, counts the calls.
pub fn routes(
    store: Arc<Store>,
    plan: Plan,
    token: Option<String>,
    meter: Option<Arc<Meter>>,
) -> Router {
    let shared = Arc::new(Shared {
        store,
        plan,
        defaults: crate::defaults::metacogna_plan(),
        token,
        meter: meter.clone(),
    });
    let calls = Router::new()
        .route(PATH, any(unnamed))
        .route(&format!("{PATH}/{{kind}}/{{name}}"), any(named));
    let calls = match meter {
        Some(meter) => calls.layer(axum::middleware::from_fn(move |request, next| {
            super::meter::observe(
                Some(meter.clone()),
                Surface::Binding,
                |_| None,
                request,
                next,
            )
        })),
        None => calls,
    };
    calls.route(RESET_PATH, post(reset)).with_state(shared)
}

async fn unnamed(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    serve(&shared, None, request).await
}

async fn named(
    State(shared): State<Arc<Shared>>,
    Path((kind, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    serve(&shared, Some((kind, name)), request).await
}

async fn serve(shared: &Shared, named: Option<(String, String)>, request: Request) -> Response {
    let start = Instant::now();
    if is_websocket(request.headers()) {
        // Miniflare 4 opens a capnweb session before each call; Vectorize, D1 and R2
        // never use it, so it is refused at once and quietly.
        tracing::debug!(target: "tristore::bindings", "websocket upgrade refused");
        return StatusCode::UPGRADE_REQUIRED.into_response();
    }
    let (parts, body) = request.into_parts();
    let query = query_pairs(parts.uri.query());
    let binding = header(&parts.headers, "mf-binding")
        .unwrap_or_default()
        .to_owned();
    let answer = match dispatch(shared, named, &query, &binding, parts, body).await {
        Ok((kind, resource, answer)) => {
            log(
                &binding,
                kind.name(),
                &answer.op,
                &resource,
                &answer.response,
                start,
            );
            return answer.response;
        }
        Err(response) => response,
    };
    log(&binding, "-", "-", "-", &answer, start);
    answer
}

/// Finds the kind and the resource, checks the token, and runs the call.
async fn dispatch(
    shared: &Shared,
    named: Option<(String, String)>,
    query: &HashMap<String, String>,
    binding: &str,
    parts: axum::http::request::Parts,
    body: Body,
) -> Result<(Kind, String, Answer), Response> {
    if binding.is_empty() {
        return Err(unknown_kind(
            "no MF-Binding header: this route takes calls from Miniflare's remote-bindings proxy (set remoteProxyConnectionString on a vectorize, d1Databases or r2Buckets binding)",
        ));
    }
    let url = header(&parts.headers, "mf-url")
        .and_then(|u| u.parse::<Uri>().ok())
        .ok_or_else(|| unknown_kind("the MF-URL header is missing or not a URL"))?;
    let headers = forwarded_headers(&parts.headers);
    let kind = Kind::of_call(&url, &headers).ok_or_else(|| {
        unknown_kind(&format!(
            "binding {binding} is not a Vectorize, D1 or R2 binding (MF-URL {url}); tristore serves those three kinds"
        ))
    })?;
    if let Some(token) = &shared.token {
        if !query
            .get("token")
            .is_some_and(|given| constant_time_eq(given, token))
        {
            return Err(kind.error(
                401,
                &format!("tristore runs with --api-token: add ?token=<the token> to the remoteProxyConnectionString of binding {binding}"),
            ));
        }
    }
    let resource = match &named {
        Some((path_kind, name)) => {
            if Kind::from_name(path_kind) != Some(kind) {
                return Err(kind.error(
                    400,
                    &format!(
                        "binding {binding} is a {} binding but its URL says {path_kind}: use .../remote-bindings/{}/<name>",
                        kind.name(),
                        kind.name()
                    ),
                ));
            }
            name.clone()
        }
        None => resolve(shared, kind, binding, query).ok_or_else(|| {
            kind.error(
                404,
                &format!(
                    "binding {binding} names no {what}: add ?{binding}=<{what} name> to its remoteProxyConnectionString, use .../remote-bindings/{kind}/<{what} name>, or give it a {section} entry with \"binding\": \"{binding}\" in the --config file",
                    what = what(kind),
                    kind = kind.name(),
                    section = section(kind),
                ),
            )
        })?,
    };
    let call = Call {
        method: parts.method,
        url,
        headers,
        body,
    };
    let store = shared.store.clone();
    let meter = shared.meter.clone();
    let mut answer = match kind {
        Kind::Vectorize => vectorize::handle(store, resource.clone(), call, meter).await,
        Kind::D1 => d1::handle(store, resource.clone(), call, meter).await,
        Kind::R2 => r2::handle(store, resource.clone(), call, meter).await,
    };
    let operation = Operation {
        api: match kind {
            Kind::Vectorize => Api::Vectorize,
            Kind::D1 => Api::D1,
            Kind::R2 => Api::R2,
        },
        name: match kind {
            Kind::R2 => r2::s3_name(&answer.op),
            Kind::D1 => Operation::known(&answer.op, d1::OPERATIONS),
            Kind::Vectorize => Operation::known(&answer.op, vectorize::OPERATIONS),
        },
        resource: Some(resource.clone()),
    };
    answer.response.extensions_mut().insert(operation);
    Ok((kind, resource, answer))
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Vectorize => "index",
        Kind::D1 => "database",
        Kind::R2 => "bucket",
    }
}

fn section(kind: Kind) -> &'static str {
    match kind {
        Kind::Vectorize => "vectorize",
        Kind::D1 => "d1_databases",
        Kind::R2 => "r2_buckets",
    }
}

/// The resource `binding` names when the path does not say.
fn resolve(
    shared: &Shared,
    kind: Kind,
    binding: &str,
    query: &HashMap<String, String>,
) -> Option<String> {
    if let Some(name) = query.get(binding) {
        return Some(name.clone());
    }
    let lookup = |plan: &Plan| match kind {
        Kind::Vectorize => plan.index_for(binding).map(str::to_owned),
        Kind::D1 => plan.database_for(binding).map(str::to_owned),
        Kind::R2 => plan.bucket_for(binding).map(str::to_owned),
    };
    lookup(&shared.plan).or_else(|| lookup(&shared.defaults))
}

/// A failure before the kind is known, in a shape all three bindings read: Vectorize
/// takes `{code, error}`, D1 `{success: false, error}`, R2 the `cf-r2-error` header.
fn unknown_kind(message: &str) -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": 40000, "success": false, "error": message})),
    )
        .into_response();
    if let Some(v) = r2::error_header(r2::INVALID_ARGUMENT, message) {
        response.headers_mut().insert(r2::ERROR, v);
    }
    response
}

fn log(binding: &str, kind: &str, op: &str, resource: &str, response: &Response, start: Instant) {
    tracing::info!(
        target: "tristore::bindings",
        binding,
        kind,
        op,
        resource,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "binding call"
    );
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The binding's own headers, from `MF-Header-<name>`.
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if let Some(original) = name.as_str().strip_prefix("mf-header-") {
            if let Ok(name) = HeaderName::from_bytes(original.as_bytes()) {
                out.append(name, value.clone());
            }
        }
    }
    out
}

/// `a=1&b=x%20y` as a map (the last value of a repeated name wins).
fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Equality that takes as long whatever the position of the first difference.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `POST /cdn-cgi/tristore/reset`: what a test suite calls between runs or files.
async fn reset(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let start = Instant::now();
    if let Some(token) = &shared.token {
        let bearer = header(request.headers(), "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let given = bearer.or_else(|| query_pairs(request.uri().query()).remove("token"));
        if !given.is_some_and(|g| constant_time_eq(&g, token)) {
            return ApiError::new(
                403,
                10000,
                "Authentication error: send the --api-token as a bearer token or ?token=",
            )
            .into_response();
        }
    }
    let (store, plan) = (shared.store.clone(), shared.plan.clone());
    let response = match blocking(move || Ok(plan.reset(&store)?)).await {
        Ok(done) => ok(done),
        Err(e) => e.into_response(),
    };
    tracing::info!(
        target: "tristore::http",
        method = "POST",
        path = RESET_PATH,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// A body of at most `limit` bytes; a longer or unreadable one is an error saying so.
async fn json_bytes(body: Body, limit: usize) -> Result<axum::body::Bytes, String> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        format!("the request body could not be read ({e}); at most {limit} bytes are accepted")
    })
}
