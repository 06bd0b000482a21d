//! List cursor decoding: any text decodes or is refused; what decodes re-encodes to
//! something that decodes to the same cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::list::Cursor;

fuzz_target!(|text: &str| {
    if let Ok(cursor) = Cursor::decode(text) {
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }
});
