//! D1 bookmarks and Time Travel timestamps, as the REST API and the CLI take them from
//! users: no panic; a bookmark that parses is exactly the one its point formats to (so
//! two spellings never name one point); every point round-trips; later points sort later.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::d1::fuzzing::{format_bookmark, parse_bookmark};

const TAG: &str = "5a8d119dab43cc67cb3e69b49cb94995";

fuzz_target!(|input: (&str, u64, u64)| {
    let (text, a, b) = input;
    if let Some(at) = parse_bookmark(text, TAG) {
        assert_eq!(format_bookmark(at, TAG), text);
    }
    let _ = tristore::d1::parse_timestamp(text);
    for at in [a, b] {
        assert_eq!(parse_bookmark(&format_bookmark(at, TAG), TAG), Some(at));
    }
    assert_eq!(a.cmp(&b), format_bookmark(a, TAG).cmp(&format_bookmark(b, TAG)));
    if let Ok(at) = tristore::d1::parse_timestamp(&a.to_string()) {
        assert_eq!(at, a * 1_000_000);
    }
});
