//! `aws-chunked` request bodies, decoded as they stream in.
//!
//! Three framings exist (s3-protocol-notes 4.3). The signed ones put
//! `<hex size>;chunk-signature=<sig>` before each chunk and chain every signature to the
//! previous one, starting from the request's own; `…-TRAILER` adds checksum lines and a
//! trailer signature after the final empty chunk. `STREAMING-UNSIGNED-PAYLOAD-TRAILER`,
//! what current AWS SDKs send, has plain `<hex size>` lines and an unsigned trailer whose
//! checksum is then the only integrity check, so the caller must verify it.

use std::io::{self, BufRead, Read};

use sha2::{Digest, Sha256};

use super::error::S3Error;
use crate::r2::presign::Verified;

/// Longest chunk-header or trailer line accepted.
const MAX_LINE: u64 = 4096;

/// Which aws-chunked framing a request uses, from its `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`.
    SignedWithTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
    UnsignedWithTrailer,
}

impl Variant {
    /// The framing a payload-hash literal announces; `None` for a plain body.
    pub fn from_payload_hash(hash: &str) -> Option<Variant> {
        match hash {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Some(Variant::Signed),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Some(Variant::SignedWithTrailer),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Some(Variant::UnsignedWithTrailer),
            _ => None,
        }
    }

    fn signed(self) -> bool {
        self != Variant::UnsignedWithTrailer
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Header,
    /// Inside a chunk's data.
    Data,
    /// The final chunk and the trailer have been read.
    Done,
}

/// Reads the decoded bytes of an aws-chunked body from `inner`.
pub struct ChunkedReader<R> {
    inner: R,
    variant: Variant,
    /// For the signed variants: what signed the request, and the last signature seen.
    chain: Option<(Verified, String)>,
    state: State,
    remaining: u64,
    chunk_signature: String,
    chunk_hash: Sha256,
    trailers: Vec<(String, String)>,
}

/// An I/O error carrying the S3 error to answer with.
pub fn io_error(e: S3Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn malformed(what: &str) -> io::Error {
    io_error(S3Error::new(
        400,
        "IncompleteBody",
        format!("The aws-chunked body is malformed: {what}"),
    ))
}

fn signature_mismatch(what: &str) -> io::Error {
    io_error(S3Error::new(
        403,
        "SignatureDoesNotMatch",
        format!("The {what} signature we calculated does not match the one you provided. Check your key and signing method."),
    ))
}

impl<R: BufRead> ChunkedReader<R> {
    /// A decoder; the signed variants need the request's verified signature.
    pub fn new(inner: R, variant: Variant, verified: Option<Verified>) -> Result<Self, S3Error> {
        let chain = match (variant.signed(), verified) {
            (true, Some(v)) => {
                let seed = v.signature.clone();
                Some((v, seed))
            }
            (true, None) => {
                return Err(S3Error::invalid_request(
                    "A signed aws-chunked body needs a header-signed request",
                ))
            }
            (false, _) => None,
        };
        Ok(ChunkedReader {
            inner,
            variant,
            chain,
            state: State::Header,
            remaining: 0,
            chunk_signature: String::new(),
            chunk_hash: Sha256::new(),
            trailers: Vec::new(),
        })
    }

    /// A trailer's value, once the body has been read to its end.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// One line without its `\r\n`; `None` at a clean end of input.
    fn line(&mut self) -> io::Result<Option<String>> {
        let mut raw = Vec::new();
        (&mut self.inner)
            .take(MAX_LINE)
            .read_until(b'\n', &mut raw)?;
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.pop() != Some(b'\n') {
            return Err(malformed("a line is unterminated or too long"));
        }
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        String::from_utf8(raw)
            .map(Some)
            .map_err(|_| malformed("a chunk header is not text"))
    }

    fn start_chunk(&mut self) -> io::Result<()> {
        let line = self
            .line()?
            .ok_or_else(|| malformed("the body ended before the final chunk"))?;
        let (size, extension) = match line.split_once(';') {
            Some((size, ext)) => (size, Some(ext)),
            None => (line.as_str(), None),
        };
        let size = u64::from_str_radix(size.trim(), 16)
            .ok()
            .filter(|_| !size.trim().is_empty() && size.trim().len() <= 16)
            .ok_or_else(|| malformed("a chunk size is not hexadecimal"))?;
        if self.chain.is_some() {
            self.chunk_signature = extension
                .and_then(|e| e.trim().strip_prefix("chunk-signature="))
                .map(str::to_owned)
                .ok_or_else(|| malformed("a signed chunk lacks its chunk-signature"))?;
        }
        self.chunk_hash = Sha256::new();
        self.remaining = size;
        if size > 0 {
            self.state = State::Data;
            return Ok(());
        }
        self.check_chunk_signature()?;
        self.read_trailer()?;
        self.state = State::Done;
        Ok(())
    }

    fn check_chunk_signature(&mut self) -> io::Result<()> {
        let Some((verified, previous)) = &mut self.chain else {
            return Ok(());
        };
        let hash = std::mem::take(&mut self.chunk_hash).finalize();
        let expected = verified.chunk_signature(previous, &hash);
        if expected != self.chunk_signature {
            return Err(signature_mismatch("chunk"));
        }
        *previous = expected;
        Ok(())
    }

    fn end_chunk(&mut self) -> io::Result<()> {
        match self.line()? {
            Some(l) if l.is_empty() => {}
            _ => return Err(malformed("a chunk is longer than its size says")),
        }
        self.check_chunk_signature()?;
        self.state = State::Header;
        Ok(())
    }

    fn read_trailer(&mut self) -> io::Result<()> {
        let mut signature = None;
        while let Some(line) = self.line()? {
            if line.is_empty() {
                // The blank line that ends the trailer; some clients add another.
                if self.trailers.is_empty() && signature.is_none() {
                    continue;
                }
                break;
            }
            if self.variant == Variant::Signed {
                // STREAMING-AWS4-HMAC-SHA256-PAYLOAD has no trailer, and nothing would
                // sign one: lines after its final chunk are not ignored but refused.
                return Err(malformed("a trailer after a body framed without one"));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| malformed("a trailer line lacks ':'"))?;
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "x-amz-trailer-signature" {
                signature = Some(value);
            } else if self.trailers.len() < 16 {
                self.trailers.push((name, value));
            } else {
                return Err(malformed("too many trailer lines"));
            }
        }
        if self.variant == Variant::SignedWithTrailer {
            let (verified, previous) = self.chain.as_ref().expect("signed variants keep a chain");
            let mut canonical = String::new();
            for (name, value) in &self.trailers {
                canonical.push_str(&format!("{name}:{value}\n"));
            }
            let expected = verified.trailer_signature(previous, &Sha256::digest(canonical));
            if signature.as_deref() != Some(expected.as_str()) {
                return Err(signature_mismatch("trailer"));
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => self.start_chunk()?,
                State::Data => {
                    if buf.is_empty() {
                        return Ok(0);
                    }
                    let want = buf
                        .len()
                        .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(malformed("the body ended inside a chunk"));
                    }
                    if self.chain.is_some() {
                        self.chunk_hash.update(&buf[..n]);
                    }
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.end_chunk()?;
                    }
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> io::Result<(Vec<u8>, Option<String>)> {
        let mut r = ChunkedReader::new(body, Variant::UnsignedWithTrailer, None).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok((out, r.trailer("x-amz-checksum-crc32").map(str::to_owned)))
    }

    #[test]
    fn unsigned_trailer_bodies_as_sdks_send_them() {
        let body = b"5\r\nHello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:i9aeUg==\r\n\r\n";
        let (data, crc) = decode(body).unwrap();
        assert_eq!(data, b"Hello world");
        assert_eq!(crc.as_deref(), Some("i9aeUg=="));
        // Without the closing blank line, and with an extra one before the trailer.
        assert!(decode(b"5\r\nHello\r\n0\r\n\r\nx-amz-checksum-crc32:i9aeUg==\r\n").is_ok());
        assert_eq!(decode(b"0\r\n\r\n").unwrap().0, b"");
    }

    #[test]
    fn signed_chunks_are_chained_and_checked() {
        let verified = Verified {
            access_key_id: "k".into(),
            region: "auto".into(),
            payload_hash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into(),
            signature: "seed".into(),
            date_time: "20260101T000000Z".into(),
            scope: "20260101/auto/s3/aws4_request".into(),
            signing_key: b"key".to_vec(),
        };
        let mut body = Vec::new();
        let mut previous = "seed".to_owned();
        for data in [&b"Hello "[..], b"world", b""] {
            previous = verified.chunk_signature(&previous, &Sha256::digest(data));
            body.extend(format!("{:x};chunk-signature={previous}\r\n", data.len()).as_bytes());
            body.extend(data);
            body.extend(b"\r\n");
        }
        let read = |body: &[u8]| {
            let mut r = ChunkedReader::new(body, Variant::Signed, Some(verified.clone())).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read(&body).unwrap(), b"Hello world");
        let mut tampered = body.clone();
        let at = tampered.windows(5).position(|w| w == b"world").unwrap();
        tampered[at] = b'W';
        let e = read(&tampered).unwrap_err();
        let s3 = e
            .get_ref()
            .and_then(|e| e.downcast_ref::<S3Error>())
            .unwrap();
        assert_eq!(s3.code, "SignatureDoesNotMatch");
    }

    /// The secret of AWS's SigV4 documentation examples.
    const AWS_DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    /// The signatures of the example "Signature Calculations for the Authorization Header:
    /// Transferring Payload in Multiple Chunks" in AWS's S3 API reference: the request's
    /// (the seed), the 64 KiB chunk's, the 1 KiB chunk's and the final empty chunk's.
    const AWS_SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const AWS_CHUNK_1: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
    const AWS_CHUNK_2: &str = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
    const AWS_FINAL: &str = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";
    /// The trailer signature AWS's own signer (aws-c-auth, through aws-crt-swift's
    /// `ChunkSignerTests`) gives the trailer `first:1st`, `second:2nd`, `third:3rd` after
    /// that example's final chunk, with the same key, date and scope.
    const AWS_CRT_TRAILER: &str =
        "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c";

    /// AWS's example request, verified by our SigV4 code: its signature must come out as
    /// the published seed, and what it proves then checks the body.
    fn aws_example_request() -> Verified {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
             x-amz-decoded-content-length;x-amz-storage-class,Signature={AWS_SEED}"
        );
        let headers = [
            ("Host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Authorization", authorization.as_str()),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("Content-Length", "66824"),
        ];
        let request = crate::r2::presign::SignedRequest {
            method: "PUT",
            path: "/examplebucket/chunkObject.txt",
            query: "",
            headers: &headers,
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600 + 60);
        let verified = request
            .verify(|_| Some(AWS_DOC_SECRET.to_owned()), at)
            .expect("AWS's example request verifies");
        assert_eq!(verified.signature, AWS_SEED);
        verified
    }

    /// AWS's example body: 66560 bytes of `a` in a 64 KiB chunk, a 1 KiB chunk and the
    /// final empty chunk, each with its published signature, then `trailer` (which for the
    /// plain signed framing is only the closing CRLF).
    fn aws_example_body(trailer: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(format!("10000;chunk-signature={AWS_CHUNK_1}\r\n").as_bytes());
        body.extend([b'a'; 65_536]);
        body.extend(format!("\r\n400;chunk-signature={AWS_CHUNK_2}\r\n").as_bytes());
        body.extend([b'a'; 1_024]);
        body.extend(format!("\r\n0;chunk-signature={AWS_FINAL}\r\n").as_bytes());
        body.extend(trailer.as_bytes());
        body
    }

    fn read_all(body: &[u8], variant: Variant, verified: Verified) -> io::Result<Vec<u8>> {
        let mut r = ChunkedReader::new(body, variant, Some(verified)).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).map(|_| out)
    }

    fn s3_code(e: &io::Error) -> &'static str {
        e.get_ref()
            .and_then(|e| e.downcast_ref::<S3Error>())
            .unwrap_or_else(|| panic!("not an S3 error: {e:?}"))
            .code
    }

    #[test]
    fn aws_published_streaming_example_decodes() {
        let body = aws_example_body("\r\n");
        assert_eq!(body.len(), 66_824, "the example's Content-Length");
        let data = read_all(&body, Variant::Signed, aws_example_request()).unwrap();
        assert_eq!(data, vec![b'a'; 66_560]);
        // Read through a small buffer too, so chunk boundaries fall inside reads.
        let mut r =
            ChunkedReader::new(&body[..], Variant::Signed, Some(aws_example_request())).unwrap();
        let (mut out, mut buf) = (Vec::<u8>::new(), [0u8; 777]);
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend(&buf[..n]);
        }
        assert_eq!(out, vec![b'a'; 66_560]);
    }

    #[test]
    fn aws_published_streaming_example_refuses_tampering() {
        let verified = aws_example_request();
        let body = aws_example_body("\r\n");
        // One data byte changed in the second chunk.
        let mut tampered = body.clone();
        let at = body.len() - 200;
        assert_eq!(tampered[at], b'a');
        tampered[at] = b'b';
        let e = read_all(&tampered, Variant::Signed, verified.clone()).unwrap_err();
        assert_eq!(s3_code(&e), "SignatureDoesNotMatch");
        // The two data chunks swapped with their signatures: the chain is broken.
        let swapped = [
            format!("400;chunk-signature={AWS_CHUNK_2}\r\n").as_bytes(),
            &[b'a'; 1_024][..],
            format!("\r\n10000;chunk-signature={AWS_CHUNK_1}\r\n").as_bytes(),
            &[b'a'; 65_536][..],
            format!("\r\n0;chunk-signature={AWS_FINAL}\r\n\r\n").as_bytes(),
        ]
        .concat();
        let e = read_all(&swapped, Variant::Signed, verified.clone()).unwrap_err();
        assert_eq!(s3_code(&e), "SignatureDoesNotMatch");
        // A different final-chunk signature.
        let wrong_final = String::from_utf8(body.clone())
            .unwrap()
            .replace(AWS_FINAL, &AWS_FINAL.replace('b', "c"));
        let e = read_all(wrong_final.as_bytes(), Variant::Signed, verified.clone()).unwrap_err();
        assert_eq!(s3_code(&e), "SignatureDoesNotMatch");
        // Trailer lines nothing signs, after a body framed without a trailer.
        let appended = aws_example_body("x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
        let e = read_all(&appended, Variant::Signed, verified).unwrap_err();
        assert_eq!(s3_code(&e), "IncompleteBody");
    }

    #[test]
    fn signed_trailer_is_verified_against_aws_signer() {
        let verified = aws_example_request();
        let trailer = |value: &str, signature: &str| {
            format!(
                "first:1st\r\nsecond:{value}\r\nthird:3rd\r\nx-amz-trailer-signature:{signature}\r\n\r\n"
            )
        };
        let good = aws_example_body(&trailer("2nd", AWS_CRT_TRAILER));
        let mut r = ChunkedReader::new(
            &good[..],
            Variant::SignedWithTrailer,
            Some(verified.clone()),
        )
        .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![b'a'; 66_560]);
        assert_eq!(r.trailer("second"), Some("2nd"));

        // A changed trailer value under the original signature.
        let changed = aws_example_body(&trailer("2nx", AWS_CRT_TRAILER));
        let e = read_all(&changed, Variant::SignedWithTrailer, verified.clone()).unwrap_err();
        assert_eq!(s3_code(&e), "SignatureDoesNotMatch");
        // A changed signature, and none at all.
        let mut wrong_sig = AWS_CRT_TRAILER.to_owned();
        wrong_sig.replace_range(0..1, "e");
        let wrong = aws_example_body(&trailer("2nd", &wrong_sig));
        let e = read_all(&wrong, Variant::SignedWithTrailer, verified.clone()).unwrap_err();
        assert_eq!(s3_code(&e), "SignatureDoesNotMatch");
        let unsigned = aws_example_body("first:1st\r\nsecond:2nd\r\nthird:3rd\r\n\r\n");
        let e = read_all(&unsigned, Variant::SignedWithTrailer, verified).unwrap_err();
        assert_eq!(s3_code(&e), "SignatureDoesNotMatch");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            &b"5\r\nHel"[..],
            b"5\r\nHelloX\r\n0\r\n\r\n",
            b"zz\r\nHello\r\n",
            b"5\r\nHello\r\n",
            b"\r\n",
        ] {
            let e = decode(bad).unwrap_err();
            let s3 = e
                .get_ref()
                .and_then(|e| e.downcast_ref::<S3Error>())
                .unwrap();
            assert_eq!(
                s3.code,
                "IncompleteBody",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
