//! aws-chunked bodies: any bytes decode or fail with an S3 error (never a panic or an
//! unbounded allocation), unsigned and signed; decoded bytes are never more than sent.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use tristore::r2::presign::Verified;
use tristore::server::s3::chunked::{ChunkedReader, Variant};
use tristore::server::s3::error::S3Error;

fuzz_target!(|data: &[u8]| {
    let verified = Verified {
        access_key_id: "k".into(),
        region: "auto".into(),
        payload_hash: String::new(),
        signature: "seed".into(),
        date_time: "20260101T000000Z".into(),
        scope: "20260101/auto/s3/aws4_request".into(),
        signing_key: b"key".to_vec(),
    };
    for variant in [
        Variant::UnsignedWithTrailer,
        Variant::Signed,
        Variant::SignedWithTrailer,
    ] {
        let mut reader = ChunkedReader::new(data, variant, Some(verified.clone())).unwrap();
        let mut out = Vec::new();
        match reader.read_to_end(&mut out) {
            Ok(_) => assert!(out.len() <= data.len()),
            Err(e) => {
                let s3 = e.get_ref().and_then(|e| e.downcast_ref::<S3Error>());
                assert!(s3.is_some(), "an error without an S3 answer: {e}");
            }
        }
    }
});
