//! The PutBucketCors and PutBucketLifecycleConfiguration bodies: any bytes give rules or
//! one of the errors S3 answers a bad configuration with, never a panic; and what parses
//! is written back in a form that parses to the same document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::server::s3::{cors, lifecycle};

fuzz_target!(|data: &[u8]| {
    match cors::parse(data) {
        Ok(rules) => {
            let written = cors::to_xml(&rules);
            let again = cors::parse(written.as_bytes()).expect("our own XML parses");
            assert_eq!(cors::to_xml(&again), written);
        }
        Err(e) => assert_eq!(e.code, "MalformedXML"),
    }
    match lifecycle::parse(data) {
        Ok(rules) => {
            let written = lifecycle::to_xml(&rules);
            let again = lifecycle::parse(written.as_bytes()).expect("our own XML parses");
            assert_eq!(lifecycle::to_xml(&again), written);
        }
        Err(e) => assert!(
            [
                "MalformedXML",
                "InvalidArgument",
                "NotImplemented",
                "InvalidStorageClass"
            ]
            .contains(&e.code),
            "{}: {}",
            e.code,
            e.message
        ),
    }
});
