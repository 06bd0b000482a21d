//! Request headers that ask for something tristore does not do, refused with 501
//! `NotImplemented` rather than dropped: a client that asked for encryption with its own
//! key, tags or a retention lock must not be told its object was stored that way.
//!
//! The list and the answers are R2's (as Miniflare's local S3 endpoint reproduces them
//! from captures of R2): `Header '<name>' with value '<value>' not implemented`. R2
//! encrypts every object at rest with AES-256, so `x-amz-server-side-encryption: AES256`
//! asks for nothing more and is accepted; any other value (SSE-KMS) is refused. SSE-C,
//! which R2 offers, is not implemented here yet and is refused on every request, reads
//! included, with its own message.

use super::error::S3Error;
use super::headers::text;
use super::Ctx;

/// Headers R2 refuses on PutObject, CopyObject and CreateMultipartUpload.
const WRITE_UNSUPPORTED: [&str; 13] = [
    "x-amz-tagging",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
    "x-amz-website-redirect-location",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
];

const SSE_C_PREFIXES: [&str; 2] = [
    "x-amz-server-side-encryption-customer-",
    "x-amz-copy-source-server-side-encryption-customer-",
];

/// Refuses the request if it carries a header asking for what is not done; `write`
/// says whether it stores an object (PutObject, CopyObject, CreateMultipartUpload).
pub(crate) fn screen(ctx: &Ctx, write: bool) -> Result<(), S3Error> {
    if let Some(name) = ctx
        .headers
        .keys()
        .map(|n| n.as_str())
        .find(|n| SSE_C_PREFIXES.iter().any(|p| n.starts_with(p)))
    {
        return Err(S3Error::new(
            501,
            "NotImplemented",
            format!("Server-side encryption with customer-provided keys (SSE-C) is not supported by tristore yet: remove the {name} header (nothing was stored or read)"),
        ));
    }
    let not_implemented = |name: &str, value: &str| {
        S3Error::new(
            501,
            "NotImplemented",
            format!("Header '{name}' with value '{value}' not implemented"),
        )
    };
    let value = |name: &str| ctx.headers.get(name).map(text);
    // R2 refuses this one on every operation.
    if let Some(owner) = value("x-amz-expected-bucket-owner") {
        return Err(not_implemented("x-amz-expected-bucket-owner", &owner));
    }
    if !write {
        return Ok(());
    }
    if let Some(sse) = value("x-amz-server-side-encryption").filter(|v| v != "AES256") {
        return Err(not_implemented("x-amz-server-side-encryption", &sse));
    }
    match WRITE_UNSUPPORTED
        .iter()
        .find_map(|name| value(name).map(|v| (*name, v)))
    {
        Some((name, v)) => Err(not_implemented(name, &v)),
        None => Ok(()),
    }
}
