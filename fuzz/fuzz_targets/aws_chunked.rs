//! aws-chunked bodies.
//!
//! 1. Any bytes decode or fail with an S3 error (never a panic or an unbounded
//!    allocation), unsigned and signed; decoded bytes are never more than sent.
//! 2. A correctly signed body, built from the input with the real chunk and trailer
//!    signer (`Verified::chunk_signature` / `trailer_signature`) in fuzzed chunk sizes,
//!    with and without a signed trailer, decodes to exactly the input's bytes and its
//!    trailer value. With any single byte of it changed, it is refused, unless the change
//!    is one the framing allows (an ASCII case change, or a header or trailer line's `\r`
//!    turned into other whitespace that the decoder trims), and then it still decodes to
//!    the same bytes. So chunk and trailer signature verification are reached and must
//!    hold.
//! 3. Only the signed payload hash selects the framing: with `Content-Encoding:
//!    aws-chunked` but a plain payload hash, the bytes are read as sent, and a literal hash
//!    they do not match always fails.
#![no_main]

use std::io::Read;

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tristore::r2::presign::Verified;
use tristore::server::s3::body::BodyPlan;
use tristore::server::s3::chunked::{ChunkedReader, Variant};
use tristore::server::s3::error::S3Error;

fn s3_error(e: &std::io::Error) -> Option<&S3Error> {
    e.get_ref().and_then(|e| e.downcast_ref::<S3Error>())
}

/// The decoded bytes and the `x-amz-checksum-crc32` trailer of `body`.
fn decode(
    body: &[u8],
    variant: Variant,
    verified: &Verified,
) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let mut reader = ChunkedReader::new(body, variant, Some(verified.clone())).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    let trailer = reader.trailer("x-amz-checksum-crc32").map(str::to_owned);
    Ok((out, trailer))
}

/// `payload` framed as a signed aws-chunked body in chunks of `chunk` bytes, each signed
/// with the real signer and chained from the request's signature; with `trailer`, an
/// `x-amz-checksum-crc32` trailer signed as AWS specifies (the SHA-256 of
/// `name:value\n`, chained from the final chunk's signature).
fn signed_body(
    verified: &Verified,
    payload: &[u8],
    chunk: usize,
    trailer: Option<&str>,
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut previous = verified.signature.clone();
    for data in payload.chunks(chunk).chain([&[][..]]) {
        previous = verified.chunk_signature(&previous, &Sha256::digest(data));
        body.extend(format!("{:x};chunk-signature={previous}\r\n", data.len()).as_bytes());
        body.extend(data);
        if !data.is_empty() {
            body.extend(b"\r\n");
        }
    }
    match trailer {
        Some(value) => {
            let line = format!("x-amz-checksum-crc32:{value}");
            let signature =
                verified.trailer_signature(&previous, &Sha256::digest(format!("{line}\n")));
            body.extend(
                format!("{line}\r\nx-amz-trailer-signature:{signature}\r\n\r\n").as_bytes(),
            );
        }
        None => body.extend(b"\r\n"),
    }
    body
}

/// Arbitrary bytes, the payload to sign, the chunk size, whether to add a signed
/// trailer, the trailer's value, and single-byte changes (position, xor) to try.
type Input<'a> = (&'a [u8], &'a [u8], u16, bool, &'a str, Vec<(u32, u8)>);

fuzz_target!(|input: Input<'_>| {
    let (data, payload, chunk, with_trailer, trailer_value, mutations) = input;
    let verified = Verified {
        access_key_id: "k".into(),
        region: "auto".into(),
        payload_hash: String::new(),
        signature: hex_of(&Sha256::digest(data)),
        date_time: "20260101T000000Z".into(),
        scope: "20260101/auto/s3/aws4_request".into(),
        signing_key: Sha256::digest(payload).to_vec(),
    };

    // 1. Arbitrary bytes.
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

    // 2. A correctly signed body, then single-byte changes to it.
    let chunk = usize::from(chunk % 4096) + 1;
    // A trailer value as clients send one (base64), non-empty.
    let value: String = trailer_value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+/=".contains(*c))
        .take(64)
        .collect();
    let value = if value.is_empty() {
        "AAAAAA==".to_owned()
    } else {
        value
    };
    let (variant, trailer) = if with_trailer {
        (Variant::SignedWithTrailer, Some(value.as_str()))
    } else {
        (Variant::Signed, None)
    };
    let body = signed_body(&verified, payload, chunk, trailer);
    let (decoded, got_trailer) = decode(&body, variant, &verified)
        .unwrap_or_else(|e| panic!("a correctly signed body was refused: {e}"));
    assert_eq!(decoded, payload, "a signed body decodes to what was signed");
    assert_eq!(got_trailer.as_deref(), trailer);
    for (at, xor) in mutations.into_iter().take(8) {
        if xor == 0 {
            continue;
        }
        let at = at as usize % body.len();
        let (was, now) = (body[at], body[at] ^ xor);
        let mut changed = body.clone();
        changed[at] = now;
        match decode(&changed, variant, &verified) {
            Err(e) => assert!(s3_error(&e).is_some(), "an error without an S3 answer: {e}"),
            Ok((out, got)) => {
                let allowed = was.eq_ignore_ascii_case(&now)
                    || (was == b'\r' && (now as char).is_whitespace());
                assert!(
                    allowed,
                    "byte {at} changed from {was:#04x} to {now:#04x} and the body was still accepted"
                );
                assert_eq!(out, payload, "an accepted body decodes to what was signed");
                assert_eq!(got.as_deref(), trailer);
            }
        }
    }

    // 3. The signed payload hash, not Content-Encoding, selects the framing.
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
    let wrong = if hex_of(&Sha256::digest(data)) == "0".repeat(64) {
        "1".repeat(64)
    } else {
        "0".repeat(64)
    };
    let e = read(&wrong).expect_err("a body that does not match its signed hash");
    assert_eq!(s3_error(&e).unwrap().code, "XAmzContentSHA256Mismatch");
});

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
