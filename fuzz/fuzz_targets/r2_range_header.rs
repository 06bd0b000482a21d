//! `Range` header parsing and resolution: no panic, and a resolved range lies inside
//! the object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::R2Range;

fuzz_target!(|input: (&str, u32)| {
    let (header, size) = input;
    if let Ok(Some(range)) = R2Range::from_header(header) {
        if let Ok(r) = range.resolve(u64::from(size)) {
            assert!(r.offset + r.length <= u64::from(size));
        }
    }
});
