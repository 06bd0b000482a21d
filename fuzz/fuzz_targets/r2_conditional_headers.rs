//! Conditional header parsing (If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since) and evaluation: no panic on any input; a date never makes the
//! headers fail (RFC 9110 ignores one that does not parse); and an object's own
//! Last-Modified passes If-Unmodified-Since and fails If-Modified-Since.
//!
//! `passes` is checked against RFC 9110 13.2.2's evaluation order, written out below from
//! the parsed header values: If-Match (strong comparison, `*` any object) or, without it,
//! If-Unmodified-Since; then If-None-Match (weak comparison) or, without it,
//! If-Modified-Since; dates at whole seconds. A missing object fails If-Match and
//! If-Modified-Since and passes the others.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::conditional::{
    format_http_date, parse_etag_list, parse_http_date, EtagCondition,
};
use tristore::r2::R2Conditional;

/// RFC 9110 13.2.2 for the `headers` given (each name at most once), for an existing
/// object with `etag` uploaded at `uploaded` ms, or a missing one (`None`).
fn rfc9110(headers: &[(&str, &str)], current: Option<(&str, i64)>) -> bool {
    let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let if_match = get("If-Match").map(|v| parse_etag_list(v).unwrap());
    let if_none_match = get("If-None-Match").map(|v| parse_etag_list(v).unwrap());
    let since = get("If-Modified-Since").and_then(parse_http_date);
    let unmodified = get("If-Unmodified-Since").and_then(parse_http_date);
    let Some((etag, uploaded)) = current else {
        return if_match.is_none() && since.is_none();
    };
    let seconds = |ms: i64| ms.div_euclid(1000);
    // Step 1 / 2.
    if let Some(list) = &if_match {
        let strong = list.iter().any(|c| match c {
            EtagCondition::Any => true,
            EtagCondition::Strong(e) => e == etag,
            EtagCondition::Weak(_) => false,
        });
        if !strong {
            return false;
        }
    } else if let Some(date) = unmodified {
        if seconds(uploaded) > seconds(date) {
            return false;
        }
    }
    // Step 3 / 4.
    if let Some(list) = &if_none_match {
        let weak = list.iter().any(|c| match c {
            EtagCondition::Any => true,
            EtagCondition::Strong(e) | EtagCondition::Weak(e) => e == etag,
        });
        if weak {
            return false;
        }
    } else if let Some(date) = since {
        if seconds(uploaded) <= seconds(date) {
            return false;
        }
    }
    true
}

/// 9999-12-31T23:59:59Z, the last instant an HTTP date can name.
const LAST_HTTP_DATE_MS: i64 = 253_402_300_799_000;

/// `passes` against [`rfc9110`] for every subset of the four headers, for the object and
/// for a missing one.
fn check_every_subset(headers: &[(&str, &str); 4], etag: &str, uploaded: i64) {
    for mask in 0..16u8 {
        let subset: Vec<(&str, &str)> = (0..4)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| headers[i])
            .collect();
        if let Ok(c) = R2Conditional::from_headers(subset.iter().copied()) {
            for current in [Some((etag, uploaded)), None] {
                assert_eq!(
                    c.passes(current),
                    rfc9110(&subset, current),
                    "{subset:?} for {current:?}"
                );
            }
        }
    }
}

fuzz_target!(|input: (&str, &str, &str, &str, &str, i64)| {
    let (if_match, if_none_match, since, unmodified, etag, uploaded) = input;
    let headers = [
        ("If-Match", if_match),
        ("If-None-Match", if_none_match),
        ("If-Modified-Since", since),
        ("If-Unmodified-Since", unmodified),
    ];
    check_every_subset(&headers, etag, uploaded);
    R2Conditional::from_headers(headers[2..].iter().copied()).expect("dates never fail");

    let uploaded = uploaded.rem_euclid(LAST_HTTP_DATE_MS);
    // Values random bytes rarely make: the object's own etag quoted (or another, or `*`)
    // and real dates a fuzzed offset either side of its upload time.
    let quoted = format!("\"{}\"", etag.replace('"', ""));
    let pick = |b: u8| match b % 3 {
        0 => quoted.clone(),
        1 => format!("W/{quoted}"),
        _ => "*".to_owned(),
    };
    let near = |shift: u32| {
        let offset = i64::from(shift % 7_200_000) - 3_600_000;
        format_http_date((uploaded + offset).clamp(0, LAST_HTTP_DATE_MS))
    };
    let seed = (uploaded as u64).to_le_bytes();
    let made = [
        pick(seed[0]),
        pick(seed[1]),
        near(u32::from_le_bytes([seed[2], seed[3], seed[4], 0])),
        near(u32::from_le_bytes([seed[5], seed[6], seed[7], 0]) ^ 0x5a5a5a),
    ];
    let made = [
        ("If-Match", made[0].as_str()),
        ("If-None-Match", made[1].as_str()),
        ("If-Modified-Since", made[2].as_str()),
        ("If-Unmodified-Since", made[3].as_str()),
    ];
    check_every_subset(&made, &etag.replace('"', ""), uploaded);

    let last_modified = format_http_date(uploaded);
    assert_eq!(
        parse_http_date(&last_modified),
        Some(uploaded - uploaded % 1000)
    );
    let current = Some((etag, uploaded));
    let unmodified = [("If-Unmodified-Since", last_modified.as_str())];
    assert!(R2Conditional::from_headers(unmodified)
        .unwrap()
        .passes(current));
    let modified = [("If-Modified-Since", last_modified.as_str())];
    assert!(!R2Conditional::from_headers(modified)
        .unwrap()
        .passes(current));
});
