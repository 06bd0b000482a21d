//! R2's S3-compatible API, on the emulator's S3 port.
//!
//! Every request is SigV4-verified (header or presigned; anonymous requests are
//! refused), addressed path-style (`/<bucket>/<key>`) or virtual-host style
//! (`<bucket>.localhost`, `<bucket>.<account>.r2.cloudflarestorage.com`, or any host
//! whose first label names an existing bucket), then dispatched to the R2 store.
//! Operations R2 does not offer answer 501 `NotImplemented`, as R2 does. CORS
//! preflights are the exception to signing: browsers send them without credentials.

pub mod body;
mod buckets;
pub mod checksum;
pub mod chunked;
pub mod cors;
pub mod error;
mod headers;
pub mod lifecycle;
mod multipart;
mod objects;
pub mod xml;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::ORIGIN;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use percent_encoding::percent_decode_str;

use error::S3Error;

use super::meter::{self, Meter, Operation as MeteredOperation, Surface};
use crate::r2::presign::{parse_query, Credentials, SignedRequest, Verified};
use crate::r2::R2Bucket;
use crate::Store;

/// The key pair the emulator accepts when none is configured (printed at start).
pub const DEFAULT_ACCESS_KEY_ID: &str = "tristore";
/// See [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "tristore-secret";

struct S3State {
    store: Arc<Store>,
    credentials: Credentials,
    meter: Option<Arc<Meter>>,
}

/// The S3 API over `store`, accepting requests signed with `credentials`, counted by
/// `meter` when there is one.
pub fn router(store: Arc<Store>, credentials: Credentials, meter: Option<Arc<Meter>>) -> Router {
    let state = Arc::new(S3State {
        store,
        credentials,
        meter: meter.clone(),
    });
    Router::new()
        .fallback(handle)
        .layer(axum::middleware::from_fn(move |request, next| {
            meter::observe(meter.clone(), Surface::S3, |_| None, request, next)
        }))
        .with_state(state)
}

async fn handle(State(state): State<Arc<S3State>>, request: Request) -> Response {
    let method = request.method().clone();
    let origin = request.headers().get(ORIGIN).cloned();
    let (parts, body) = request.into_parts();
    let target = address(&state.store, &host(&parts), parts.uri.path()).await;
    let bucket = target.as_ref().ok().and_then(|(b, _)| b.clone());
    let outcome = match target {
        Ok((bucket, _)) if method == Method::OPTIONS => {
            cors::preflight(&state.store, bucket.as_deref(), &parts.headers).await
        }
        Ok((bucket, key)) => dispatch(&state, parts, body, bucket, key).await,
        Err(e) => Err(e),
    };
    let mut response = outcome.unwrap_or_else(IntoResponse::into_response);
    if let (Some(origin), Some(bucket)) = (&origin, &bucket) {
        if method != Method::OPTIONS {
            cors::decorate(&state.store, bucket, origin, &method, &mut response).await;
        }
    }
    if method == Method::HEAD {
        // HEAD answers carry the status and headers only, errors included.
        *response.body_mut() = Body::empty();
    }
    response
}

/// One authenticated request, addressed.
pub(crate) struct Ctx {
    store: Arc<Store>,
    method: Method,
    bucket: Option<String>,
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    verified: Verified,
}

impl Ctx {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn bucket_name(&self) -> &str {
        self.bucket.as_deref().unwrap_or_default()
    }

    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// The addressed bucket's handle (blocking: reads the catalog).
    fn open_bucket(store: &Store, name: &str) -> Result<R2Bucket, S3Error> {
        store
            .r2()
            .bucket(name)
            .map_err(|e| S3Error::from(e).with("BucketName", name))
    }
}

/// Runs catalog work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, S3Error> + Send + 'static,
) -> Result<T, S3Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| S3Error::internal(format!("the request task failed: {e}")))?
}

fn host(parts: &Parts) -> String {
    parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(parts.uri.host())
        .unwrap_or("")
        .to_owned()
}

async fn dispatch(
    state: &S3State,
    parts: Parts,
    body: Body,
    bucket: Option<String>,
    key: Option<String>,
) -> Result<Response, S3Error> {
    let raw_query = parts.uri.query().unwrap_or("");
    let header_text: Vec<(&str, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), headers::text(v)))
        .collect();
    let header_pairs: Vec<(&str, &str)> =
        header_text.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let creds = &state.credentials;
    let verified = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: raw_query,
        headers: &header_pairs,
    }
    .verify(
        |id| (id == creds.access_key_id).then(|| creds.secret_access_key.clone()),
        SystemTime::now(),
    )?;
    let query = parse_query(raw_query);
    let ctx = Ctx {
        store: state.store.clone(),
        method: parts.method,
        bucket,
        key,
        query,
        headers: parts.headers,
        verified,
    };
    route(ctx, state.meter.as_deref(), body).await
}

/// The bucket and key a request addresses.
async fn address(
    store: &Arc<Store>,
    host: &str,
    raw_path: &str,
) -> Result<(Option<String>, Option<String>), S3Error> {
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| S3Error::invalid_argument("The path is not UTF-8 once decoded"))
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    if let Some(bucket) = virtual_host_bucket(store, host).await {
        return Ok((Some(bucket), non_empty(decode(path)?)));
    }
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    Ok((non_empty(decode(bucket)?), non_empty(decode(key)?)))
}

async fn virtual_host_bucket(store: &Arc<Store>, host: &str) -> Option<String> {
    let name = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    if name.parse::<IpAddr>().is_ok() || name.starts_with('[') || !name.contains('.') {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    if rest == "localhost" || rest.ends_with(".r2.cloudflarestorage.com") {
        return Some(first.to_owned());
    }
    let (store, first) = (store.clone(), first.to_owned());
    blocking(move || Ok(store.r2().bucket(&first).is_ok().then_some(first)))
        .await
        .ok()
        .flatten()
}

/// Subresources R2 does not offer, and the operation name its 501 answer uses.
fn unsupported(ctx: &Ctx) -> Option<String> {
    const BUCKET: &[(&str, &str)] = &[
        ("acl", "Acl"),
        ("policy", "Policy"),
        ("policyStatus", "PolicyStatus"),
        ("tagging", "Tagging"),
        ("website", "Website"),
        ("logging", "Logging"),
        ("replication", "Replication"),
        ("object-lock", "ObjectLockConfiguration"),
        ("notification", "NotificationConfiguration"),
        ("accelerate", "AccelerateConfiguration"),
        ("requestPayment", "RequestPayment"),
        ("analytics", "AnalyticsConfiguration"),
        ("metrics", "MetricsConfiguration"),
        ("inventory", "InventoryConfiguration"),
        ("intelligent-tiering", "IntelligentTieringConfiguration"),
        ("ownershipControls", "OwnershipControls"),
        ("publicAccessBlock", "PublicAccessBlock"),
    ];
    const OBJECT: &[(&str, &str)] = &[
        ("acl", "Acl"),
        ("tagging", "Tagging"),
        ("retention", "Retention"),
        ("legal-hold", "LegalHold"),
        ("torrent", "Torrent"),
        ("restore", "Restore"),
        ("select", "Content"),
        ("attributes", "Attributes"),
    ];
    let verb = match ctx.method {
        Method::GET | Method::HEAD => "Get",
        Method::PUT => "Put",
        Method::DELETE => "Delete",
        _ => "Post",
    };
    if ctx.key.is_none() && ctx.has("versions") {
        return Some("ListObjectVersions".into());
    }
    // GetBucketVersioning and GetBucketEncryption have fixed answers; changing them is
    // not offered.
    for (q, name) in [("versioning", "Versioning"), ("encryption", "Encryption")] {
        if ctx.key.is_none() && ctx.has(q) && ctx.method != Method::GET {
            return Some(format!("{verb}Bucket{name}"));
        }
    }
    let (table, level) = if ctx.key.is_some() {
        (OBJECT, "Object")
    } else {
        (BUCKET, "Bucket")
    };
    table
        .iter()
        .find(|(q, _)| ctx.has(q))
        .map(|(_, name)| match *name {
            "Content" => "SelectObjectContent".to_owned(),
            "Restore" => "RestoreObject".to_owned(),
            _ => format!("{verb}{level}{name}"),
        })
}

/// The S3 operations R2 offers, named as S3 names them (R2's pricing page classes
/// operations by these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    ListBuckets,
    /// GET, PUT or DELETE `?cors`.
    BucketCors,
    /// GET, PUT or DELETE `?lifecycle`.
    BucketLifecycle,
    GetBucketEncryption,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    DeleteObjects,
    GetBucketLocation,
    GetBucketVersioning,
    ListMultipartUploads,
    ListObjectsV2,
    ListObjects,
    UploadPartCopy,
    UploadPart,
    CopyObject,
    PutObject,
    ListParts,
    GetObject,
    HeadObject,
    AbortMultipartUpload,
    DeleteObject,
    CreateMultipartUpload,
    CompleteMultipartUpload,
}

impl Operation {
    /// The operation `ctx` asks for.
    fn of(ctx: &Ctx) -> Result<Operation, S3Error> {
        use Operation::*;
        if let Some(operation) = unsupported(ctx) {
            return Err(S3Error::not_implemented(&operation));
        }
        let copy = ctx.header("x-amz-copy-source").is_some();
        Ok(match (ctx.bucket.is_some(), ctx.key.is_some(), &ctx.method) {
            (false, _, &Method::GET) => ListBuckets,
            (false, _, _) => return Err(S3Error::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource. Name a bucket in the path or the host.",
            )),
            (true, false, _) if ctx.has("cors") => BucketCors,
            (true, false, _) if ctx.has("lifecycle") => BucketLifecycle,
            (true, false, &Method::GET) if ctx.has("encryption") => GetBucketEncryption,
            (true, false, &Method::PUT) => CreateBucket,
            (true, false, &Method::DELETE) => DeleteBucket,
            (true, false, &Method::HEAD) => HeadBucket,
            (true, false, &Method::POST) if ctx.has("delete") => DeleteObjects,
            (true, false, &Method::GET) if ctx.has("location") => GetBucketLocation,
            (true, false, &Method::GET) if ctx.has("versioning") => GetBucketVersioning,
            (true, false, &Method::GET) if ctx.has("uploads") => ListMultipartUploads,
            (true, false, &Method::GET) if ctx.q("list-type") == Some("2") => ListObjectsV2,
            (true, false, &Method::GET) => ListObjects,
            (true, true, &Method::PUT) if ctx.has("uploadId") && copy => UploadPartCopy,
            (true, true, &Method::PUT) if ctx.has("uploadId") => UploadPart,
            (true, true, &Method::PUT) if copy => CopyObject,
            (true, true, &Method::PUT) => PutObject,
            (true, true, &Method::GET) if ctx.has("uploadId") => ListParts,
            (true, true, &Method::GET) => GetObject,
            (true, true, &Method::HEAD) => HeadObject,
            (true, true, &Method::DELETE) if ctx.has("uploadId") => AbortMultipartUpload,
            (true, true, &Method::DELETE) => DeleteObject,
            (true, true, &Method::POST) if ctx.has("uploads") => CreateMultipartUpload,
            (true, true, &Method::POST) if ctx.has("uploadId") => CompleteMultipartUpload,
            (true, true, &Method::POST) => return Err(S3Error::not_implemented("PostObject")),
            (true, _, other) => return Err(S3Error::new(
                405,
                "MethodNotAllowed",
                format!("The specified method {other} is not allowed against this resource."),
            )),
        })
    }

    /// S3's name; the configuration subresources by the request's method.
    fn name(self, method: &Method) -> &'static str {
        let by_method = |get, put, delete| match *method {
            Method::GET | Method::HEAD => get,
            Method::DELETE => delete,
            _ => put,
        };
        match self {
            Operation::BucketCors => {
                by_method("GetBucketCors", "PutBucketCors", "DeleteBucketCors")
            }
            Operation::BucketLifecycle => by_method(
                "GetBucketLifecycleConfiguration",
                "PutBucketLifecycleConfiguration",
                "DeleteBucketLifecycle",
            ),
            Operation::ListBuckets => "ListBuckets",
            Operation::GetBucketEncryption => "GetBucketEncryption",
            Operation::CreateBucket => "CreateBucket",
            Operation::DeleteBucket => "DeleteBucket",
            Operation::HeadBucket => "HeadBucket",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::GetBucketLocation => "GetBucketLocation",
            Operation::GetBucketVersioning => "GetBucketVersioning",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::ListObjects => "ListObjects",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::UploadPart => "UploadPart",
            Operation::CopyObject => "CopyObject",
            Operation::PutObject => "PutObject",
            Operation::ListParts => "ListParts",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::DeleteObject => "DeleteObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
        }
    }

    async fn run(self, ctx: Ctx, body: Body) -> Result<Response, S3Error> {
        use Operation::*;
        match self {
            ListBuckets => buckets::list_buckets(ctx).await,
            BucketCors => cors::configure(ctx, body).await,
            BucketLifecycle => lifecycle::configure(ctx, body).await,
            GetBucketEncryption => buckets::encryption(ctx).await,
            CreateBucket => buckets::create_bucket(ctx, body).await,
            DeleteBucket => buckets::delete_bucket(ctx).await,
            HeadBucket => buckets::head_bucket(ctx).await,
            DeleteObjects => objects::delete_objects(ctx, body).await,
            GetBucketLocation => buckets::location(ctx).await,
            GetBucketVersioning => buckets::versioning(ctx).await,
            ListMultipartUploads => multipart::list_uploads(ctx).await,
            ListObjectsV2 => buckets::list_objects(ctx, true).await,
            ListObjects => buckets::list_objects(ctx, false).await,
            UploadPartCopy => multipart::upload_part_copy(ctx).await,
            UploadPart => multipart::upload_part(ctx, body).await,
            CopyObject => objects::copy_object(ctx).await,
            PutObject => objects::put_object(ctx, body).await,
            ListParts => multipart::list_parts(ctx).await,
            GetObject => objects::get_object(ctx, false).await,
            HeadObject => objects::get_object(ctx, true).await,
            AbortMultipartUpload => multipart::abort(ctx).await,
            DeleteObject => objects::delete_object(ctx).await,
            CreateMultipartUpload => multipart::create(ctx).await,
            CompleteMultipartUpload => multipart::complete(ctx, body).await,
        }
    }
}

/// Runs the operation a request asks for, once the free tier admits it; the answer
/// carries the operation for the meter.
async fn route(ctx: Ctx, meter: Option<&Meter>, body: Body) -> Result<Response, S3Error> {
    let operation = Operation::of(&ctx)?;
    let metered = MeteredOperation::r2(operation.name(&ctx.method), ctx.bucket.as_deref());
    let mut response = match meter.map(|m| m.admit(&metered)) {
        Some(Err(exceeded)) => {
            meter::refused(S3Error::from(meter::r2_refusal("s3", &exceeded)).into_response())
        }
        _ => operation
            .run(ctx, body)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    };
    response.extensions_mut().insert(metered);
    Ok(response)
}
