//! `Range` header parsing and resolution: no panic (no arithmetic that can overflow,
//! whatever the numbers), a resolved range lies inside the object, and a last byte past
//! the end, however large, returns the rest of the object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::R2Range;

fuzz_target!(|input: (&str, u64, u64)| {
    let (header, size, first) = input;
    if let Ok(Some(range)) = R2Range::from_header(header) {
        if let Ok(r) = range.resolve(size) {
            assert!(r.length <= size && r.offset <= size - r.length);
        }
    }
    if first < size {
        for last in [
            size.to_string(),
            u64::MAX.to_string(),
            format!("{}0", u64::MAX),
        ] {
            let range = R2Range::from_header(&format!("bytes={first}-{last}"))
                .unwrap()
                .unwrap();
            let r = range.resolve(size).unwrap();
            assert_eq!((r.offset, r.length), (first, size - first));
        }
    }
});
