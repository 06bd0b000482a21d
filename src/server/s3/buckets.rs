//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
//! GetBucketLocation, GetBucketVersioning, GetBucketEncryption, ListObjects and
//! ListObjectsV2.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::body::{self, BodyPlan};
use super::error::S3Error;
use super::headers::s3_storage_class;
use super::objects::xml_response;
use super::xml::{self, Xml};
use super::{blocking, Ctx};
use crate::r2::list::Cursor;
use crate::r2::{iso8601_millis, R2ListOptions, R2Objects};
use crate::server::DEFAULT_ACCOUNT_ID;

fn owner(xml: &mut Xml) {
    xml.open("Owner")
        .leaf("ID", DEFAULT_ACCOUNT_ID)
        .leaf("DisplayName", DEFAULT_ACCOUNT_ID)
        .close();
}

pub(crate) async fn list_buckets(ctx: Ctx) -> Result<Response, S3Error> {
    // R2's extension: these may come as query parameters or cf- headers (headers win).
    let param = |name: &str| {
        ctx.header(&format!("cf-{name}"))
            .or(ctx.q(name))
            .map(str::to_owned)
    };
    let prefix = param("prefix").unwrap_or_default();
    let after = param("continuation-token").or(param("start-after"));
    let max_keys = match param("max-keys") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| S3Error::invalid_argument("max-keys must be between 1 and 1000"))?,
        None => 1000,
    };
    let store = ctx.store.clone();
    let all = blocking(move || Ok(store.r2().list_buckets()?)).await?;
    let mut matching = all
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix) && after.as_ref().is_none_or(|a| b.name > *a));
    let page: Vec<_> = matching.by_ref().take(max_keys).collect();
    let truncated = matching.next().is_some();
    let mut xml = Xml::new("ListAllMyBucketsResult");
    xml.open("Buckets");
    for b in &page {
        xml.open("Bucket")
            .leaf("Name", &b.name)
            .leaf("CreationDate", &b.creation_date)
            .close();
    }
    xml.close();
    owner(&mut xml);
    let mut response = xml_response(xml.finish());
    if truncated {
        let h = response.headers_mut();
        h.insert("cf-is-truncated", HeaderValue::from_static("true"));
        if let Some(last) = page
            .last()
            .and_then(|b| HeaderValue::from_str(&b.name).ok())
        {
            h.insert("cf-next-continuation-token", last);
        }
    }
    Ok(response)
}

pub(crate) async fn create_bucket(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
    let bytes = body::read_all(body, plan, 64 * 1024).await?;
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let config: xml::CreateBucketConfiguration = xml::parse(&bytes)?;
        let location = config.location_constraint.unwrap_or_default();
        if !matches!(
            location.to_ascii_lowercase().as_str(),
            "" | "auto" | "us-east-1"
        ) {
            return Err(S3Error::new(
                400,
                "InvalidLocationConstraint",
                format!(
                    "The specified location-constraint {location:?} is not valid: R2 takes auto"
                ),
            ));
        }
    }
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    blocking(move || Ok(store.r2().create_bucket(&name)?)).await?;
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/{}", ctx.bucket_name())) {
        response.headers_mut().insert("location", v);
    }
    Ok(response)
}

pub(crate) async fn delete_bucket(ctx: Ctx) -> Result<Response, S3Error> {
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    blocking(move || Ok(store.r2().delete_bucket(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn head_bucket(ctx: Ctx) -> Result<Response, S3Error> {
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    blocking(move || Ctx::open_bucket(&store, &name).map(|_| ())).await?;
    Ok(StatusCode::OK.into_response())
}

pub(crate) async fn location(ctx: Ctx) -> Result<Response, S3Error> {
    head_bucket_exists(&ctx).await?;
    let mut xml = Xml::new("LocationConstraint");
    xml.text("auto");
    Ok(xml_response(xml.finish()))
}

/// R2 has no versioning: the answer for every bucket is "never enabled".
pub(crate) async fn versioning(ctx: Ctx) -> Result<Response, S3Error> {
    head_bucket_exists(&ctx).await?;
    Ok(xml_response(Xml::new("VersioningConfiguration").finish()))
}

/// R2 encrypts every object at rest with AES-256 and has no per-bucket setting, so every
/// bucket has R2's answer (tristore's own data directory is not encrypted).
pub(crate) async fn encryption(ctx: Ctx) -> Result<Response, S3Error> {
    head_bucket_exists(&ctx).await?;
    let mut xml = Xml::new("ServerSideEncryptionConfiguration");
    xml.open("Rule")
        .open("ApplyServerSideEncryptionByDefault")
        .leaf("SSEAlgorithm", "AES256")
        .close()
        .leaf("BucketKeyEnabled", true)
        .close();
    Ok(xml_response(xml.finish()))
}

async fn head_bucket_exists(ctx: &Ctx) -> Result<(), S3Error> {
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    blocking(move || Ctx::open_bucket(&store, &name).map(|_| ())).await
}

/// What `encoding-type=url` leaves alone: unreserved characters and `/`.
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub(crate) async fn list_objects(ctx: Ctx, v2: bool) -> Result<Response, S3Error> {
    let url_encode = match ctx.q("encoding-type") {
        None => false,
        Some("url") => true,
        Some(other) => {
            return Err(S3Error::invalid_argument(format!(
                "Invalid Encoding Method specified in Request: {other}"
            )))
        }
    };
    let enc = |s: &str| {
        if url_encode {
            utf8_percent_encode(s, URL_KEEP).to_string()
        } else {
            s.to_owned()
        }
    };
    let max_keys = match ctx.q("max-keys") {
        Some(v) => v.parse::<u32>().map_err(|_| {
            S3Error::invalid_argument("Provided max-keys not an integer or within integer range")
        })?,
        None => 1000,
    };
    let prefix = ctx.q("prefix").filter(|p| !p.is_empty()).map(str::to_owned);
    let delimiter = ctx
        .q("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let (cursor, start_after) = if v2 {
        (
            // An empty token asks for the first page, as S3 reads it.
            ctx.q("continuation-token")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            ctx.q("start-after")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        )
    } else {
        // A v1 marker that is a rolled-up prefix resumes after everything under it.
        match (ctx.q("marker").filter(|m| !m.is_empty()), &delimiter) {
            (Some(m), Some(d)) if m.ends_with(d.as_str()) => (
                Some(Cursor::AfterPrefix(m.as_bytes().to_vec()).encode()),
                None,
            ),
            (m, _) => (None, m.map(str::to_owned)),
        }
    };
    let options = R2ListOptions {
        limit: Some(max_keys.clamp(1, 1000)),
        prefix: prefix.clone(),
        cursor: cursor.clone(),
        delimiter: delimiter.clone(),
        start_after: start_after.clone(),
        include_http_metadata: false,
        include_custom_metadata: false,
    };
    let (store, bucket) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    let page = blocking(move || {
        let bucket = Ctx::open_bucket(&store, &bucket)?;
        if max_keys == 0 {
            return Ok(R2Objects {
                objects: Vec::new(),
                delimited_prefixes: Vec::new(),
                truncated: false,
                cursor: None,
            });
        }
        Ok(bucket.list(&options)?)
    })
    .await?;
    let mut xml = Xml::new("ListBucketResult");
    xml.leaf("Name", ctx.bucket_name())
        .leaf("Prefix", enc(prefix.as_deref().unwrap_or("")));
    if v2 {
        xml.leaf_opt("StartAfter", start_after.as_deref().map(enc))
            .leaf_opt("ContinuationToken", ctx.q("continuation-token"))
            .leaf_opt("NextContinuationToken", page.cursor.as_deref())
            .leaf(
                "KeyCount",
                page.objects.len() + page.delimited_prefixes.len(),
            );
    } else {
        xml.leaf("Marker", enc(ctx.q("marker").unwrap_or("")));
        if page.truncated && delimiter.is_some() {
            let last_key = page.objects.last().map(|o| o.key.as_str());
            let last_prefix = page.delimited_prefixes.last().map(String::as_str);
            xml.leaf_opt("NextMarker", last_key.max(last_prefix).map(enc));
        }
    }
    xml.leaf("MaxKeys", max_keys)
        .leaf_opt("Delimiter", delimiter.as_deref().map(enc))
        .leaf("IsTruncated", page.truncated)
        .leaf_opt("EncodingType", url_encode.then_some("url"));
    let fetch_owner = !v2 || ctx.q("fetch-owner") == Some("true");
    for o in &page.objects {
        xml.open("Contents")
            .leaf("Key", enc(&o.key))
            .leaf("LastModified", iso8601_millis(o.uploaded))
            .leaf("ETag", &o.http_etag)
            .leaf("Size", o.size)
            .leaf("StorageClass", s3_storage_class(&o.storage_class));
        if fetch_owner {
            owner(&mut xml);
        }
        xml.close();
    }
    for p in &page.delimited_prefixes {
        xml.open("CommonPrefixes").leaf("Prefix", enc(p)).close();
    }
    Ok(xml_response(xml.finish()))
}
