//! SigV4 verification of arbitrary requests: query parsing, credential scopes, dates and
//! headers never panic, and nothing unsigned is accepted: not a random request, and not
//! a correctly presigned one carrying an `x-amz-*` header it did not sign.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tristore::r2::presign::{
    parse_query, presign_url_with, Credentials, PresignRequest, SignedRequest,
};

fuzz_target!(
    |input: (&str, &str, &str, &str, &str, (&str, &str, bool))| {
        let (method, path, query, authorization, date, (name, value, sign)) = input;
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
    }
);
