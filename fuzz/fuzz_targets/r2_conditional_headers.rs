//! Conditional header parsing (If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since) and evaluation: no panic on any input; a date never makes the
//! headers fail (RFC 9110 ignores one that does not parse); and an object's own
//! Last-Modified passes If-Unmodified-Since and fails If-Modified-Since.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::conditional::{format_http_date, parse_http_date};
use tristore::r2::R2Conditional;

/// 9999-12-31T23:59:59Z, the last instant an HTTP date can name.
const LAST_HTTP_DATE_MS: i64 = 253_402_300_799_000;

fuzz_target!(|input: (&str, &str, &str, &str, &str, i64)| {
    let (if_match, if_none_match, since, unmodified, etag, uploaded) = input;
    let headers = [
        ("If-Match", if_match),
        ("If-None-Match", if_none_match),
        ("If-Modified-Since", since),
        ("If-Unmodified-Since", unmodified),
    ];
    for n in 0..=headers.len() {
        if let Ok(c) = R2Conditional::from_headers(headers[..n].iter().copied()) {
            let _ = c.passes(Some((etag, uploaded)));
            let _ = c.passes(None);
        }
    }
    R2Conditional::from_headers(headers[2..].iter().copied()).expect("dates never fail");

    let uploaded = uploaded.rem_euclid(LAST_HTTP_DATE_MS);
    let last_modified = format_http_date(uploaded);
    assert_eq!(
        parse_http_date(&last_modified),
        Some(uploaded - uploaded % 1000)
    );
    let current = Some((etag, uploaded));
    let unmodified = [("If-Unmodified-Since", last_modified.as_str())];
    assert!(R2Conditional::from_headers(unmodified).unwrap().passes(current));
    let modified = [("If-Modified-Since", last_modified.as_str())];
    assert!(!R2Conditional::from_headers(modified).unwrap().passes(current));
});
