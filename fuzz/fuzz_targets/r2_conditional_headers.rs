//! Conditional header parsing (If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since) and evaluation: no panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::R2Conditional;

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
});
