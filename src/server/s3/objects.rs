//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
//! CopyObject.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::{self, BodyPlan};
use super::error::S3Error;
use super::headers::{
    self, copy_source, precondition_failed, read_precondition, write_condition, Precondition,
};
use super::multipart::part_number;
use super::xml::{self, Xml};
use super::{blocking, Ctx};
use crate::r2::{iso8601_millis, R2ErrorKind, R2GetOptions, R2Object, R2PutOptions, R2Range};

/// A 200 with an XML body.
pub(crate) fn xml_response(xml: String) -> Response {
    let mut r = (StatusCode::OK, xml).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r
}

/// An ETag header value: the etag in double quotes.
pub(crate) fn quoted(etag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The bucket, created first when `cf-create-bucket-if-missing: true` asks for it.
fn target_bucket(ctx: &Ctx) -> impl FnOnce() -> Result<crate::r2::R2Bucket, S3Error> {
    let create = ctx
        .header("cf-create-bucket-if-missing")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    move || {
        if create && store.r2().bucket(&name).is_err() {
            // Losing a race with another creator is fine.
            let _ = store.r2().create_bucket(&name);
        }
        Ctx::open_bucket(&store, &name)
    }
}

pub(crate) async fn put_object(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
    tracing::debug!(
        target: "tristore::s3::body",
        bucket = ?ctx.bucket_name(),
        key = ?ctx.key(),
        framing = %plan.framing(),
        checksum = ?plan.checksum_algorithm(),
        "PutObject body"
    );
    let length = plan.length()?;
    let options = R2PutOptions {
        only_if: write_condition(&ctx.headers, "")?,
        http_metadata: headers::http_metadata(&ctx.headers)?,
        custom_metadata: headers::custom_metadata(&ctx.headers),
        checksum: None,
        storage_class: headers::storage_class(&ctx.headers)?,
        extra_checksum: plan.checksum_algorithm().map(|a| a.stored()),
        ssec_key: headers::sse_c(&ctx.headers, false)?,
    };
    let open = target_bucket(&ctx);
    let key = ctx.key().to_owned();
    let stored = body::consume(body, plan, move |reader| {
        let bucket = open()?;
        Ok(bucket.put_reader(&key, reader, length, &options)?)
    })
    .await?;
    let object = stored.ok_or_else(precondition_failed)?;
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    out.insert("etag", quoted(&object.etag));
    out.extend(headers::object_headers(
        &ctx,
        &without_metadata(object),
        true,
    ));
    Ok(response)
}

/// Only the checksums of `object`, for echoing after a write.
fn without_metadata(object: R2Object) -> R2Object {
    R2Object {
        http_metadata: None,
        custom_metadata: None,
        ..object
    }
}

pub(crate) async fn get_object(ctx: Ctx, head: bool) -> Result<Response, S3Error> {
    let part = ctx
        .has("partNumber")
        .then(|| part_number(&ctx))
        .transpose()?;
    let range = match ctx.header("range") {
        Some(v) if !head => R2Range::from_header(v)?,
        _ => None,
    };
    if part.is_some() && range.is_some() {
        return Err(S3Error::invalid_request(
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    let ssec_key = headers::sse_c(&ctx.headers, false)?;
    let (store, bucket, key) = (
        ctx.store.clone(),
        ctx.bucket_name().to_owned(),
        ctx.key().to_owned(),
    );
    let found = blocking(move || {
        let bucket = Ctx::open_bucket(&store, &bucket)?;
        if let Some(number) = part {
            return match bucket.get_part(&key, number, ssec_key.as_ref()) {
                Err(e) if e.kind == R2ErrorKind::InvalidRange => Err(S3Error::new(
                    416,
                    "InvalidPartNumber",
                    "The requested partnumber is not satisfiable",
                )),
                found => Ok(found?.map(|(b, count)| (b.object, b.body.filter(|_| !head), count))),
            };
        }
        if head {
            return Ok(bucket
                .head_with_key(&key, ssec_key.as_ref())?
                .map(|o| (o, None, None)));
        }
        let options = R2GetOptions {
            only_if: None,
            range,
            ssec_key,
        };
        Ok(bucket
            .get(&key, &options)?
            .map(|b| (b.object, b.body, None)))
    })
    .await?;
    let (object, reader, parts_count) = found.ok_or_else(|| {
        S3Error::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", ctx.key())
    })?;
    if read_precondition(&ctx.headers, "", &object)? == Precondition::NotModified {
        return Ok(not_modified(&ctx, &object));
    }
    let returned = object.range.unwrap_or(crate::r2::ReturnedRange {
        offset: 0,
        length: object.size,
    });
    let partial = range.is_some() || part.is_some();
    let checksums = !partial
        && ctx
            .header("x-amz-checksum-mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("enabled"));
    let mut out: HeaderMap = headers::object_headers(&ctx, &object, checksums);
    out.insert("content-length", HeaderValue::from(returned.length));
    if let Some(count) = parts_count {
        out.insert("x-amz-mp-parts-count", HeaderValue::from(count));
    }
    let status = if partial {
        let end = (returned.offset + returned.length).saturating_sub(1);
        let value = format!("bytes {}-{end}/{}", returned.offset, object.size);
        out.insert(
            "content-range",
            HeaderValue::from_str(&value).expect("ASCII"),
        );
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body = match reader {
        Some(r) => body::object_body(r, returned.length).await?,
        None => Body::empty(),
    };
    let mut response = (status, body).into_response();
    response.headers_mut().extend(out);
    Ok(response)
}

/// 304 Not Modified, with the headers RFC 9110 (15.4.5) has it repeat from the 200.
fn not_modified(ctx: &Ctx, object: &R2Object) -> Response {
    let all = headers::object_headers(ctx, object, false);
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in ["etag", "last-modified", "cache-control", "expires"] {
        if let Some(value) = all.get(name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

pub(crate) async fn delete_object(ctx: Ctx) -> Result<Response, S3Error> {
    let (store, bucket, key) = (
        ctx.store.clone(),
        ctx.bucket_name().to_owned(),
        ctx.key().to_owned(),
    );
    blocking(move || Ok(Ctx::open_bucket(&store, &bucket)?.delete(&[&key])?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn delete_objects(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
    let bytes = body::read_all(body, plan, 2 << 20).await?;
    let request: xml::Delete = xml::parse(&bytes)?;
    if request.objects.len() > 1000 {
        return Err(S3Error::new(
            400,
            "MalformedXML",
            "DeleteObjects takes at most 1000 keys",
        ));
    }
    let (store, bucket) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    let keys: Vec<String> = request.objects.into_iter().map(|o| o.key).collect();
    let results = blocking(move || {
        let bucket = Ctx::open_bucket(&store, &bucket)?;
        // One catalog transaction for all; key by key only to report the bad ones.
        let all: Vec<&str> = keys.iter().map(String::as_str).collect();
        if bucket.delete(&all).is_ok() {
            return Ok(keys.into_iter().map(|k| (k, None)).collect::<Vec<_>>());
        }
        Ok(keys
            .into_iter()
            .map(|k| {
                let outcome = bucket.delete(&[&k]).err().map(S3Error::from);
                (k, outcome)
            })
            .collect())
    })
    .await?;
    let mut xml = Xml::new("DeleteResult");
    for (key, error) in results {
        match error {
            None if request.quiet => {}
            None => {
                xml.open("Deleted").leaf("Key", &key).close();
            }
            Some(e) => {
                xml.open("Error")
                    .leaf("Key", &key)
                    .leaf("Code", e.code)
                    .leaf("Message", &e.message)
                    .close();
            }
        }
    }
    Ok(xml_response(xml.finish()))
}

pub(crate) async fn copy_object(ctx: Ctx) -> Result<Response, S3Error> {
    let (source_bucket, source_key) = copy_source(&ctx)?;
    let directive = ctx
        .header("x-amz-metadata-directive")
        .unwrap_or("COPY")
        .to_ascii_uppercase();
    if !matches!(directive.as_str(), "COPY" | "REPLACE" | "MERGE") {
        return Err(S3Error::invalid_argument(format!(
            "Unknown metadata directive {directive}: use COPY, REPLACE or MERGE"
        )));
    }
    let source_ssec_key = headers::sse_c(&ctx.headers, true)?;
    let ssec_key = headers::sse_c(&ctx.headers, false)?;
    if directive == "COPY"
        && source_bucket == ctx.bucket_name()
        && source_key == ctx.key()
        && ctx.header("x-amz-storage-class").is_none()
        && ssec_key == source_ssec_key
    {
        return Err(S3Error::invalid_request("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."));
    }
    let request_http = headers::http_metadata(&ctx.headers)?;
    let request_custom = headers::custom_metadata(&ctx.headers);
    let storage_class = headers::storage_class(&ctx.headers)?;
    let only_if = write_condition(&ctx.headers, "cf-copy-destination-")?;
    let source_headers = ctx.headers.clone();
    let open_target = target_bucket(&ctx);
    let (store, key) = (ctx.store.clone(), ctx.key().to_owned());
    let object = blocking(move || {
        let source = Ctx::open_bucket(&store, &source_bucket)?;
        let read = R2GetOptions {
            ssec_key: source_ssec_key,
            ..Default::default()
        };
        let found = source.get(&source_key, &read)?.ok_or_else(|| {
            S3Error::new(404, "NoSuchKey", "The specified key does not exist.")
                .with("Key", source_key.as_str())
        })?;
        // A copy has no 304: every failed copy-source condition is 412.
        if read_precondition(&source_headers, "x-amz-copy-source-", &found.object)?
            == Precondition::NotModified
        {
            return Err(precondition_failed());
        }
        let from = found.object;
        let (http_metadata, custom_metadata) = match directive.as_str() {
            "REPLACE" => (request_http, request_custom),
            "MERGE" => {
                let mut custom = from.custom_metadata.clone().unwrap_or_default();
                for (k, v) in request_custom {
                    match custom.iter_mut().find(|(name, _)| *name == k) {
                        Some(slot) => slot.1 = v,
                        None => custom.push((k, v)),
                    }
                }
                let stored = from.http_metadata.clone().unwrap_or_default();
                let http = crate::r2::HttpMetadata {
                    content_type: request_http.content_type.or(stored.content_type),
                    content_language: request_http.content_language.or(stored.content_language),
                    content_disposition: request_http
                        .content_disposition
                        .or(stored.content_disposition),
                    content_encoding: request_http.content_encoding.or(stored.content_encoding),
                    cache_control: request_http.cache_control.or(stored.cache_control),
                    cache_expiry: request_http.cache_expiry.or(stored.cache_expiry),
                };
                (http, custom)
            }
            _ => (
                from.http_metadata.clone().unwrap_or_default(),
                from.custom_metadata.clone().unwrap_or_default(),
            ),
        };
        let options = R2PutOptions {
            only_if,
            http_metadata,
            custom_metadata,
            checksum: None,
            storage_class: storage_class.or(Some(from.storage_class.clone())),
            extra_checksum: None,
            ssec_key,
        };
        let mut reader: Box<dyn Read> = match found.body {
            Some(r) => Box::new(r),
            None => Box::new(std::io::empty()),
        };
        let target = open_target()?;
        target
            .put_reader(&key, &mut reader, from.size, &options)?
            .ok_or_else(precondition_failed)
    })
    .await?;
    let mut xml = Xml::new("CopyObjectResult");
    xml.leaf("LastModified", iso8601_millis(object.uploaded))
        .leaf("ETag", &object.http_etag);
    let mut response = xml_response(xml.finish());
    headers::sse_c_response(response.headers_mut(), object.ssec_key_md5.as_deref());
    Ok(response)
}
