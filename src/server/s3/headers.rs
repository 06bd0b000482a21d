//! Between S3 headers and R2 metadata: system headers ↔ `httpMetadata`,
//! `x-amz-meta-*` ↔ `customMetadata`, storage classes, dates and preconditions.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;

use super::error::S3Error;
use super::Ctx;
use crate::r2::conditional::{format_http_date, parse_http_date};
use crate::r2::{EncryptionKey, HttpMetadata, R2Conditional, R2Object};

const META_PREFIX: &str = "x-amz-meta-";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header's value as text: UTF-8 when the bytes are UTF-8 (what botocore sends, and
/// signs), else ISO-8859-1, HTTP's historical charset for obs-text (what Node sends for
/// the same text). Either way the text is the one the client signed.
pub fn text(value: &HeaderValue) -> String {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(utf8) => utf8.to_owned(),
        Err(_) => value.as_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// `Content-Type`, `Cache-Control`, ... and `Expires` from a request.
pub fn http_metadata(headers: &HeaderMap) -> Result<HttpMetadata, S3Error> {
    let get = |name| headers.get(name).map(text);
    // aws-chunked is the transfer framing, not the object's encoding.
    let content_encoding = header(headers, "content-encoding").and_then(|v| {
        let kept: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && *c != "aws-chunked")
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    let cache_expiry = match header(headers, "expires") {
        Some(v) => Some(parse_http_date(v).ok_or_else(|| {
            S3Error::invalid_argument(format!("Expires must be an HTTP date, not {v:?}"))
        })?),
        None => None,
    };
    Ok(HttpMetadata {
        content_type: get("content-type"),
        content_language: get("content-language"),
        content_disposition: get("content-disposition"),
        content_encoding,
        cache_control: get("cache-control"),
        cache_expiry,
    })
}

/// `x-amz-meta-<name>` headers as custom metadata, in the order sent.
pub fn custom_metadata(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix(META_PREFIX)?;
            Some((name.to_owned(), text(v)))
        })
        .collect()
}

/// `x-amz-storage-class` as R2's storage class.
pub fn storage_class(headers: &HeaderMap) -> Result<Option<String>, S3Error> {
    match header(headers, "x-amz-storage-class") {
        None => Ok(None),
        Some("STANDARD") => Ok(Some("Standard".into())),
        Some("STANDARD_IA") => Ok(Some("InfrequentAccess".into())),
        Some(other) => Err(S3Error::new(
            400,
            "InvalidStorageClass",
            format!("The storage class you specified is not valid: {other}. Use STANDARD or STANDARD_IA."),
        )),
    }
}

/// R2's storage class as S3 names it.
pub fn s3_storage_class(r2: &str) -> &'static str {
    if r2 == "InfrequentAccess" {
        "STANDARD_IA"
    } else {
        "STANDARD"
    }
}

/// The header value for `text`: ISO-8859-1 bytes when every character fits, as HTTP
/// clients (botocore, fetch) decode response headers, so what they stored comes back;
/// otherwise (text written through the binding) RFC 2047-encoded, as R2 answers
/// non-ASCII metadata, rather than dropped.
fn header_value(text: &str) -> Option<HeaderValue> {
    let latin1: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c).ok()).collect();
    match latin1 {
        Some(bytes) => HeaderValue::from_bytes(&bytes).ok(),
        None => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            HeaderValue::from_str(&format!("=?UTF-8?B?{encoded}?=")).ok()
        }
    }
}

fn set(out: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Some(v)) = (HeaderName::from_bytes(name.as_bytes()), header_value(value)) {
        out.insert(n, v);
    }
}

/// The headers GetObject and HeadObject answer with. `response-*` query parameters
/// override the stored system headers, as presigned download links use them.
pub fn object_headers(ctx: &Ctx, object: &R2Object, with_checksums: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    set(&mut out, "etag", &object.http_etag);
    set(
        &mut out,
        "last-modified",
        &format_http_date(object.uploaded),
    );
    set(&mut out, "accept-ranges", "bytes");
    set(
        &mut out,
        "x-amz-storage-class",
        s3_storage_class(&object.storage_class),
    );
    if let Some(http) = &object.http_metadata {
        let pairs = [
            ("content-type", &http.content_type),
            ("content-language", &http.content_language),
            ("content-disposition", &http.content_disposition),
            ("content-encoding", &http.content_encoding),
            ("cache-control", &http.cache_control),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                set(&mut out, name, v);
            }
        }
        if let Some(ms) = http.cache_expiry {
            set(&mut out, "expires", &format_http_date(ms));
        }
    }
    for (name, value) in object.custom_metadata.iter().flatten() {
        set(&mut out, &format!("{META_PREFIX}{name}"), value);
    }
    for (param, name) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
        ("response-cache-control", "cache-control"),
        ("response-expires", "expires"),
    ] {
        if let Some(v) = ctx.q(param) {
            set(&mut out, name, v);
        }
    }
    sse_c_response(&mut out, object.ssec_key_md5.as_deref());
    if with_checksums {
        let c = &object.checksums;
        for (name, hex_value) in [
            ("x-amz-checksum-crc32", &c.crc32),
            ("x-amz-checksum-crc32c", &c.crc32c),
            ("x-amz-checksum-sha1", &c.sha1),
            ("x-amz-checksum-sha256", &c.sha256),
        ] {
            if let Some(digest) = hex_value.as_deref().and_then(|h| hex::decode(h).ok()) {
                set(&mut out, name, &super::checksum::encode(&digest));
            }
        }
    }
    out
}

/// Conditional-write headers (`If-Match`, ... or their `prefix`ed forms), if any.
pub fn write_condition(
    headers: &HeaderMap,
    prefix: &str,
) -> Result<Option<R2Conditional>, S3Error> {
    let names = [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
    ];
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .filter_map(|n| header(headers, &format!("{prefix}{n}")).map(|v| (*n, v)))
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    Ok(Some(R2Conditional::from_headers(pairs)?))
}

/// What a read's preconditions decide, when they do not fail it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Answer with the object.
    Pass,
    /// A failed `If-None-Match` or `If-Modified-Since`: 304 Not Modified.
    NotModified,
}

/// Read preconditions (RFC 9110 as S3 applies them): a failed `If-Match` or
/// `If-Unmodified-Since` is a 412 error; a failed `If-None-Match` or
/// `If-Modified-Since` is [`Precondition::NotModified`].
pub fn read_precondition(
    headers: &HeaderMap,
    prefix: &str,
    object: &R2Object,
) -> Result<Precondition, S3Error> {
    let Some(all) = write_condition(headers, prefix)? else {
        return Ok(Precondition::Pass);
    };
    let current = Some((object.etag.as_str(), object.uploaded));
    let must = R2Conditional {
        etag_matches: all.etag_matches.clone(),
        uploaded_before: all.uploaded_before,
        seconds_granularity: true,
        ..Default::default()
    };
    if !must.passes(current) {
        return Err(precondition_failed());
    }
    let unless = R2Conditional {
        etag_does_not_match: all.etag_does_not_match,
        uploaded_after: all.uploaded_after,
        seconds_granularity: true,
        ..Default::default()
    };
    if !unless.passes(current) {
        return Ok(Precondition::NotModified);
    }
    Ok(Precondition::Pass)
}

/// 412 `PreconditionFailed`.
pub fn precondition_failed() -> S3Error {
    S3Error::new(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    )
}

/// `x-amz-copy-source`: `[/]<bucket>/<key>[?versionId=…]`, URL-encoded.
pub fn copy_source(ctx: &Ctx) -> Result<(String, String), S3Error> {
    let raw = ctx.header("x-amz-copy-source").unwrap_or_default();
    let raw = raw.split_once('?').map_or(raw, |(path, _)| path);
    let decoded = percent_encoding::percent_decode_str(raw.trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    match decoded.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.to_owned(), key.to_owned()))
        }
        _ => Err(S3Error::invalid_argument(
            "x-amz-copy-source must be <bucket>/<key>, URL-encoded",
        )),
    }
}

/// The SSE-C key a request gives: the three `x-amz-server-side-encryption-customer-*`
/// headers, or with `copy_source` the `x-amz-copy-source-…` ones naming the key of a
/// copy's source. `None` when none of the three is there; S3's errors (and texts) when
/// they are incomplete or do not agree.
pub fn sse_c(headers: &HeaderMap, copy_source: bool) -> Result<Option<EncryptionKey>, S3Error> {
    let prefix = if copy_source {
        "x-amz-copy-source-server-side-encryption-customer-"
    } else {
        "x-amz-server-side-encryption-customer-"
    };
    let get = |suffix: &str| {
        headers
            .get(format!("{prefix}{suffix}").as_str())
            .map(|v| v.to_str().unwrap_or("").trim())
    };
    let (algorithm, key, md5) = (get("algorithm"), get("key"), get("key-md5"));
    if algorithm.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    const SSE_C: &str = "Requests specifying Server Side Encryption with Customer provided keys";
    match algorithm {
        None => {
            return Err(S3Error::invalid_argument(format!(
                "{SSE_C} must provide a valid encryption algorithm: add {prefix}algorithm: AES256."
            )))
        }
        Some("AES256") => {}
        Some(_) => {
            return Err(S3Error::new(
                400,
                "InvalidEncryptionAlgorithmError",
                "The encryption request you specified is not valid. Supported value: AES256.",
            ))
        }
    }
    let Some(key) = key else {
        return Err(S3Error::invalid_argument(format!(
            "{SSE_C} must provide an appropriate secret key ({prefix}key: 32 bytes, base64)."
        )));
    };
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "The secret key was invalid for the specified algorithm: it must be 32 bytes, base64-encoded.",
            )
        })?;
    let key = EncryptionKey::new(bytes);
    match md5 {
        None => Err(S3Error::invalid_argument(format!(
            "{SSE_C} must provide the client calculated MD5 of the secret key ({prefix}key-MD5, base64)."
        ))),
        Some(given) if given != key.md5_base64() => Err(S3Error::invalid_argument(
            "The calculated MD5 hash of the key did not match the hash that was provided.",
        )),
        Some(_) => Ok(Some(key)),
    }
}

/// The headers that tell an SSE-C client which key an object or upload was written
/// with (`key_md5_hex` as the catalog keeps it; the S3 API shows it in base64).
pub fn sse_c_response(out: &mut HeaderMap, key_md5_hex: Option<&str>) {
    let Some(md5) = key_md5_hex.and_then(|h| hex::decode(h).ok()) else {
        return;
    };
    set(
        out,
        "x-amz-server-side-encryption-customer-algorithm",
        "AES256",
    );
    set(
        out,
        "x-amz-server-side-encryption-customer-key-md5",
        &base64::engine::general_purpose::STANDARD.encode(md5),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_beyond_ascii_in_and_out() {
        let utf8 = HeaderValue::from_bytes("café".as_bytes()).unwrap();
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(text(&utf8), "café");
        assert_eq!(text(&latin1), "café");
        assert_eq!(header_value("café").unwrap().as_bytes(), b"caf\xe9");
        assert_eq!(header_value("日本").unwrap(), "=?UTF-8?B?5pel5pys?=");
        assert_eq!(header_value("plain").unwrap(), "plain");
    }
}
