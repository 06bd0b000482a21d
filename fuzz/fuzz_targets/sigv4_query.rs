//! SigV4 verification of arbitrary requests: query parsing, credential scopes, dates and
//! headers never panic, and nothing unsigned is accepted: not a random request, and not
//! a correctly presigned one carrying an `x-amz-*` header it did not sign.
//!
//! And for every key, method and lifetime our presigner accepts, the URL it makes
//! verifies until it expires and not after (`ExpiredRequest`), and changing any one
//! character of its `X-Amz-Signature`, or presenting it for another method, is refused
//! with `SignatureDoesNotMatch`.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tristore::r2::presign::{
    parse_query, presign_url, presign_url_with, Credentials, PresignRequest, SignedRequest,
    MAX_EXPIRES,
};

/// A presigned URL from our presigner verifies, expires when it says, and no other
/// signature (one character changed) or method is accepted for it.
fn presigned_round_trip(key: &str, pick: u8, expires_in: u32, at: u16, digit: u8) {
    let creds = Credentials::new("tristore", "secret");
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let methods = ["GET", "HEAD", "PUT", "DELETE"];
    let method = methods[usize::from(pick) % methods.len()];
    let expires_in = u64::from(expires_in) % MAX_EXPIRES + 1;
    let Ok(url) = presign_url(
        &PresignRequest {
            method,
            endpoint: "http://127.0.0.1:8791",
            bucket: "b",
            key,
            region: "auto",
            expires_in,
            now,
        },
        &creds,
    ) else {
        return;
    };
    let (path, query) = url["http://127.0.0.1:8791".len()..]
        .split_once('?')
        .expect("a presigned URL has a query");
    let headers = [("host", "127.0.0.1:8791")];
    let verify = |method: &str, query: &str, at: std::time::SystemTime| {
        SignedRequest {
            method,
            path,
            query,
            headers: &headers,
        }
        .verify(|k| (k == "tristore").then(|| "secret".into()), at)
    };
    verify(method, query, now).unwrap_or_else(|e| panic!("{method} {url} was refused: {e:?}"));
    let last = now + Duration::from_secs(expires_in);
    verify(method, query, last).unwrap_or_else(|e| panic!("{url} refused before expiry: {e:?}"));
    let expired = verify(method, query, last + Duration::from_secs(1)).unwrap_err();
    assert_eq!(expired.code, "ExpiredRequest", "{url}");

    let other = methods[(usize::from(pick) + 1) % methods.len()];
    let e = verify(other, query, now).expect_err("a URL presigned for one method used for another");
    assert_eq!(e.code, "SignatureDoesNotMatch");

    let (unsigned, signature) = query
        .rsplit_once("X-Amz-Signature=")
        .expect("the signature is the last parameter");
    assert_eq!(signature.len(), 64, "{url}");
    let at = usize::from(at) % signature.len();
    let mut changed = signature.as_bytes().to_vec();
    let hex = b"0123456789abcdef";
    let replacement = hex[usize::from(digit) % 16];
    changed[at] = if replacement == changed[at] {
        hex[(usize::from(digit) + 1) % 16]
    } else {
        replacement
    };
    let tampered = format!(
        "{unsigned}X-Amz-Signature={}",
        String::from_utf8(changed).unwrap()
    );
    let e = verify(method, &tampered, now).expect_err("a changed signature was accepted");
    assert_eq!(e.code, "SignatureDoesNotMatch", "{tampered}");
}

/// Method, path, query, Authorization, X-Amz-Date, an extra header (name, value,
/// whether to sign it), and the presigned round trip's method pick, lifetime, changed
/// signature position and digit.
type Input<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    (&'a str, &'a str, bool),
    (u8, u32, u16, u8),
);

fuzz_target!(|input: Input<'_>| {
    let (method, path, query, authorization, date, (name, value, sign), round_trip) = input;
    let (pick, expires_in, at, digit) = round_trip;
    presigned_round_trip(path, pick, expires_in, at, digit);
    let _ = parse_query(query);
    let headers = [
        ("host", "127.0.0.1:8791"),
        ("authorization", authorization),
        ("x-amz-date", date),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let req = SignedRequest {
        method,
        path,
        query,
        headers: &headers,
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // Random input can only pass with a correct HMAC, which it cannot forge.
    assert!(req.verify(|_| Some("secret".into()), now).is_err());

    let creds = Credentials::new("tristore", "secret");
    let presign = PresignRequest {
        method: "GET",
        endpoint: "http://127.0.0.1:8791",
        bucket: "b",
        key: path,
        region: "auto",
        expires_in: 60,
        now,
    };
    let extra = [(name, value)];
    let signed: &[(&str, &str)] = if sign { &extra } else { &[] };
    let Ok(url) = presign_url_with(&presign, &[], signed, &creds) else {
        return;
    };
    let (path, query) = url["http://127.0.0.1:8791".len()..]
        .split_once('?')
        .expect("a presigned URL has a query");
    let headers = [("host", "127.0.0.1:8791"), (name, value)];
    let verified = SignedRequest {
        method: "GET",
        path,
        query,
        headers: &headers,
    }
    .verify(|_| Some("secret".into()), now);
    let lower = name.to_ascii_lowercase();
    if verified.is_ok() {
        assert!(
            sign || !lower.starts_with("x-amz-") || lower == "x-amz-content-sha256",
            "unsigned {name:?} accepted"
        );
    }
    let plain = |s: &str| s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    let token = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if sign && token && plain(value) && !["host", "authorization"].contains(&lower.as_str()) {
        verified.expect("a request as it was presigned verifies");
    }
});
