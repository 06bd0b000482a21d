//! NDJSON vector bodies: any bytes parse or fail with a Vectorize error naming a line;
//! discarding keeps at least as many vectors as failing would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::vectorize::ndjson::{parse, Unparsable};
use tristore::vectorize::Op;

fuzz_target!(|data: &[u8]| {
    let kept = parse(Op::Insert, data, Unparsable::Discard).expect("discard never fails");
    match parse(Op::Insert, data, Unparsable::Error) {
        Ok(all) => assert_eq!(all, kept),
        Err(e) => assert!(e.message.starts_with("line ")),
    }
});
