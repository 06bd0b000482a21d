//! Request bodies: framing (plain or aws-chunked), verification (payload SHA-256,
//! `Content-MD5`, `x-amz-checksum-*` from a header or a trailer), and the bridge from
//! the async HTTP body to the blocking store; and object bodies streamed back out.

use std::io::{self, BufReader, Read};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::HeaderMap;
use base64::Engine;
use md5::Digest;

use super::checksum::{self, Algorithm, Hasher};
use super::chunked::{ChunkedReader, Variant};
use super::error::S3Error;
use crate::r2::presign::Verified;
use crate::server::stream;

/// How a request's body is framed and what it must be checked against.
#[derive(Debug, Clone)]
pub struct BodyPlan {
    variant: Option<Variant>,
    verified: Verified,
    length: Option<u64>,
    payload_sha256: Option<Vec<u8>>,
    content_md5: Option<Vec<u8>>,
    /// The flexible checksum and its expected value (`None`: it comes in the trailer).
    checksum: Option<(Algorithm, Option<Vec<u8>>)>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl BodyPlan {
    /// Reads the framing and the checks from the request's headers.
    pub fn from_request(headers: &HeaderMap, verified: &Verified) -> Result<Self, S3Error> {
        // The signed payload hash alone chooses the framing. `Content-Encoding` is not
        // signed, so it must not turn a literal hash's check off; on a plain body its
        // `aws-chunked` is a label, left out of the stored encoding.
        let variant = Variant::from_payload_hash(&verified.payload_hash);
        let payload_sha256 = match verified.payload_hash.as_str() {
            "UNSIGNED-PAYLOAD" => None,
            _ if variant.is_some() => None,
            hash => Some(
                hex::decode(hash)
                    .ok()
                    .filter(|h| h.len() == 32)
                    .ok_or_else(|| {
                        S3Error::invalid_argument(
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a hex SHA-256",
                )
                    })?,
            ),
        };
        let length_header = if variant.is_some() {
            "x-amz-decoded-content-length"
        } else {
            "content-length"
        };
        let length = match header(headers, length_header) {
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                S3Error::invalid_argument(format!("{length_header} must be a number of bytes"))
            })?),
            None => None,
        };
        let content_md5 = match header(headers, "content-md5") {
            Some(v) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .ok()
                    .filter(|d| d.len() == 16)
                    .ok_or_else(|| {
                        S3Error::new(
                            400,
                            "InvalidDigest",
                            "The Content-MD5 you specified was invalid.",
                        )
                    })?,
            ),
            None => None,
        };
        let mut checksum = None;
        for alg in Algorithm::ALL {
            if let Some(value) = header(headers, alg.header_name()) {
                if checksum.is_some() {
                    return Err(S3Error::invalid_request(
                        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                    ));
                }
                checksum = Some((alg, Some(alg.decode(value)?)));
            }
        }
        if let Some(name) = header(headers, "x-amz-trailer") {
            if checksum.is_some() {
                return Err(S3Error::invalid_request(
                    "x-amz-trailer cannot be combined with an x-amz-checksum- header",
                ));
            }
            if variant.is_none() {
                return Err(S3Error::invalid_request(
                    "x-amz-trailer needs an aws-chunked body",
                ));
            }
            checksum = Some((Algorithm::from_name(name.trim())?, None));
        }
        // Any other x-amz-checksum-<algorithm> names one R2 does not support.
        const NOT_ALGORITHMS: [&str; 3] = ["mode", "type", "algorithm"];
        for name in headers.keys() {
            if let Some(alg) = name.as_str().strip_prefix("x-amz-checksum-") {
                if !NOT_ALGORITHMS.contains(&alg) {
                    Algorithm::from_name(alg)?;
                }
            }
        }
        Ok(BodyPlan {
            variant,
            verified: verified.clone(),
            length,
            payload_sha256,
            content_md5,
            checksum,
        })
    }

    /// The framing the request announced: its `STREAMING-…` payload hash, or `plain`.
    pub fn framing(&self) -> &'static str {
        match self.variant {
            Some(Variant::Signed) => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Some(Variant::SignedWithTrailer) => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            Some(Variant::UnsignedWithTrailer) => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            None => "plain",
        }
    }

    /// The decoded body's length, which S3 requires up front.
    pub fn length(&self) -> Result<u64, S3Error> {
        self.length.ok_or_else(|| {
            S3Error::new(
                411,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
            )
        })
    }

    /// The flexible checksum the client sent, if any (the store keeps it).
    pub fn checksum_algorithm(&self) -> Option<Algorithm> {
        self.checksum.as_ref().map(|(alg, _)| *alg)
    }

    /// The decoded, checked body of `source`.
    pub fn reader(self, source: Box<dyn Read + Send>) -> Result<CheckedBody, S3Error> {
        let buffered = BufReader::with_capacity(64 * 1024, source);
        let inner = match self.variant {
            Some(variant) => Framing::Chunked(Box::new(ChunkedReader::new(
                buffered,
                variant,
                Some(self.verified),
            )?)),
            None => Framing::Plain(buffered),
        };
        Ok(CheckedBody {
            inner,
            sha256: self.payload_sha256.map(|want| (sha2::Sha256::new(), want)),
            md5: self.content_md5.map(|want| (md5::Md5::new(), want)),
            checksum: self
                .checksum
                .map(|(alg, want)| (Hasher::new(alg), alg, want)),
            failure: Failure::default(),
            checked: false,
        })
    }
}

enum Framing {
    Plain(BufReader<Box<dyn Read + Send>>),
    Chunked(Box<ChunkedReader<BufReader<Box<dyn Read + Send>>>>),
}

/// Where a body reader leaves the S3 error behind its I/O error, for the handler to
/// answer with once the store has given up.
#[derive(Debug, Clone, Default)]
pub struct Failure(Arc<Mutex<Option<S3Error>>>);

impl Failure {
    fn set(&self, e: S3Error) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    /// The recorded error, if the body failed.
    pub fn take(&self) -> Option<S3Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A request body that fails its last read when a check does not hold, so that the
/// store, which commits only after reading to the end, stores nothing.
pub struct CheckedBody {
    inner: Framing,
    sha256: Option<(sha2::Sha256, Vec<u8>)>,
    md5: Option<(md5::Md5, Vec<u8>)>,
    checksum: Option<(Hasher, Algorithm, Option<Vec<u8>>)>,
    failure: Failure,
    checked: bool,
}

impl CheckedBody {
    /// The handle that reports why a read failed.
    pub fn failure(&self) -> Failure {
        self.failure.clone()
    }

    fn fail(&self, e: S3Error) -> io::Error {
        self.failure.set(e.clone());
        super::chunked::io_error(e)
    }

    fn check(&mut self) -> Result<(), S3Error> {
        if let Some((h, want)) = self.sha256.take() {
            if h.finalize().as_slice() != want.as_slice() {
                return Err(S3Error::new(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
        }
        if let Some((h, want)) = self.md5.take() {
            if h.finalize().as_slice() != want.as_slice() {
                return Err(S3Error::new(
                    400,
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                ));
            }
        }
        if let Some((h, alg, want)) = self.checksum.take() {
            let want = match want {
                Some(w) => w,
                None => {
                    let value = match &self.inner {
                        Framing::Chunked(c) => c.trailer(alg.header_name()),
                        Framing::Plain(_) => None,
                    };
                    let value = value.ok_or_else(|| {
                        S3Error::invalid_request(format!(
                            "The trailer announced by x-amz-trailer ({}) was not sent",
                            alg.header_name()
                        ))
                    })?;
                    alg.decode(value)?
                }
            };
            let got = h.finish();
            if got != want {
                return Err(S3Error::new(
                    400,
                    "BadDigest",
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        alg.header_name()
                    ),
                )
                .with("CalculatedChecksum", checksum::encode(&got)));
            }
        }
        Ok(())
    }
}

impl Read for CheckedBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Framing::Plain(r) => r.read(buf),
            Framing::Chunked(r) => r.read(buf),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                let s3 = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<S3Error>())
                    .cloned()
                    .unwrap_or_else(|| {
                        if stream::is_body_timeout(&e) {
                            S3Error::new(
                                400,
                                "RequestTimeout",
                                "Your socket connection to the server was not read from or written to within the timeout period.",
                            )
                        } else {
                            S3Error::new(
                                400,
                                "IncompleteBody",
                                format!("The request body could not be read: {e}"),
                            )
                        }
                    });
                return Err(self.fail(s3));
            }
        };
        let data = &buf[..n];
        if n > 0 {
            if let Some((h, _)) = &mut self.sha256 {
                h.update(data);
            }
            if let Some((h, _)) = &mut self.md5 {
                h.update(data);
            }
            if let Some((h, _, _)) = &mut self.checksum {
                h.update(data);
            }
        } else if !buf.is_empty() && !self.checked {
            self.checked = true;
            if let Err(e) = self.check() {
                return Err(self.fail(e));
            }
        }
        Ok(n)
    }
}

/// Runs `work` on a blocking thread over the checked body of `body` while the body
/// streams in. When `work` fails because the body did, the body's error is returned.
pub async fn consume<T: Send + 'static>(
    body: Body,
    plan: BodyPlan,
    work: impl FnOnce(&mut CheckedBody) -> Result<T, S3Error> + Send + 'static,
) -> Result<T, S3Error> {
    let _slot = stream::upload_slot().await;
    let (source, pump) = stream::body_reader(body);
    let mut reader = plan.reader(Box::new(source))?;
    let failure = reader.failure();
    let task = tokio::task::spawn_blocking(move || work(&mut reader));
    pump.await;
    let result = task
        .await
        .map_err(|e| S3Error::internal(format!("the request task failed: {e}")))?;
    result.map_err(|e| failure.take().unwrap_or(e))
}

/// The whole checked body, for the small XML requests (at most `limit` bytes).
pub async fn read_all(body: Body, plan: BodyPlan, limit: u64) -> Result<Vec<u8>, S3Error> {
    consume(body, plan, move |reader| {
        let mut out = Vec::new();
        reader
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| S3Error::new(400, "IncompleteBody", e.to_string()))?;
        if out.len() as u64 > limit {
            return Err(S3Error::new(
                400,
                "MaxMessageLengthExceeded",
                format!("Your request was too big: at most {limit} bytes are accepted here."),
            ));
        }
        // Reaching the end runs the checks.
        let mut end = [0u8; 1];
        reader
            .read(&mut end)
            .map_err(|e| S3Error::new(400, "IncompleteBody", e.to_string()))?;
        Ok(out)
    })
    .await
}

/// An object's bytes as a response body, with bounded memory.
pub async fn object_body(reader: impl Read + Send + 'static, length: u64) -> Result<Body, S3Error> {
    stream::reader_body(reader, length)
        .await
        .map_err(|e| S3Error::internal(format!("reading the object: {e}")))
}
