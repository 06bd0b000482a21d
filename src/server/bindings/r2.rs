//! R2's binding protocol: workerd's `R2Bucket` sends reads (`head`, `get`, `list`) as a
//! `GET` with the request JSON in `cf-r2-request`, and writes (`put`, `delete`, the
//! multipart family) as a `PUT` whose body is the request JSON (`cf-r2-metadata-size`
//! bytes) followed by the value. Answers put the object's metadata JSON first, its
//! length in `cf-r2-metadata-size`, then the bytes; failures carry
//! `cf-r2-error: {"version":1,"v4code":n,"message":...}`, which the Worker sees as
//! `<op>: <message> (<n>)`, except a missing key (404, 10007) and a failed
//! precondition (412, 10031), which `head`/`get`/`put` return as `null` or as an object
//! without a body. The schema is workerd's `r2-api.capnp`, whose JSON codec writes
//! 64-bit numbers as strings.

use std::io::{Cursor, Read};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::{Answer, Call};
use crate::r2::{
    BlobReader, EncryptionKey, EtagCondition, ExpectedChecksum, HttpMetadata, R2Bucket,
    R2Conditional, R2Error, R2ErrorKind, R2GetOptions, R2ListOptions, R2MultipartOptions, R2Object,
    R2PutOptions, R2Range, R2UploadedPart,
};
use crate::server::meter::{self, Meter, Operation};
use crate::server::stream;
use crate::Store;

/// Header of a read's request JSON.
pub(super) const REQUEST: &str = "cf-r2-request";
/// Header giving the length of the JSON that starts a write's body or an answer's.
pub(super) const METADATA_SIZE: &str = "cf-r2-metadata-size";
/// Header of a failure.
pub(super) const ERROR: &str = "cf-r2-error";
/// `NoSuchBucket`.
pub(super) const NO_SUCH_BUCKET: u32 = 10006;
/// `InvalidArgument`.
pub(super) const INVALID_ARGUMENT: u32 = 10029;

/// workerd refuses metadata longer than this; so does tristore, before reading it.
const MAX_METADATA: usize = 1 << 20;

/// The `cf-r2-error` value for a failure; non-ASCII text is escaped, as a header needs.
pub(super) fn error_header(code: u32, message: &str) -> Option<HeaderValue> {
    let text = json!({"version": 1, "v4code": code, "message": message}).to_string();
    HeaderValue::from_str(&ascii(&text)).ok()
}

/// A failure the Worker sees as `<op>: <message> (<code>)`.
pub(super) fn error(status: u16, code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = status.into_response();
    if let Some(v) = error_header(code, message) {
        response.headers_mut().insert(ERROR, v);
    }
    response
}

fn r2_error(e: &R2Error) -> Response {
    error(e.kind.http_status(), e.kind.code(), &e.message)
}

fn invalid(op: &'static str, message: impl Into<String>) -> R2Error {
    R2Error::new(op, R2ErrorKind::InvalidArgument, message)
}

/// JSON text with every non-ASCII character written as `\uXXXX`.
fn ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A 64-bit number, which workerd's JSON codec sends as a string.
#[derive(Debug, Clone, Copy)]
struct Int(u64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(Int(n)),
            Either::Text(t) => t
                .parse()
                .map(Int)
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a whole number"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeJson {
    offset: Option<Int>,
    length: Option<Int>,
    suffix: Option<Int>,
}

#[derive(Deserialize)]
struct Etag {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnlyIf {
    etag_matches: Option<Vec<Etag>>,
    etag_does_not_match: Option<Vec<Etag>>,
    uploaded_before: Option<Int>,
    uploaded_after: Option<Int>,
    #[serde(default)]
    seconds_granularity: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpFields {
    content_type: Option<String>,
    content_language: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    cache_control: Option<String>,
    cache_expiry: Option<Int>,
}

#[derive(Deserialize)]
struct Field {
    k: String,
    v: String,
}

#[derive(Deserialize)]
struct Part {
    etag: String,
    part: u32,
}

/// `put`'s fields (boxed: they make it the largest request by far).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Put {
    object: String,
    custom_fields: Option<Vec<Field>>,
    http_fields: Option<HttpFields>,
    only_if: Option<OnlyIf>,
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    sha384: Option<String>,
    sha512: Option<String>,
    storage_class: Option<String>,
    ssec: Option<Ssec>,
}

/// `R2SSECOptions`: the SSE-C key, as 64 hex characters.
#[derive(Deserialize)]
struct Ssec {
    key: String,
}

/// A binding request (`R2BindingRequest`).
#[derive(Deserialize)]
#[serde(
    tag = "method",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum Request {
    Head {
        object: String,
    },
    Get {
        object: String,
        range: Option<RangeJson>,
        range_header: Option<String>,
        only_if: Option<OnlyIf>,
        ssec: Option<Ssec>,
    },
    Put(Box<Put>),
    List {
        limit: Option<u32>,
        prefix: Option<String>,
        cursor: Option<String>,
        delimiter: Option<String>,
        start_after: Option<String>,
        #[serde(default)]
        include: Vec<u16>,
    },
    Delete {
        object: Option<String>,
        objects: Option<Vec<String>>,
    },
    CreateMultipartUpload {
        object: String,
        custom_fields: Option<Vec<Field>>,
        http_fields: Option<HttpFields>,
        storage_class: Option<String>,
        ssec: Option<Ssec>,
    },
    UploadPart {
        object: String,
        upload_id: String,
        part_number: u32,
        ssec: Option<Ssec>,
    },
    CompleteMultipartUpload {
        object: String,
        upload_id: String,
        parts: Vec<Part>,
    },
    AbortMultipartUpload {
        object: String,
        upload_id: String,
    },
}

impl Request {
    /// The binding method's name, which prefixes the Worker's error.
    fn op(&self) -> &'static str {
        match self {
            Request::Head { .. } => "head",
            Request::Get { .. } => "get",
            Request::Put(_) => "put",
            Request::List { .. } => "list",
            Request::Delete { .. } => "delete",
            Request::CreateMultipartUpload { .. } => "createMultipartUpload",
            Request::UploadPart { .. } => "uploadPart",
            Request::CompleteMultipartUpload { .. } => "completeMultipartUpload",
            Request::AbortMultipartUpload { .. } => "abortMultipartUpload",
        }
    }

    fn parse(json: &[u8]) -> Result<Request, R2Error> {
        serde_json::from_slice(json).map_err(|e| {
            invalid(
                "r2",
                format!("the binding request is not one tristore knows ({e}); tristore serves head, get, put, list, delete and the multipart calls"),
            )
        })
    }
}

/// What a call answers before any object bytes.
enum Outcome {
    /// 200 with this JSON and no bytes after it.
    Json(Value),
    /// 200 with no body (`delete`, `abortMultipartUpload`).
    Empty,
    /// 200 with the object's metadata and then `length` bytes of `reader`.
    Object(Value, BlobReader, u64),
    /// 412: the object without its bytes, or nothing for a write.
    PreconditionFailed(Option<Value>),
    /// 404 `NoSuchKey`, which `head` and `get` return as `null`.
    NoSuchKey,
}

/// The S3 name of a binding method (R2's pricing page classes operations by these).
pub(super) fn s3_name(op: &str) -> &'static str {
    match op {
        "head" => "HeadObject",
        "get" => "GetObject",
        "put" => "PutObject",
        "list" => "ListObjects",
        "delete" => "DeleteObject",
        "createMultipartUpload" => "CreateMultipartUpload",
        "uploadPart" => "UploadPart",
        "completeMultipartUpload" => "CompleteMultipartUpload",
        "abortMultipartUpload" => "AbortMultipartUpload",
        _ => "-",
    }
}

/// Refuses `op` past a free-tier allowance it counts against.
fn admit(meter: &Option<Arc<Meter>>, op: &'static str, bucket: &str) -> Result<(), R2Error> {
    let Some(meter) = meter else { return Ok(()) };
    meter
        .admit(&Operation::r2(s3_name(op), Some(bucket)))
        .map_err(|e| meter::r2_refusal(op, &e))
}

/// Runs one binding call on the bucket `name`, once the free tier admits it.
pub(super) async fn handle(
    store: Arc<Store>,
    name: String,
    call: Call,
    meter: Option<Arc<Meter>>,
) -> Answer {
    let Call {
        method,
        headers,
        body,
        ..
    } = call;
    let ran = match method {
        Method::GET => {
            let request = headers
                .get(REQUEST)
                .map(|v| Request::parse(v.as_bytes()))
                .unwrap_or_else(|| Err(invalid("r2", "a read needs the cf-r2-request header")));
            match request {
                Ok(request) => {
                    let op = request.op();
                    let run = move || {
                        admit(&meter, op, &name)?;
                        read(&open(&store, &name, op)?, request)
                    };
                    (op, blocking(op, run).await)
                }
                Err(e) => ("-", Err(e)),
            }
        }
        Method::PUT => write(store, name, &headers, body, meter).await,
        other => (
            "-",
            Err(invalid(
                "r2",
                format!("R2 binding calls are GET or PUT, not {other}"),
            )),
        ),
    };
    let (op, result) = ran;
    let response = match result {
        Ok(outcome) => respond(outcome).await,
        // Refused before it ran: not billed.
        Err(e) if e.kind == R2ErrorKind::NotEntitled => meter::refused(r2_error(&e)),
        Err(e) => r2_error(&e),
    };
    Answer {
        op: op.to_owned(),
        response,
    }
}

async fn blocking(
    op: &'static str,
    f: impl FnOnce() -> Result<Outcome, R2Error> + Send + 'static,
) -> Result<Outcome, R2Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(R2Error::new(op, R2ErrorKind::InternalError, e.to_string())))
}

fn open(store: &Store, name: &str, op: &'static str) -> Result<R2Bucket, R2Error> {
    store.r2().bucket(name).map_err(|mut e| {
        e.op = op;
        if e.kind == R2ErrorKind::NoSuchBucket {
            e.message = format!("The specified bucket does not exist: {name} (create it, or map the binding to one that exists)");
        }
        e
    })
}

fn read(bucket: &R2Bucket, request: Request) -> Result<Outcome, R2Error> {
    match request {
        Request::Head { object } => Ok(match bucket.head(&object)? {
            Some(o) => Outcome::Json(object_json(&o)),
            None => Outcome::NoSuchKey,
        }),
        Request::Get {
            object,
            range,
            range_header,
            only_if,
            ssec,
        } => {
            let ssec_key = ssec_key("get", ssec)?;
            let range = match (range_header, range) {
                (Some(header), _) => R2Range::from_header(&header)?,
                (None, Some(r)) => range_of(&r),
                (None, None) => None,
            };
            let options = R2GetOptions {
                only_if: only_if.map(conditional).transpose()?,
                range,
                ssec_key,
            };
            Ok(match bucket.get(&object, &options)? {
                None => Outcome::NoSuchKey,
                Some(found) => match found.body {
                    None => Outcome::PreconditionFailed(Some(object_json(&found.object))),
                    Some(reader) => {
                        let length = found.object.range.map_or(found.object.size, |r| r.length);
                        Outcome::Object(object_json(&found.object), reader, length)
                    }
                },
            })
        }
        Request::List {
            limit,
            prefix,
            cursor,
            delimiter,
            start_after,
            include,
        } => {
            let page = bucket.list(&R2ListOptions {
                limit,
                prefix,
                cursor,
                delimiter,
                start_after,
                include_http_metadata: include.contains(&0),
                include_custom_metadata: include.contains(&1),
            })?;
            let mut out = json!({
                "objects": page.objects.iter().map(object_json).collect::<Vec<_>>(),
                "truncated": page.truncated,
                "delimitedPrefixes": page.delimited_prefixes,
            });
            if let Some(cursor) = page.cursor {
                out["cursor"] = cursor.into();
            }
            Ok(Outcome::Json(out))
        }
        other => Err(invalid(
            other.op(),
            format!("{} is a write: the binding sends it as a PUT", other.op()),
        )),
    }
}

/// A write: the request JSON, then the value, both read from `body` as it arrives.
async fn write(
    store: Arc<Store>,
    name: String,
    headers: &HeaderMap,
    body: Body,
    meter: Option<Arc<Meter>>,
) -> (&'static str, Result<Outcome, R2Error>) {
    let number = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let Some(meta_size) = number(METADATA_SIZE).filter(|&n| n as usize <= MAX_METADATA) else {
        return (
            "-",
            Err(invalid(
                "r2",
                format!("a write needs {METADATA_SIZE}: the length of its request JSON (at most {MAX_METADATA} bytes)"),
            )),
        );
    };
    let Some(total) = number("content-length").filter(|&n| n >= meta_size) else {
        return (
            "-",
            Err(R2Error::new(
                "r2",
                R2ErrorKind::IncompleteBody,
                "a write needs a Content-Length covering its request JSON and value",
            )),
        );
    };
    let _slot = stream::upload_slot().await;
    let (mut reader, pump) = stream::body_reader(body);
    let op = std::sync::Arc::new(std::sync::Mutex::new("-"));
    let seen = op.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut json = vec![0u8; meta_size as usize];
        reader.read_exact(&mut json).map_err(|e| {
            R2Error::new(
                "r2",
                R2ErrorKind::IncompleteBody,
                format!("the request JSON could not be read: {e}"),
            )
        })?;
        let request = Request::parse(&json)?;
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = request.op();
        admit(&meter, request.op(), &name)?;
        let bucket = open(&store, &name, request.op())?;
        apply(&bucket, request, &mut reader, total - meta_size)
    });
    pump.await;
    let result = task.await.unwrap_or_else(|e| {
        Err(R2Error::new(
            "r2",
            R2ErrorKind::InternalError,
            e.to_string(),
        ))
    });
    let op = *op.lock().unwrap_or_else(|p| p.into_inner());
    (op, result)
}

fn apply(
    bucket: &R2Bucket,
    request: Request,
    value: &mut dyn Read,
    length: u64,
) -> Result<Outcome, R2Error> {
    match request {
        Request::Put(put) => {
            let Put {
                object,
                custom_fields,
                http_fields,
                only_if,
                md5,
                sha1,
                sha256,
                sha384,
                sha512,
                storage_class,
                ssec,
            } = *put;
            let ssec_key = ssec_key("put", ssec)?;
            let options = R2PutOptions {
                only_if: only_if.map(conditional).transpose()?,
                http_metadata: http_fields.map(http_metadata).unwrap_or_default(),
                custom_metadata: custom(custom_fields),
                checksum: checksum(md5, [sha1, sha256, sha384, sha512])?,
                storage_class,
                extra_checksum: None,
                ssec_key,
            };
            Ok(match bucket.put_reader(&object, value, length, &options)? {
                Some(o) => Outcome::Json(object_json(&o)),
                None => Outcome::PreconditionFailed(None),
            })
        }
        Request::Delete { object, objects } => {
            let keys: Vec<&str> = object
                .iter()
                .chain(objects.iter().flatten())
                .map(String::as_str)
                .collect();
            bucket.delete(&keys)?;
            Ok(Outcome::Empty)
        }
        Request::CreateMultipartUpload {
            object,
            custom_fields,
            http_fields,
            storage_class,
            ssec,
        } => {
            let ssec_key = ssec_key("createMultipartUpload", ssec)?;
            let key_md5 = ssec_key.as_ref().map(|k| hex::encode(k.md5()));
            let upload = bucket.create_multipart_upload(
                &object,
                &R2MultipartOptions {
                    http_metadata: http_fields.map(http_metadata).unwrap_or_default(),
                    custom_metadata: custom(custom_fields),
                    storage_class,
                    ssec_key,
                },
            )?;
            let mut out = json!({"uploadId": upload.upload_id});
            if let Some(md5) = key_md5 {
                out["ssec"] = ssec_json(&md5);
            }
            Ok(Outcome::Json(out))
        }
        Request::UploadPart {
            object,
            upload_id,
            part_number,
            ssec,
        } => {
            let ssec_key = ssec_key("uploadPart", ssec)?;
            let part = bucket
                .resume_multipart_upload(&object, &upload_id)
                .upload_part_reader(part_number, value, length, ssec_key.as_ref())?;
            Ok(Outcome::Json(json!({"etag": part.etag})))
        }
        Request::CompleteMultipartUpload {
            object,
            upload_id,
            parts,
        } => {
            let parts: Vec<R2UploadedPart> = parts
                .into_iter()
                .map(|p| R2UploadedPart {
                    part_number: p.part,
                    etag: p.etag,
                })
                .collect();
            let done = bucket
                .resume_multipart_upload(&object, &upload_id)
                .complete(&parts)?;
            Ok(Outcome::Json(object_json(&done)))
        }
        Request::AbortMultipartUpload { object, upload_id } => {
            bucket
                .resume_multipart_upload(&object, &upload_id)
                .abort()?;
            Ok(Outcome::Empty)
        }
        other => Err(invalid(
            other.op(),
            format!("{} is a read: the binding sends it as a GET", other.op()),
        )),
    }
}

async fn respond(outcome: Outcome) -> Response {
    let framed = |status: StatusCode, json: &Value| {
        let text = json.to_string();
        let mut response = (status, text.clone()).into_response();
        let h = response.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(METADATA_SIZE, HeaderValue::from(text.len()));
        response
    };
    match outcome {
        Outcome::Json(json) => framed(StatusCode::OK, &json),
        Outcome::Empty => StatusCode::OK.into_response(),
        Outcome::Object(json, reader, length) => {
            let text = json.to_string().into_bytes();
            let meta = text.len() as u64;
            match stream::reader_body(Cursor::new(text).chain(reader), meta + length).await {
                Ok(body) => {
                    let mut response = Response::new(body);
                    let h = response.headers_mut();
                    h.insert("content-type", HeaderValue::from_static("application/json"));
                    h.insert(METADATA_SIZE, HeaderValue::from(meta));
                    h.insert("content-length", HeaderValue::from(meta + length));
                    response
                }
                Err(e) => error(500, 10001, &format!("reading the object: {e}")),
            }
        }
        Outcome::PreconditionFailed(object) => {
            const TEXT: &str = "At least one of the pre-conditions you specified did not hold.";
            let mut response = match object {
                Some(json) => framed(StatusCode::PRECONDITION_FAILED, &json),
                None => StatusCode::PRECONDITION_FAILED.into_response(),
            };
            if let Some(v) = error_header(R2ErrorKind::PreconditionFailed.code(), TEXT) {
                response.headers_mut().insert(ERROR, v);
            }
            response
        }
        Outcome::NoSuchKey => error(
            404,
            R2ErrorKind::NoSuchKey.code(),
            "The specified key does not exist.",
        ),
    }
}

/// `R2HeadResponse`: what the binding turns into an `R2Object`.
fn object_json(o: &R2Object) -> Value {
    let mut checksums = Map::new();
    let c = &o.checksums;
    for (slot, digest) in [&c.md5, &c.sha1, &c.sha256, &c.sha384, &c.sha512]
        .into_iter()
        .enumerate()
    {
        if let Some(d) = digest {
            checksums.insert(slot.to_string(), d.clone().into());
        }
    }
    let mut out = json!({
        "name": o.key,
        "version": o.version,
        "size": o.size,
        "etag": o.etag,
        "uploaded": o.uploaded,
        "checksums": checksums,
        "storageClass": o.storage_class,
    });
    if let Some(h) = &o.http_metadata {
        out["httpFields"] = serde_json::to_value(h).unwrap_or_default();
    }
    if let Some(custom) = &o.custom_metadata {
        out["customFields"] = custom
            .iter()
            .map(|(k, v)| json!({"k": k, "v": v}))
            .collect();
    }
    if let Some(r) = o.range {
        out["range"] = json!({"offset": r.offset, "length": r.length});
    }
    if let Some(md5) = &o.ssec_key_md5 {
        out["ssec"] = ssec_json(md5);
    }
    out
}

fn range_of(r: &RangeJson) -> Option<R2Range> {
    match (r.offset, r.length, r.suffix) {
        (_, _, Some(Int(suffix))) => Some(R2Range::Suffix(suffix)),
        (Some(Int(offset)), length, None) => Some(R2Range::Offset {
            offset,
            length: length.map(|l| l.0),
        }),
        (None, Some(Int(length)), None) => Some(R2Range::Prefix(length)),
        (None, None, None) => None,
    }
}

fn conditional(c: OnlyIf) -> Result<R2Conditional, R2Error> {
    let etags = |list: Option<Vec<Etag>>| -> Result<Option<Vec<EtagCondition>>, R2Error> {
        list.map(|l| {
            l.into_iter()
                .map(|e| match e.kind.as_str() {
                    "strong" => Ok(EtagCondition::Strong(e.value)),
                    "weak" => Ok(EtagCondition::Weak(e.value)),
                    "wildcard" => Ok(EtagCondition::Any),
                    other => Err(invalid("get", format!("unknown etag type {other:?}"))),
                })
                .collect()
        })
        .transpose()
    };
    let ms = |i: Option<Int>| i.map(|Int(n)| i64::try_from(n).unwrap_or(i64::MAX));
    Ok(R2Conditional {
        etag_matches: etags(c.etag_matches)?,
        etag_does_not_match: etags(c.etag_does_not_match)?,
        uploaded_before: ms(c.uploaded_before),
        uploaded_after: ms(c.uploaded_after),
        seconds_granularity: c.seconds_granularity,
    })
}

fn http_metadata(h: HttpFields) -> HttpMetadata {
    HttpMetadata {
        content_type: h.content_type,
        content_language: h.content_language,
        content_disposition: h.content_disposition,
        content_encoding: h.content_encoding,
        cache_control: h.cache_control,
        cache_expiry: h
            .cache_expiry
            .map(|Int(n)| i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

fn custom(fields: Option<Vec<Field>>) -> Vec<(String, String)> {
    fields
        .unwrap_or_default()
        .into_iter()
        .map(|f| (f.k, f.v))
        .collect()
}

/// The one digest a `put` may name: MD5 comes base64-encoded, the SHAs in hex.
fn checksum(
    md5: Option<String>,
    shas: [Option<String>; 4],
) -> Result<Option<ExpectedChecksum>, R2Error> {
    let mut given = Vec::new();
    if let Some(b64) = md5 {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .filter(|d| d.len() == 16)
            .ok_or_else(|| {
                R2Error::new(
                    "put",
                    R2ErrorKind::InvalidDigest,
                    "The MD5 checksum you specified is not 16 bytes of base64.",
                )
            })?;
        given.push(ExpectedChecksum::Md5(raw));
    }
    for (name, hex) in ["sha1", "sha256", "sha384", "sha512"].into_iter().zip(shas) {
        if let Some(hex) = hex {
            given.push(ExpectedChecksum::from_hex(name, &hex)?);
        }
    }
    if given.len() > 1 {
        return Err(invalid(
            "put",
            "You can only specify one hash algorithm (md5, sha1, sha256, sha384 or sha512).",
        ));
    }
    Ok(given.pop())
}

fn ssec_key(op: &'static str, ssec: Option<Ssec>) -> Result<Option<EncryptionKey>, R2Error> {
    ssec.map(|s| EncryptionKey::from_binding(op, &s.key))
        .transpose()
}

/// `R2SSECResponse`.
fn ssec_json(key_md5: &str) -> Value {
    json!({"algorithm": "AES256", "keyMd5": key_md5})
}
