//! aws-chunked bodies: any bytes decode or fail with an S3 error (never a panic or an
//! unbounded allocation), unsigned and signed; decoded bytes are never more than sent.
//! And only the signed payload hash selects the framing: with `Content-Encoding:
//! aws-chunked` but a plain payload hash, the bytes are read as sent, and a literal hash
//! they do not match always fails.
#![no_main]

use std::io::Read;

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tristore::r2::presign::Verified;
use tristore::server::s3::body::BodyPlan;
use tristore::server::s3::chunked::{ChunkedReader, Variant};
use tristore::server::s3::error::S3Error;

fn s3_error(e: &std::io::Error) -> Option<&S3Error> {
    e.get_ref().and_then(|e| e.downcast_ref::<S3Error>())
}

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
            Err(e) => assert!(s3_error(&e).is_some(), "an error without an S3 answer: {e}"),
        }
    }

    let mut headers = HeaderMap::new();
    headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    headers.insert(
        "x-amz-decoded-content-length",
        HeaderValue::from(data.len()),
    );
    let read = |payload_hash: &str| {
        let verified = Verified {
            payload_hash: payload_hash.into(),
            ..verified.clone()
        };
        let plan = BodyPlan::from_request(&headers, &verified).unwrap();
        let mut reader = plan
            .reader(Box::new(std::io::Cursor::new(data.to_vec())))
            .unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    };
    assert_eq!(read("UNSIGNED-PAYLOAD").unwrap(), data, "read as sent");
    let e = read(&"0".repeat(64)).expect_err("a body that does not match its signed hash");
    assert_eq!(s3_error(&e).unwrap().code, "XAmzContentSHA256Mismatch");
});
