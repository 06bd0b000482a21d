//! Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
//! ListMultipartUploads.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::{self, BodyPlan};
use super::error::S3Error;
use super::headers::{self, copy_source, precondition_failed, write_condition};
use super::objects::{quoted, xml_response};
use super::xml::{self, Xml};
use super::{blocking, Ctx};
use crate::r2::range::byte_pos;
use crate::r2::{
    iso8601_millis, EncryptionKey, R2ErrorKind, R2GetOptions, R2MultipartOptions,
    R2MultipartUpload, R2Range, R2UploadedPart,
};

fn upload_id(ctx: &Ctx) -> String {
    ctx.q("uploadId").unwrap_or_default().to_owned()
}

/// `partNumber`, which S3 takes from 1 to 10,000.
pub(crate) fn part_number(ctx: &Ctx) -> Result<u32, S3Error> {
    ctx.q("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

/// The upload addressed by the request, resumed on a blocking thread.
fn resume(ctx: &Ctx) -> impl FnOnce() -> Result<R2MultipartUpload, S3Error> {
    let (store, bucket, key, id) = (
        ctx.store.clone(),
        ctx.bucket_name().to_owned(),
        ctx.key().to_owned(),
        upload_id(ctx),
    );
    move || Ok(Ctx::open_bucket(&store, &bucket)?.resume_multipart_upload(&key, &id))
}

pub(crate) async fn create(ctx: Ctx) -> Result<Response, S3Error> {
    let options = R2MultipartOptions {
        http_metadata: headers::http_metadata(&ctx.headers)?,
        custom_metadata: headers::custom_metadata(&ctx.headers),
        storage_class: headers::storage_class(&ctx.headers)?,
        ssec_key: headers::sse_c(&ctx.headers, false)?,
    };
    let key_md5 = options.ssec_key.as_ref().map(|k| hex::encode(k.md5()));
    let condition = write_condition(&ctx.headers, "")?;
    let (store, bucket, key) = (
        ctx.store.clone(),
        ctx.bucket_name().to_owned(),
        ctx.key().to_owned(),
    );
    let upload = blocking(move || {
        let bucket = Ctx::open_bucket(&store, &bucket)?;
        if let Some(c) = condition {
            let current = bucket.head(&key)?;
            if !c.passes(current.as_ref().map(|o| (o.etag.as_str(), o.uploaded))) {
                return Err(precondition_failed());
            }
        }
        Ok(bucket.create_multipart_upload(&key, &options)?)
    })
    .await?;
    let mut xml = Xml::new("InitiateMultipartUploadResult");
    xml.leaf("Bucket", ctx.bucket_name())
        .leaf("Key", ctx.key())
        .leaf("UploadId", &upload.upload_id);
    let mut response = xml_response(xml.finish());
    headers::sse_c_response(response.headers_mut(), key_md5.as_deref());
    Ok(response)
}

/// The SSE-C key of a part upload, and the response headers that echo it.
fn part_key(ctx: &Ctx) -> Result<(Option<EncryptionKey>, HeaderMap), S3Error> {
    let key = headers::sse_c(&ctx.headers, false)?;
    let mut echo = HeaderMap::new();
    headers::sse_c_response(
        &mut echo,
        key.as_ref().map(|k| hex::encode(k.md5())).as_deref(),
    );
    Ok((key, echo))
}

pub(crate) async fn upload_part(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let number = part_number(&ctx)?;
    let (key, echo) = part_key(&ctx)?;
    let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
    let length = plan.length()?;
    let open = resume(&ctx);
    let part = body::consume(body, plan, move |reader| {
        Ok(open()?.upload_part_reader(number, reader, length, key.as_ref())?)
    })
    .await?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert("etag", quoted(&part.etag));
    r.headers_mut().extend(echo);
    Ok(r)
}

/// `x-amz-copy-source-range`, which S3 takes only as `bytes=first-last`: the first and
/// last byte to copy.
fn copy_source_range(value: &str) -> Result<(u64, u64), S3Error> {
    let malformed = || {
        S3Error::invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let (first, last) = value
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(malformed)?;
    match (byte_pos(first.trim()), byte_pos(last.trim())) {
        (Some(first), Some(last)) if first <= last => Ok((first, last)),
        _ => Err(malformed()),
    }
}

pub(crate) async fn upload_part_copy(ctx: Ctx) -> Result<Response, S3Error> {
    let number = part_number(&ctx)?;
    let (source_bucket, source_key) = copy_source(&ctx)?;
    let range = ctx
        .header("x-amz-copy-source-range")
        .map(copy_source_range)
        .transpose()?;
    let source_key_ssec = headers::sse_c(&ctx.headers, true)?;
    let (key, echo) = part_key(&ctx)?;
    let open = resume(&ctx);
    let store = ctx.store.clone();
    let part = blocking(move || {
        let source = Ctx::open_bucket(&store, &source_bucket)?;
        // Unlike a GET's, a copy range must lie inside the source: never clamped.
        let outside = |size: u64| {
            S3Error::invalid_argument(format!(
                "Range specified is not valid for source object of size: {size}"
            ))
        };
        let options = R2GetOptions {
            only_if: None,
            range: range.map(|(first, last)| R2Range::Offset {
                offset: first,
                length: (last - first).checked_add(1),
            }),
            ssec_key: source_key_ssec,
        };
        let found = match source.get(&source_key, &options) {
            Err(e) if e.kind == R2ErrorKind::InvalidRange => {
                let size = source.head(&source_key)?.map_or(0, |o| o.size);
                return Err(outside(size));
            }
            found => found?,
        };
        let found = found.ok_or_else(|| {
            S3Error::new(404, "NoSuchKey", "The specified key does not exist.")
                .with("Key", source_key.as_str())
        })?;
        if range.is_some_and(|(_, last)| last >= found.object.size) {
            return Err(outside(found.object.size));
        }
        let length = found.object.range.map_or(found.object.size, |r| r.length);
        let mut reader = found
            .body
            .ok_or_else(|| S3Error::internal("the source has no body"))?;
        Ok(open()?.upload_part_reader(number, &mut reader, length, key.as_ref())?)
    })
    .await?;
    let mut xml = Xml::new("CopyPartResult");
    xml.leaf("LastModified", iso8601_millis(crate::r2::now_ms()))
        .leaf("ETag", format!("\"{}\"", part.etag));
    let mut response = xml_response(xml.finish());
    response.headers_mut().extend(echo);
    Ok(response)
}

pub(crate) async fn complete(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
    let bytes = body::read_all(body, plan, 4 << 20).await?;
    let request: xml::CompleteMultipartUpload = xml::parse(&bytes)?;
    let parts: Vec<R2UploadedPart> = request
        .parts
        .into_iter()
        .map(|p| R2UploadedPart {
            part_number: p.part_number,
            etag: p.etag.trim().trim_matches('"').to_owned(),
        })
        .collect();
    let condition = write_condition(&ctx.headers, "")?;
    // S3 does not need the SSE-C key to complete an upload; one that is given must
    // still be the upload's (never ignored).
    let (key, echo) = part_key(&ctx)?;
    let open = resume(&ctx);
    let object = blocking(move || {
        let upload = open()?;
        if key.is_some() {
            upload.check_ssec_key(key.as_ref())?;
        }
        upload
            .complete_if(&parts, condition.as_ref())?
            .ok_or_else(precondition_failed)
    })
    .await?;
    let mut xml = Xml::new("CompleteMultipartUploadResult");
    xml.leaf("Location", format!("/{}/{}", ctx.bucket_name(), ctx.key()))
        .leaf("Bucket", ctx.bucket_name())
        .leaf("Key", ctx.key())
        .leaf("ETag", &object.http_etag);
    let mut response = xml_response(xml.finish());
    response.headers_mut().extend(echo);
    Ok(response)
}

pub(crate) async fn abort(ctx: Ctx) -> Result<Response, S3Error> {
    let open = resume(&ctx);
    blocking(move || {
        let upload = open()?;
        // S3 reports an unknown upload; the binding's abort is idempotent.
        upload.list_parts()?;
        Ok(upload.abort()?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn max_param(ctx: &Ctx, name: &str) -> Result<usize, S3Error> {
    match ctx.q(name) {
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(1000))
            .map_err(|_| S3Error::invalid_argument(format!("{name} must be a whole number"))),
        None => Ok(1000),
    }
}

pub(crate) async fn list_parts(ctx: Ctx) -> Result<Response, S3Error> {
    let max_parts = max_param(&ctx, "max-parts")?;
    let marker: u32 = ctx
        .q("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let open = resume(&ctx);
    let parts = blocking(move || Ok(open()?.list_parts()?)).await?;
    let mut after: Vec<_> = parts
        .into_iter()
        .filter(|p| p.part_number > marker)
        .collect();
    let truncated = after.len() > max_parts;
    after.truncate(max_parts);
    let mut xml = Xml::new("ListPartsResult");
    xml.leaf("Bucket", ctx.bucket_name())
        .leaf("Key", ctx.key())
        .leaf("UploadId", upload_id(&ctx))
        .leaf("StorageClass", "STANDARD")
        .leaf("PartNumberMarker", marker)
        .leaf_opt(
            "NextPartNumberMarker",
            truncated.then(|| after.last().map_or(0, |p| p.part_number)),
        )
        .leaf("MaxParts", max_parts)
        .leaf("IsTruncated", truncated);
    for p in &after {
        xml.open("Part")
            .leaf("PartNumber", p.part_number)
            .leaf("LastModified", iso8601_millis(p.uploaded))
            .leaf("ETag", format!("\"{}\"", p.etag))
            .leaf("Size", p.size)
            .close();
    }
    Ok(xml_response(xml.finish()))
}

pub(crate) async fn list_uploads(ctx: Ctx) -> Result<Response, S3Error> {
    let max_uploads = max_param(&ctx, "max-uploads")?;
    let prefix = ctx.q("prefix").unwrap_or("").to_owned();
    let delimiter = ctx
        .q("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let key_marker = ctx.q("key-marker").unwrap_or("").to_owned();
    let id_marker = ctx.q("upload-id-marker").unwrap_or("").to_owned();
    let (store, bucket) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    let uploads =
        blocking(move || Ok(Ctx::open_bucket(&store, &bucket)?.list_multipart_uploads()?)).await?;
    let mut prefixes: Vec<String> = Vec::new();
    let mut listed = Vec::new();
    let mut truncated = false;
    for (key, id, initiated) in uploads {
        let after_marker = key_marker.is_empty()
            || key > key_marker
            || (key == key_marker && !id_marker.is_empty() && id > id_marker);
        if !key.starts_with(&prefix) || !after_marker {
            continue;
        }
        if let Some(d) = &delimiter {
            if let Some(i) = key[prefix.len()..].find(d.as_str()) {
                let rolled = key[..prefix.len() + i + d.len()].to_owned();
                if prefixes.last() != Some(&rolled) {
                    prefixes.push(rolled);
                }
                continue;
            }
        }
        if listed.len() == max_uploads {
            truncated = true;
            break;
        }
        listed.push((key, id, initiated));
    }
    let mut xml = Xml::new("ListMultipartUploadsResult");
    xml.leaf("Bucket", ctx.bucket_name())
        .leaf("KeyMarker", &key_marker)
        .leaf("UploadIdMarker", &id_marker);
    if truncated {
        if let Some((key, id, _)) = listed.last() {
            xml.leaf("NextKeyMarker", key)
                .leaf("NextUploadIdMarker", id);
        }
    }
    xml.leaf("Prefix", &prefix)
        .leaf_opt("Delimiter", delimiter.as_deref())
        .leaf("MaxUploads", max_uploads)
        .leaf("IsTruncated", truncated);
    for (key, id, initiated) in &listed {
        xml.open("Upload")
            .leaf("Key", key)
            .leaf("UploadId", id)
            .leaf("Initiated", iso8601_millis(*initiated))
            .leaf("StorageClass", "STANDARD")
            .close();
    }
    for p in &prefixes {
        xml.open("CommonPrefixes").leaf("Prefix", p).close();
    }
    Ok(xml_response(xml.finish()))
}
