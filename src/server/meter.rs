//! Metering: every request the emulator serves is counted in Prometheus metrics
//! (`GET /metrics`) and in Cloudflare's billing units ([`crate::usage`]), and refused
//! past a free-tier allowance under `--free-tier enforce`.
//!
//! Each surface's middleware ([`layer`]) times the request, counts its body bytes, and
//! reads what the handler served from the response's [`Operation`] extension (the REST
//! routes need none: their route names the operation) and its [`Units`] extension
//! (rows a D1 query touched, dimensions a Vectorize query searched).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::envelope::ApiError;
use crate::r2::R2ErrorKind;
use crate::usage::{Allowance, Exceeded, R2Class, Units, Usage};
use crate::Store;

/// The service an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// D1 databases and queries.
    D1,
    /// Vectorize indexes and vectors.
    Vectorize,
    /// R2 buckets and objects.
    R2,
    /// The emulator's own routes (metrics, usage, transfer files).
    Other,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::D1 => "d1",
            Api::Vectorize => "vectorize",
            Api::R2 => "r2",
            Api::Other => "other",
        }
    }
}

/// Where a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Cloudflare's v4 REST API.
    Rest,
    /// R2's S3 API.
    S3,
    /// Miniflare's remote-bindings protocol (a Worker's `env.*`).
    Binding,
}

impl Surface {
    fn name(self) -> &'static str {
        match self {
            Surface::Rest => "rest",
            Surface::S3 => "s3",
            Surface::Binding => "binding",
        }
    }
}

/// What a request did: the handler puts it in the response's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The service.
    pub api: Api,
    /// Its name (`PutObject`, `query`, `POST d1/database/{db}/query`), from a bounded
    /// set: it is a metric label.
    pub name: &'static str,
    /// The database, index or bucket, when there is one.
    pub resource: Option<String>,
}

impl Operation {
    /// An R2 operation, named as S3 names it (which is how R2's pricing page classes it).
    pub fn r2(name: &'static str, bucket: Option<&str>) -> Operation {
        Operation {
            api: Api::R2,
            name,
            resource: bucket.map(str::to_owned),
        }
    }

    /// The allowances this operation counts against, which `--free-tier enforce`
    /// checks before it runs.
    pub fn allowances(&self) -> &'static [Allowance] {
        const D1: &[Allowance] = &[Allowance::D1RowsRead, Allowance::D1RowsWritten];
        match self.api {
            // Once a daily row allowance is used up, D1 refuses every query.
            Api::D1 if self.runs_sql() => D1,
            Api::Vectorize if self.name.ends_with("query") => {
                &[Allowance::VectorizeQueriedDimensions]
            }
            Api::R2 => match R2Class::of(self.name) {
                Some(R2Class::A) => &[Allowance::R2ClassA],
                Some(R2Class::B) => &[Allowance::R2ClassB],
                _ => &[],
            },
            _ => &[],
        }
    }

    /// `name` if it is one of `names`, else `unknown`: a label never takes a client's
    /// arbitrary text.
    pub fn known(name: &str, names: &[&'static str]) -> &'static str {
        names
            .iter()
            .find(|n| **n == name)
            .copied()
            .unwrap_or("unknown")
    }

    fn runs_sql(&self) -> bool {
        ["query", "raw", "execute", "import", "export"]
            .iter()
            .any(|op| self.name.ends_with(op))
    }
}

/// Label values a family keeps apart; past this many, further databases, indexes or
/// buckets share the label `_other`, so that a scrape stays small.
const MAX_RESOURCES: usize = 100;

/// A database, index or bucket name as a label value: shared, so that counting a
/// request allocates nothing.
type Resource = Arc<String>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    surface: &'static str,
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    api: &'static str,
    surface: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Database {
    database: Resource,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Index {
    index: Resource,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Bucket {
    bucket: Resource,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketClass {
    bucket: Resource,
    class: &'static str,
}

/// The emulator's counters: Prometheus metrics and the usage ledger.
pub struct Meter {
    usage: Arc<Usage>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    d1_rows_read: Family<Database, Counter>,
    d1_rows_written: Family<Database, Counter>,
    queried_dimensions: Family<Index, Counter>,
    stored_dimensions: Family<Index, Gauge>,
    r2_operations: Family<BucketClass, Counter>,
    r2_bytes_in: Family<Bucket, Counter>,
    r2_bytes_out: Family<Bucket, Counter>,
    /// Label values in use, by name.
    resources: RwLock<HashMap<String, Resource>>,
    /// The label past [`MAX_RESOURCES`], and the one for no resource.
    other: Resource,
    none: Resource,
}

impl Meter {
    /// Metrics registered, counting into `usage`.
    pub fn new(usage: Arc<Usage>) -> Meter {
        let mut registry = Registry::with_prefix("tristore");
        let requests = Family::<RequestLabels, Counter>::default();
        // 50 µs to about 1.6 s, doubling.
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16))) as fn() -> Histogram,
        );
        let (d1_rows_read, d1_rows_written) = (Family::default(), Family::default());
        let (queried_dimensions, stored_dimensions) = (Family::default(), Family::default());
        let r2_operations = Family::default();
        let (r2_bytes_in, r2_bytes_out) = (Family::default(), Family::default());
        registry.register(
            "requests",
            "Requests served, by service, surface, operation and HTTP status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer's headers",
            latency.clone(),
        );
        registry.register(
            "d1_rows_read",
            "D1 rows read, as meta.rows_read reports them",
            d1_rows_read.clone(),
        );
        registry.register(
            "d1_rows_written",
            "D1 rows written, as meta.rows_written reports them",
            d1_rows_written.clone(),
        );
        registry.register(
            "vectorize_queried_dimensions",
            "Vectorize queried vector dimensions (the index's dimensions per query)",
            queried_dimensions.clone(),
        );
        registry.register(
            "vectorize_stored_dimensions",
            "Vectorize stored vector dimensions (vectors times dimensions), at scrape time",
            stored_dimensions.clone(),
        );
        registry.register(
            "r2_operations",
            "R2 operations by bucket and pricing class (a, b, free)",
            r2_operations.clone(),
        );
        registry.register(
            "r2_received_bytes",
            "Request body bytes received by R2 operations",
            r2_bytes_in.clone(),
        );
        registry.register(
            "r2_sent_bytes",
            "Response body bytes sent by R2 operations",
            r2_bytes_out.clone(),
        );
        Meter {
            usage,
            registry,
            requests,
            latency,
            d1_rows_read,
            d1_rows_written,
            queried_dimensions,
            stored_dimensions,
            r2_operations,
            r2_bytes_in,
            r2_bytes_out,
            resources: RwLock::new(HashMap::new()),
            other: Arc::new("_other".into()),
            none: Arc::new("_none".into()),
        }
    }

    /// The usage ledger.
    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// Refuses `operation` past an allowance it counts against (`--free-tier enforce`).
    pub fn admit(&self, operation: &Operation) -> Result<(), crate::usage::Exceeded> {
        self.usage.admit(operation.allowances())
    }

    /// A resource label, or `_other` once [`MAX_RESOURCES`] are in use.
    fn label(&self, resource: Option<&str>) -> Resource {
        let Some(name) = resource else {
            return self.none.clone();
        };
        let known = self.resources.read().unwrap_or_else(|p| p.into_inner());
        if let Some(label) = known.get(name) {
            return label.clone();
        }
        drop(known);
        let mut seen = self.resources.write().unwrap_or_else(|p| p.into_inner());
        if let Some(label) = seen.get(name) {
            return label.clone();
        }
        if seen.len() >= MAX_RESOURCES {
            return self.other.clone();
        }
        let label = Arc::new(name.to_owned());
        seen.insert(name.to_owned(), label.clone());
        label
    }

    fn observe(
        &self,
        surface: Surface,
        operation: &Operation,
        status: u16,
        elapsed: Duration,
        units: Units,
        received: u64,
    ) {
        let (api, name) = (operation.api.name(), operation.name);
        self.requests
            .get_or_create(&RequestLabels {
                api,
                surface: surface.name(),
                operation: name,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                api,
                surface: surface.name(),
                operation: name,
            })
            .observe(elapsed.as_secs_f64());
        let resource = self.label(operation.resource.as_deref());
        if units.d1_rows_read > 0 || units.d1_rows_written > 0 {
            let database = Database {
                database: resource.clone(),
            };
            self.d1_rows_read
                .get_or_create(&database)
                .inc_by(units.d1_rows_read);
            self.d1_rows_written
                .get_or_create(&database)
                .inc_by(units.d1_rows_written);
        }
        if units.vectorize_queried_dimensions > 0 {
            self.queried_dimensions
                .get_or_create(&Index {
                    index: resource.clone(),
                })
                .inc_by(units.vectorize_queried_dimensions);
        }
        if let Some(class) = units.r2_class {
            let class = match class {
                R2Class::A => "a",
                R2Class::B => "b",
                R2Class::Free => "free",
            };
            self.r2_operations
                .get_or_create(&BucketClass {
                    bucket: resource.clone(),
                    class,
                })
                .inc();
            self.r2_bytes_in
                .get_or_create(&Bucket { bucket: resource })
                .inc_by(received);
        }
        self.usage.record(&units);
    }

    /// The metrics in Prometheus's text format (OpenMetrics 1.0), with the stored
    /// dimensions of every index measured now.
    pub fn scrape(&self, store: &Store) -> String {
        self.stored_dimensions.clear();
        if let Ok(indexes) = store.vectorize().list() {
            for description in indexes {
                if let Ok(index) = store.vectorize().index(&description.name) {
                    let dims = index.describe().vector_count * description.config.dimensions;
                    self.stored_dimensions
                        .get_or_create(&Index {
                            index: self.label(Some(&description.name)),
                        })
                        .set(dims as i64);
                }
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The bytes of a response body: its length when known (a HEAD answer's is 0),
    /// else counted as they are sent.
    fn count_sent(&self, response: Response, bucket: Resource) -> Response {
        let counter = self.r2_bytes_out.get_or_create_owned(&Bucket { bucket });
        let known = response.body().size_hint().exact().or_else(|| {
            response
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)?
                .to_str()
                .ok()?
                .parse()
                .ok()
        });
        if let Some(length) = known {
            counter.inc_by(length);
            return response;
        }
        response.map(|body| {
            Counted::body(body, move |n| {
                counter.inc_by(n);
            })
        })
    }
}

/// A body that reports the length of each data frame it passes on, and keeps the
/// size hint (hyper sends a `Content-Length` only for bodies whose size is known).
struct Counted<F> {
    inner: Body,
    count: F,
}

impl<F: FnMut(u64) + Send + Unpin + 'static> Counted<F> {
    fn body(inner: Body, count: F) -> Body {
        Body::new(Counted { inner, count })
    }
}

impl<F: FnMut(u64) + Unpin> http_body::Body for Counted<F> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                (self.count)(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The one middleware of each surface: logs the request (REST and S3; the bindings
/// log their own richer line) and, with a meter, counts it. `describe` names the
/// operation from the request where the route alone does (REST); elsewhere the
/// handler's [`Operation`] extension does. A request whose answer carries no operation
/// (refused for its credentials, or unroutable) is logged but not counted.
pub async fn observe(
    meter: Option<Arc<Meter>>,
    surface: Surface,
    describe: fn(&Request) -> Option<Operation>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let Some(meter) = meter else {
        let response = next.run(request).await;
        log(surface, &method, &path, &response, start);
        return response;
    };
    let described = describe(&request);
    // Only R2 counts the bytes it receives, and an empty body has none to count.
    let bodied =
        !request.body().is_end_stream() && described.as_ref().is_none_or(|o| o.api == Api::R2);
    let received = Arc::new(AtomicU64::new(0));
    let mut request = match bodied {
        true => {
            let counted = received.clone();
            request.map(|body| {
                Counted::body(body, move |n| {
                    counted.fetch_add(n, Ordering::Relaxed);
                })
            })
        }
        false => request,
    };
    if let Some(operation) = &described {
        request.extensions_mut().insert(operation.clone());
    }
    let mut response = next.run(request).await;
    log(surface, &method, &path, &response, start);
    if response.extensions().get::<Unauthenticated>().is_some() {
        return response;
    }
    if let Some(operation) = described {
        response.extensions_mut().get_or_insert(operation);
    }
    let units = response.extensions_mut().remove::<Units>();
    finish(
        &meter,
        surface,
        response,
        start,
        units,
        received.load(Ordering::Relaxed),
    )
}

/// Marks an answer refused for its credentials: not counted, as Cloudflare does not
/// bill those.
#[derive(Debug, Clone, Copy)]
pub struct Unauthenticated;

fn log(
    surface: Surface,
    method: &axum::http::Method,
    path: &str,
    response: &Response,
    start: Instant,
) {
    if surface == Surface::Binding {
        return;
    }
    tracing::info!(
        target: "tristore::http",
        %method,
        path,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
}

/// Under `--free-tier enforce`, refuses a REST request past an allowance its operation
/// (named by [`observe`]) counts against. It runs after the token check, so that an
/// unauthenticated request gets the authentication error.
pub async fn admit_rest(meter: Arc<Meter>, request: Request, next: Next) -> Response {
    if let Some(operation) = request.extensions().get::<Operation>() {
        if let Err(exceeded) = meter.admit(operation) {
            return refused(rest_refusal(operation, &exceeded));
        }
    }
    next.run(request).await
}

/// Counts an answered request that carries its [`Operation`].
fn finish(
    meter: &Meter,
    surface: Surface,
    mut response: Response,
    start: Instant,
    units: Option<Units>,
    received: u64,
) -> Response {
    let Some(operation) = response.extensions_mut().remove::<Operation>() else {
        return response;
    };
    // An R2 operation costs its class, unless it was refused (`refused` says so with
    // units of its own).
    let units = match units {
        Some(units) => units,
        None if operation.api == Api::R2 => Units {
            r2_class: R2Class::of(operation.name),
            ..Units::default()
        },
        None => Units::default(),
    };
    meter.observe(
        surface,
        &operation,
        response.status().as_u16(),
        start.elapsed(),
        units,
        received,
    );
    if operation.api == Api::R2 {
        let bucket = meter.label(operation.resource.as_deref());
        response = meter.count_sent(response, bucket);
    }
    response
}

/// Marks a refusal, so that it is counted as a request but not in billing units.
pub fn refused(mut response: Response) -> Response {
    response.extensions_mut().insert(Units::default());
    response
}

/// A refusal past an allowance, as R2 reports a plan's limit (S3 port and binding).
pub fn r2_refusal(op: &'static str, exceeded: &Exceeded) -> crate::r2::R2Error {
    crate::r2::R2Error::new(op, R2ErrorKind::NotEntitled, exceeded.message())
}

/// A refusal on the REST API: D1's quota errors are code 7500 like its other query
/// errors; R2's is `NotEntitled`; Vectorize's is tristore's choice.
fn rest_refusal(operation: &Operation, exceeded: &Exceeded) -> Response {
    let (status, code) = match operation.api {
        Api::D1 => (400, 7500),
        Api::Vectorize => (403, crate::vectorize::error::code::FREE_TIER),
        _ => (403, R2ErrorKind::NotEntitled.code()),
    };
    ApiError::new(status, code, exceeded.message()).into_response()
}

/// The REST API's operations, named after their route (`POST d1/database/{db}/query`);
/// R2's bucket routes by their S3 names, so that they are classed.
pub fn rest_operation(request: &Request) -> Option<Operation> {
    let route = request.extensions().get::<MatchedPath>()?.as_str();
    let method = request.method().as_str();
    let Some(under_account) = route.strip_prefix("/client/v4/accounts/{account}/") else {
        return Some(Operation {
            api: Api::Other,
            name: route_name(method, route),
            resource: None,
        });
    };
    let api = match under_account.split('/').next() {
        Some("d1") => Api::D1,
        Some("vectorize") => Api::Vectorize,
        Some("r2") => Api::R2,
        _ => Api::Other,
    };
    // The resource is the path's segment where the route has its first parameter
    // after the account.
    let resource = route
        .split('/')
        .enumerate()
        .skip(5)
        .find(|(_, segment)| segment.starts_with('{'))
        .and_then(|(i, _)| request.uri().path().split('/').nth(i))
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        });
    let name = match (api, method, resource.is_some()) {
        (Api::R2, "GET", false) => "ListBuckets",
        (Api::R2, "POST", false) => "PutBucket",
        (Api::R2, "GET", true) => "HeadBucket",
        (Api::R2, "DELETE", true) => "DeleteBucket",
        _ => route_name(method, under_account),
    };
    Some(Operation {
        api,
        name,
        resource,
    })
}

/// `METHOD route`, made once per route: the routes are a fixed table, so the names
/// kept for the life of the process are bounded by it.
fn route_name(method: &str, route: &str) -> &'static str {
    type Names = HashMap<String, Vec<(String, &'static str)>>;
    static NAMES: std::sync::OnceLock<RwLock<Names>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let find = |names: &Names| {
        let methods = names.get(route)?;
        methods.iter().find(|(m, _)| m == method).map(|(_, n)| *n)
    };
    if let Some(name) = find(&names.read().unwrap_or_else(|p| p.into_inner())) {
        return name;
    }
    let mut names = names.write().unwrap_or_else(|p| p.into_inner());
    if let Some(name) = find(&names) {
        return name;
    }
    let name: &'static str = Box::leak(format!("{method} {route}").into_boxed_str());
    names
        .entry(route.to_owned())
        .or_default()
        .push((method.to_owned(), name));
    name
}
