//! The S3 API driven by the official AWS SDK for Rust with its default settings (so
//! with its default CRC32 checksums), over plain HTTP to a server on ephemeral ports,
//! plus presigned URLs fetched with a plain HTTP client.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpRequest;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation,
    RuntimeComponents,
};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use tristore::server::s3::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use tristore::server::{start, RunningServer, ServerOptions};
use tristore::Store;

struct Emulator {
    server: Option<RunningServer>,
    /// The store the server serves, for what has no S3 request (lifecycle passes).
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

impl Emulator {
    fn start() -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let server = start(
            store.clone(),
            ServerOptions {
                port: 0,
                s3_port: 0,
                ..Default::default()
            },
        )
        .unwrap();
        Emulator {
            server: Some(server),
            store,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().s3_addr)
    }

    fn client_with(&self, secret: &str) -> Client {
        self.client_in("auto", secret)
    }

    fn client_in(&self, region: &'static str, secret: &str) -> Client {
        Client::from_conf(self.config(region, secret).build())
    }

    fn config(&self, region: &'static str, secret: &str) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(
                DEFAULT_ACCESS_KEY_ID,
                secret,
                None,
                None,
                "test",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
    }

    fn client(&self) -> Client {
        self.client_with(DEFAULT_SECRET_ACCESS_KEY)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().unwrap();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn read(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

/// Edits a request after the SDK has signed it, as a proxy or an attacker replaying a
/// captured request can.
#[derive(Debug)]
struct AfterSigning(fn(&mut HttpRequest));

impl Intercept for AfterSigning {
    fn name(&self) -> &'static str {
        "AfterSigning"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        (self.0)(context.request_mut());
        Ok(())
    }
}

/// The status and XML body of a plain HTTP request that must fail.
fn refused(result: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match result {
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Ok(r) => panic!(
            "expected an error, got {} {:?}",
            r.status(),
            r.into_string()
        ),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// The debug events of the server's S3 layer, collected from every test in this binary
/// (the server logs `PutObject body bucket=… key=… framing=…` for each PutObject).
static SERVER_LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct ServerLog;

impl std::io::Write for ServerLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SERVER_LOG
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts collecting the server's `tristore::s3::body` debug events (once per process).
fn capture_server_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "tristore::s3::body=debug",
            ))
            .with_writer(|| ServerLog)
            .with_ansi(false)
            .try_init()
            .expect("no other tracing subscriber in this test binary");
    });
}

/// The framing (`plain` or the `STREAMING-…` payload hash) of each PutObject the server
/// received for `bucket`/`key` so far, in order, with the trailer checksum it announced.
fn framings_received(bucket: &str, key: &str) -> Vec<String> {
    let log = SERVER_LOG.lock().unwrap_or_else(|e| e.into_inner());
    let needle = format!("bucket={bucket:?} key={key:?} ");
    String::from_utf8_lossy(&log)
        .lines()
        .filter_map(|line| line.split_once(&needle).map(|(_, rest)| rest.to_owned()))
        .map(|rest| rest.strip_prefix("framing=").unwrap_or(&rest).to_owned())
        .collect()
}

fn presigning() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(600)).unwrap()
}

#[test]
fn objects_round_trip_with_default_checksums() {
    capture_server_log();
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("docs").send().await.unwrap();
        let buckets = s3.list_buckets().send().await.unwrap();
        assert_eq!(buckets.buckets()[0].name(), Some("docs"));
        s3.head_bucket().bucket("docs").send().await.unwrap();

        let put = s3
            .put_object()
            .bucket("docs")
            .key("user-1/doc 1/a+b.txt")
            .body(ByteStream::from_static(b"Hello world"))
            .content_type("text/plain")
            .metadata("title", "greeting")
            .send()
            .await
            .unwrap();
        assert_eq!(put.e_tag(), Some("\"3e25960a79dbc69b674cd4ec67a72c62\""));
        // An in-memory body goes out plain, its CRC32 in a header.
        assert_eq!(
            framings_received("docs", "user-1/doc 1/a+b.txt"),
            ["plain checksum=Some(Crc32)"],
        );
        assert_eq!(
            put.checksum_crc32(),
            Some("i9aeUg=="),
            "the stored CRC32 is echoed"
        );

        // GetObject validates the response checksum by default.
        let got = s3
            .get_object()
            .bucket("docs")
            .key("user-1/doc 1/a+b.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_type(), Some("text/plain"));
        assert_eq!(got.metadata().unwrap()["title"], "greeting");
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().as_ref(),
            b"Hello world"
        );

        let head = s3
            .head_object()
            .bucket("docs")
            .key("user-1/doc 1/a+b.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(11));
        let ranged = s3
            .get_object()
            .bucket("docs")
            .key("user-1/doc 1/a+b.txt")
            .range("bytes=6-")
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.content_range(), Some("bytes 6-10/11"));
        assert_eq!(
            ranged.body.collect().await.unwrap().into_bytes().as_ref(),
            b"world"
        );

        // A streamed body from a file goes out aws-chunked with a CRC32 trailer: over plain
        // HTTP the SDK signs each chunk and the trailer, so the signed-chunk and
        // signed-trailer checks run on a real SDK's body here.
        let file = tempfile::NamedTempFile::new().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(file.path(), &big).unwrap();
        s3.put_object()
            .bucket("docs")
            .key("user-1/big.bin")
            .body(ByteStream::from_path(file.path()).await.unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(read(&s3, "docs", "user-1/big.bin").await, big);
        assert_eq!(
            framings_received("docs", "user-1/big.bin"),
            ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER checksum=Some(Crc32)"],
            "the server decoded the file upload as signed aws-chunked with a CRC32 trailer"
        );

        s3.copy_object()
            .bucket("docs")
            .key("user-2/copy.txt")
            .copy_source("docs/user-1/doc%201/a%2Bb.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(read(&s3, "docs", "user-2/copy.txt").await, b"Hello world");

        for i in 0..5 {
            s3.put_object()
                .bucket("docs")
                .key(format!("page/{i}"))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap();
        }
        let top = s3
            .list_objects_v2()
            .bucket("docs")
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let prefixes: Vec<_> = top
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, ["page/", "user-1/", "user-2/"]);
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket("docs")
                .prefix("page/")
                .max_keys(2)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(keys, ["page/0", "page/1", "page/2", "page/3", "page/4"]);
        let v1 = s3
            .list_objects()
            .bucket("docs")
            .prefix("user-")
            .send()
            .await
            .unwrap();
        assert_eq!(v1.contents().len(), 3);

        let deleted = s3
            .delete_objects()
            .bucket("docs")
            .delete(
                Delete::builder()
                    .set_objects(Some(
                        (0..5)
                            .map(|i| {
                                ObjectIdentifier::builder()
                                    .key(format!("page/{i}"))
                                    .build()
                                    .unwrap()
                            })
                            .collect(),
                    ))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.deleted().len(), 5);
        s3.delete_object()
            .bucket("docs")
            .key("user-2/copy.txt")
            .send()
            .await
            .unwrap();
        let left = s3.list_objects_v2().bucket("docs").send().await.unwrap();
        assert_eq!(left.key_count(), Some(2));
    });
}

#[test]
fn multipart_uploads_through_the_sdk() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let part1 = vec![b'a'; 5 * 1024 * 1024];
        let part2 = b"tail".to_vec();
        let upload = s3
            .create_multipart_upload()
            .bucket("vault")
            .key("doc.pdf")
            .content_type("application/pdf")
            .send()
            .await
            .unwrap();
        let id = upload.upload_id().unwrap();
        let mut done = Vec::new();
        for (n, data) in [(1, &part1), (2, &part2)] {
            let part = s3
                .upload_part()
                .bucket("vault")
                .key("doc.pdf")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            done.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            );
        }
        let parts = s3
            .list_parts()
            .bucket("vault")
            .key("doc.pdf")
            .upload_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(parts.parts().len(), 2);
        assert_eq!(parts.parts()[1].size(), Some(4));
        let uploads = s3
            .list_multipart_uploads()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        assert_eq!(uploads.uploads()[0].upload_id(), Some(id));
        // Listed in descending order: refused, with S3's code, status and text.
        let refused = s3
            .complete_multipart_upload()
            .bucket("vault")
            .key("doc.pdf")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done.iter().rev().cloned().collect()))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(400));
        let refused = refused.as_service_error().unwrap();
        assert_eq!(
            (code(refused).as_str(), ProvideErrorMetadata::message(refused)),
            ("InvalidPartOrder", Some("The list of parts was not in ascending order. The parts list must be specified in order by part number."))
        );
        let complete = s3
            .complete_multipart_upload()
            .bucket("vault")
            .key("doc.pdf")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert!(
            complete.e_tag().unwrap().ends_with("-2\""),
            "{:?}",
            complete.e_tag()
        );
        let whole = read(&s3, "vault", "doc.pdf").await;
        assert_eq!(whole.len(), part1.len() + 4);
        assert!(whole.ends_with(b"tail"));

        // UploadPartCopy of a range, then abort.
        let second = s3
            .create_multipart_upload()
            .bucket("vault")
            .key("copy.pdf")
            .send()
            .await
            .unwrap();
        let id2 = second.upload_id().unwrap();
        let copied = s3
            .upload_part_copy()
            .bucket("vault")
            .key("copy.pdf")
            .upload_id(id2)
            .part_number(1)
            .copy_source("vault/doc.pdf")
            .copy_source_range("bytes=0-99")
            .send()
            .await
            .unwrap();
        assert!(copied.copy_part_result().unwrap().e_tag().is_some());
        s3.abort_multipart_upload()
            .bucket("vault")
            .key("copy.pdf")
            .upload_id(id2)
            .send()
            .await
            .unwrap();
        let gone = s3
            .list_parts()
            .bucket("vault")
            .key("copy.pdf")
            .upload_id(id2)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(gone.as_service_error().unwrap()), "NoSuchUpload");
    });
}

#[test]
fn errors_come_back_as_s3_errors() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("docs").send().await.unwrap();
        let missing = s3
            .get_object()
            .bucket("docs")
            .key("nope")
            .send()
            .await
            .unwrap_err();
        assert!(missing.as_service_error().unwrap().is_no_such_key());
        let no_bucket = s3
            .list_objects_v2()
            .bucket("absent")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(no_bucket.as_service_error().unwrap()), "NoSuchBucket");

        let wrong = emu.client_with("not-the-secret");
        let denied = wrong.list_buckets().send().await.unwrap_err();
        assert_eq!(
            code(denied.as_service_error().unwrap()),
            "SignatureDoesNotMatch"
        );

        s3.put_object()
            .bucket("docs")
            .key("k")
            .body(ByteStream::from_static(b"v1"))
            .send()
            .await
            .unwrap();
        let refused = s3
            .put_object()
            .bucket("docs")
            .key("k")
            .if_none_match("*")
            .body(ByteStream::from_static(b"v2"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(refused.as_service_error().unwrap()),
            "PreconditionFailed"
        );
        let bad_sum = s3
            .put_object()
            .bucket("docs")
            .key("k")
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from_static(b"v3"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(bad_sum.as_service_error().unwrap()), "BadDigest");
        assert_eq!(
            read(&s3, "docs", "k").await,
            b"v1",
            "nothing was stored by the refused writes"
        );

        let acl = s3
            .get_object_acl()
            .bucket("docs")
            .key("k")
            .send()
            .await
            .unwrap_err();
        let raw = acl.raw_response().unwrap();
        assert_eq!(raw.status().as_u16(), 501);
        assert_eq!(code(acl.as_service_error().unwrap()), "NotImplemented");
        let not_empty = s3.delete_bucket().bucket("docs").send().await.unwrap_err();
        assert_eq!(
            code(not_empty.as_service_error().unwrap()),
            "BucketNotEmpty"
        );
    });
}

#[test]
fn presigned_urls_work_with_a_plain_http_client() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let put = s3
            .put_object()
            .bucket("vault")
            .key("user-1/report.pdf")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
            .await
            .unwrap();
        let get = s3
            .get_object()
            .bucket("vault")
            .key("user-1/report.pdf")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
            .await
            .unwrap();
        let (put_url, get_url) = (put.uri().to_owned(), get.uri().to_owned());
        tokio::task::spawn_blocking(move || {
            let response = ureq::put(&put_url)
                .send_bytes(b"%PDF-1.7 presigned")
                .unwrap();
            assert_eq!(response.status(), 200);
            let body = ureq::get(&get_url).call().unwrap().into_string().unwrap();
            assert_eq!(body, "%PDF-1.7 presigned");
            let tampered = get_url.replace("report.pdf", "other.pdf");
            match ureq::get(&tampered).call() {
                Err(ureq::Error::Status(403, r)) => {
                    let xml = r.into_string().unwrap();
                    assert!(xml.contains("<Code>SignatureDoesNotMatch</Code>"), "{xml}");
                    assert!(
                        xml.contains("<CanonicalRequest>GET\n/vault/user-1/other.pdf"),
                        "{xml}"
                    );
                    // StringToSign is the one SigV4 builds from that canonical request:
                    // algorithm, the URL's X-Amz-Date, its credential scope, and the
                    // SHA-256 of the canonical request.
                    let element = |name: &str| {
                        let open = format!("<{name}>");
                        let start = xml.find(&open).unwrap_or_else(|| panic!("{name}: {xml}"));
                        let rest = &xml[start + open.len()..];
                        rest[..rest.find(&format!("</{name}>")).unwrap()]
                            .replace("&lt;", "<")
                            .replace("&gt;", ">")
                            .replace("&quot;", "\"")
                            .replace("&apos;", "'")
                            .replace("&amp;", "&")
                    };
                    let param = |name: &str| {
                        let raw = tampered
                            .split(['?', '&'])
                            .find_map(|p| p.strip_prefix(&format!("{name}=")))
                            .unwrap();
                        percent_encoding::percent_decode_str(raw)
                            .decode_utf8()
                            .unwrap()
                            .into_owned()
                    };
                    let credential = param("X-Amz-Credential");
                    let scope = credential.split_once('/').unwrap().1;
                    use sha2::Digest;
                    let canonical = element("CanonicalRequest");
                    let expected = format!(
                        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
                        param("X-Amz-Date"),
                        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
                    );
                    assert_eq!(element("StringToSign"), expected, "{xml}");
                }
                other => panic!("expected 403, got {other:?}"),
            }
        })
        .await
        .unwrap();
    });
    // tristore's own presigner, an expired URL, and too long an expiry.
    use tristore::r2::presign::{presign_url, Credentials, PresignRequest};
    let creds = Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY);
    let endpoint = emu.endpoint();
    let url = |expires_in, ago: u64| {
        presign_url(
            &PresignRequest {
                method: "GET",
                endpoint: &endpoint,
                bucket: "vault",
                key: "user-1/report.pdf",
                region: "auto",
                expires_in,
                now: std::time::SystemTime::now() - Duration::from_secs(ago),
            },
            &creds,
        )
        .unwrap()
    };
    assert_eq!(
        ureq::get(&url(60, 0))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
        "%PDF-1.7 presigned"
    );
    match ureq::get(&url(60, 120)).call() {
        Err(ureq::Error::Status(403, r)) => assert!(r
            .into_string()
            .unwrap()
            .contains("<Code>ExpiredRequest</Code>")),
        other => panic!("expected 403, got {other:?}"),
    }
    let too_long = url(60, 0).replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
    match ureq::get(&too_long).call() {
        Err(ureq::Error::Status(400, r)) => assert!(r.into_string().unwrap().contains("604800")),
        other => panic!("expected 400, got {other:?}"),
    }
    match ureq::get(&format!("{endpoint}/vault/user-1/report.pdf")).call() {
        Err(ureq::Error::Status(403, r)) => assert!(r
            .into_string()
            .unwrap()
            .contains("<Code>AccessDenied</Code>")),
        other => panic!("anonymous requests are refused, got {other:?}"),
    }
}

/// A presigned URL (which signs only `host`) or a header-signed request must not gain
/// powers from headers added after signing: S3 refuses unsigned `x-amz-*` headers, and
/// R2's `cf-` extensions change what a request does just as much.
#[test]
fn unsigned_headers_cannot_change_what_a_signed_request_does() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        for bucket in ["victim-bucket", "uploads"] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        s3.put_object()
            .bucket("victim-bucket")
            .key("secret.txt")
            .body(ByteStream::from_static(b"TOP-SECRET-DATA"))
            .send()
            .await
            .unwrap();
        // The app hands a user presigned URLs for their own upload key only.
        let key = "user-7/avatar.png";
        let put = s3.put_object().bucket("uploads").key(key);
        let put_url = put.presigned(presigning()).await.unwrap().uri().to_owned();
        let get = s3.get_object().bucket("uploads").key(key);
        let get_url = get.presigned(presigning()).await.unwrap().uri().to_owned();
        let elsewhere = s3.put_object().bucket("not-yet-a-bucket").key(key);
        let elsewhere_url = elsewhere
            .presigned(presigning())
            .await
            .unwrap()
            .uri()
            .to_owned();
        let upload = s3
            .create_multipart_upload()
            .bucket("uploads")
            .key(key)
            .send()
            .await
            .unwrap();
        let upload_id = upload.upload_id().unwrap().to_owned();
        let part = s3
            .upload_part()
            .bucket("uploads")
            .key(key)
            .upload_id(&upload_id)
            .part_number(1);
        let part_url = part.presigned(presigning()).await.unwrap().uri().to_owned();

        tokio::task::spawn_blocking(move || {
            let copy = ureq::put(&put_url).set("x-amz-copy-source", "/victim-bucket/secret.txt");
            let (status, xml) = refused(copy.call());
            assert_eq!(status, 403, "{xml}");
            assert!(xml.contains("<Code>AccessDenied</Code>"), "{xml}");
            assert!(
                xml.contains("There were headers present in the request which were not signed"),
                "{xml}"
            );
            assert!(
                xml.contains("<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>"),
                "{xml}"
            );
            let (status, xml) = refused(ureq::get(&get_url).call());
            assert_eq!(status, 404, "nothing was copied: {xml}");

            let copy_part =
                ureq::put(&part_url).set("x-amz-copy-source", "victim-bucket/secret.txt");
            assert_eq!(refused(copy_part.call()).0, 403);

            let create = ureq::put(&elsewhere_url).set("cf-create-bucket-if-missing", "true");
            assert_eq!(refused(create.send_bytes(b"x")).0, 403);
            let (status, xml) = refused(
                ureq::put(&put_url)
                    .set("x-amz-meta-role", "admin")
                    .set("x-amz-storage-class", "STANDARD_IA")
                    .send_bytes(b"x"),
            );
            assert_eq!(status, 403);
            assert!(
                xml.contains(
                    "<HeadersNotSigned>x-amz-meta-role, x-amz-storage-class</HeadersNotSigned>"
                ),
                "{xml}"
            );

            // What S3 tolerates unsigned: the payload hash, which a presigned URL fixes
            // to UNSIGNED-PAYLOAD anyway.
            let plain = ureq::put(&put_url)
                .set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .send_bytes(b"my avatar");
            assert_eq!(plain.unwrap().status(), 200);
        })
        .await
        .unwrap();

        let parts = s3
            .list_parts()
            .bucket("uploads")
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await
            .unwrap();
        assert!(parts.parts().is_empty(), "no part was copied");
        let err = s3
            .head_bucket()
            .bucket("not-yet-a-bucket")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);
        let head = s3
            .head_object()
            .bucket("uploads")
            .key(key)
            .send()
            .await
            .unwrap();
        assert!(head.metadata().is_none_or(|m| m.is_empty()));
        assert_eq!(
            head.storage_class(),
            Some(&aws_sdk_s3::types::StorageClass::Standard)
        );

        // A header-signed request replayed with a header added after signing.
        let replayed = s3
            .put_object()
            .bucket("uploads")
            .key(key)
            .body(ByteStream::from_static(b"replayed"))
            .customize()
            .interceptor(AfterSigning(|request| {
                request
                    .headers_mut()
                    .insert("x-amz-copy-source", "victim-bucket/secret.txt");
            }))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(replayed.as_service_error().unwrap()), "AccessDenied");
        assert_eq!(read(&s3, "uploads", key).await, b"my avatar");
    });
}

/// R2 signs in region `auto` and takes `us-east-1`, an empty region and its location
/// hints as the same; anything else is refused. A request authenticated twice (header
/// and presigned query) is refused as S3 refuses it.
#[test]
fn only_r2_regions_and_one_authentication_mechanism_are_accepted() {
    let emu = Emulator::start();
    runtime().block_on(async {
        for region in ["us-east-1", "wnam", "auto"] {
            let s3 = emu.client_in(region, DEFAULT_SECRET_ACCESS_KEY);
            s3.list_buckets().send().await.unwrap();
        }
        let elsewhere = emu.client_in("eu-west-1", DEFAULT_SECRET_ACCESS_KEY);
        let err = elsewhere.list_buckets().send().await.unwrap_err();
        assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
        let service = err.as_service_error().unwrap();
        assert_eq!(code(service), "InvalidRegionName");
        assert_eq!(
            aws_sdk_s3::error::ProvideErrorMetadata::message(service),
            Some("The region name 'eu-west-1' is not valid. Must be one of: wnam, enam, weur, eeur, apac, oc, auto")
        );

        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let get = s3.get_object().bucket("vault").key("k");
        let url = get.presigned(presigning()).await.unwrap().uri().to_owned();
        tokio::task::spawn_blocking(move || {
            assert_eq!(refused(ureq::get(&url).call()).0, 404, "the URL alone is fine");
            let twice = ureq::get(&url).set(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=tristore/20261128/auto/s3/aws4_request, SignedHeaders=host, Signature=00",
            );
            let (status, xml) = refused(twice.call());
            assert_eq!(status, 400, "{xml}");
            assert!(xml.contains("<Code>InvalidArgument</Code>"), "{xml}");
            assert!(xml.contains("Only one auth mechanism allowed"), "{xml}");
        })
        .await
        .unwrap();
    });
    use tristore::r2::presign::{presign_url, Credentials, PresignRequest};
    let creds = Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY);
    let endpoint = emu.endpoint();
    for region in ["", "us-east-1", "enam"] {
        let url = presign_url(
            &PresignRequest {
                method: "GET",
                endpoint: &endpoint,
                bucket: "vault",
                key: "k",
                region,
                expires_in: 60,
                now: std::time::SystemTime::now(),
            },
            &creds,
        )
        .unwrap();
        let (status, xml) = refused(ureq::get(&url).call());
        assert_eq!(status, 404, "region {region:?}: {xml}");
    }
}

/// Only the `STREAMING-*` payload hashes select aws-chunked decoding: a signed literal
/// hash is checked against the body whatever `Content-Encoding` says, so a captured
/// request cannot be replayed with another body.
#[test]
fn a_signed_payload_hash_holds_whatever_the_content_encoding_says() {
    capture_server_log();
    // The SDK signs Content-Length, so the replayed body keeps the signed one's length.
    const SIGNED: &[u8] = b"the body the client signed.";
    const EVIL: &[u8] = b"ATTACKER CONTENT";
    let emu = Emulator::start();
    runtime().block_on(async {
        // Without the default CRC32 the payload hash is the body's only check.
        let config = emu
            .config("auto", DEFAULT_SECRET_ACCESS_KEY)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        let s3 = Client::from_conf(config.build());
        s3.create_bucket().bucket("integrity").send().await.unwrap();
        let replayed = s3
            .put_object()
            .bucket("integrity")
            .key("doc.txt")
            .body(ByteStream::from_static(SIGNED))
            .customize()
            // Signed, so that only the unsigned Content-Encoding makes the difference.
            .mutate_request(|request| {
                request
                    .headers_mut()
                    .insert("x-amz-decoded-content-length", EVIL.len().to_string());
            })
            .interceptor(AfterSigning(|request| {
                let hash = request.headers().get("x-amz-content-sha256").unwrap();
                assert_eq!(hash.len(), 64, "the SDK signed a literal hash: {hash}");
                let mut framed = format!("{:x}\r\n", EVIL.len()).into_bytes();
                framed.extend_from_slice(EVIL);
                framed.extend_from_slice(b"\r\n0\r\n\r\n");
                assert_eq!(framed.len(), SIGNED.len());
                request
                    .headers_mut()
                    .insert("content-encoding", "aws-chunked");
                *request.body_mut() = SdkBody::from(framed);
            }))
            .send()
            .await
            .unwrap_err();
        assert_eq!(replayed.raw_response().unwrap().status().as_u16(), 400);
        assert_eq!(
            code(replayed.as_service_error().unwrap()),
            "XAmzContentSHA256Mismatch"
        );
        let nothing = s3
            .get_object()
            .bucket("integrity")
            .key("doc.txt")
            .send()
            .await
            .unwrap_err();
        assert!(nothing.as_service_error().unwrap().is_no_such_key());
        assert_eq!(
            framings_received("integrity", "doc.txt"),
            ["plain checksum=None"],
            "the server kept the plain framing the signed hash chose"
        );
    });
}

/// `Content-Encoding: aws-chunked` (alone or after another coding) on a plain body, as
/// some clients send it: the body is stored as sent, `aws-chunked` left out of its
/// encoding.
#[test]
fn aws_chunked_on_a_plain_body_is_only_a_label() {
    capture_server_log();
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("integrity").send().await.unwrap();
        for (sent, stored) in [("gzip, aws-chunked", Some("gzip")), ("aws-chunked", None)] {
            s3.put_object()
                .bucket("integrity")
                .key("plain.txt")
                .content_encoding(sent)
                .body(ByteStream::from_static(b"a plain body"))
                .send()
                .await
                .unwrap();
            let head = s3
                .head_object()
                .bucket("integrity")
                .key("plain.txt")
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_encoding(), stored, "sent {sent:?}");
            assert_eq!(read(&s3, "integrity", "plain.txt").await, b"a plain body");
        }
        assert_eq!(
            framings_received("integrity", "plain.txt"),
            ["plain checksum=Some(Crc32)"; 2],
            "the label did not make the server decode aws-chunked"
        );
    });
}

/// A 304 carries the `ETag` and `Last-Modified` a 200 would (RFC 9110 15.4.5), which
/// caches and SDKs read.
#[test]
fn not_modified_answers_carry_etag_and_last_modified() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        let (etag, modified) = conditional_object(&s3).await;
        let http_date = modified
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
            .unwrap();
        let not_modified = [
            s3.get_object()
                .bucket("cond")
                .key("k")
                .if_none_match(&etag)
                .send()
                .await
                .unwrap_err(),
            s3.get_object()
                .bucket("cond")
                .key("k")
                .if_modified_since(modified)
                .send()
                .await
                .unwrap_err(),
        ];
        for e in not_modified {
            let raw = e.raw_response().unwrap();
            assert_eq!(raw.status().as_u16(), 304);
            assert_eq!(raw.headers().get("etag"), Some(etag.as_str()));
            assert_eq!(raw.headers().get("last-modified"), Some(http_date.as_str()));
        }
    });
}

/// Bucket `cond` with the object `k`: its ETag and Last-Modified.
async fn conditional_object(s3: &Client) -> (String, aws_sdk_s3::primitives::DateTime) {
    s3.create_bucket().bucket("cond").send().await.unwrap();
    s3.put_object()
        .bucket("cond")
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("cond")
        .key("k")
        .send()
        .await
        .unwrap();
    (
        head.e_tag().unwrap().to_owned(),
        *head.last_modified().unwrap(),
    )
}

/// Conditional reads follow RFC 9110: the three HTTP-date formats, invalid dates
/// ignored, and `If-Unmodified-Since` passing when the object was not modified after the
/// date.
#[test]
fn conditional_reads_follow_rfc_9110() {
    use time::macros::format_description;
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        let (_, modified) = conditional_object(&s3).await;
        let unmodified = s3
            .get_object()
            .bucket("cond")
            .key("k")
            .if_unmodified_since(modified)
            .send()
            .await
            .unwrap();
        assert_eq!(unmodified.body.collect().await.unwrap().into_bytes().as_ref(), b"v");

        let get = s3.get_object().bucket("cond").key("k");
        let url = get.presigned(presigning()).await.unwrap().uri().to_owned();
        let at = time::OffsetDateTime::from_unix_timestamp(modified.secs()).unwrap();
        let day_before = at - time::Duration::days(1);
        let rfc850 = format_description!(
            "[weekday repr:long], [day]-[month repr:short]-[year repr:last_two] [hour]:[minute]:[second] GMT"
        );
        let asctime = format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        );
        tokio::task::spawn_blocking(move || {
            let status = |name: &str, value: &str| match ureq::get(&url).set(name, value).call() {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(status, _)) => status,
                Err(e) => panic!("{e}"),
            };
            let ims = "if-modified-since";
            let ius = "if-unmodified-since";
            assert_eq!(status(ims, &at.format(rfc850).unwrap()), 304);
            assert_eq!(status(ims, &at.format(asctime).unwrap()), 304);
            assert_eq!(status(ims, &day_before.format(asctime).unwrap()), 200);
            assert_eq!(status(ims, "not a date"), 200, "an invalid date is ignored");
            assert_eq!(status(ius, "not a date"), 200, "an invalid date is ignored");
            assert_eq!(status(ius, &day_before.format(rfc850).unwrap()), 412);
        })
        .await
        .unwrap();
    });
}

/// A range whose last byte lies past the object, up to the largest number a client can
/// write, returns the rest of the object (RFC 9110 14.1.1), as S3 does.
#[test]
fn ranges_past_the_end_return_the_rest() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("ranges").send().await.unwrap();
        s3.put_object()
            .bucket("ranges")
            .key("k")
            .body(ByteStream::from_static(b"Hello world"))
            .send()
            .await
            .unwrap();
        for (range, content_range, body) in [
            (
                "bytes=0-18446744073709551615",
                "bytes 0-10/11",
                &b"Hello world"[..],
            ),
            ("bytes=6-99999999999999999999999", "bytes 6-10/11", b"world"),
        ] {
            let got = s3
                .get_object()
                .bucket("ranges")
                .key("k")
                .range(range)
                .send()
                .await
                .unwrap();
            assert_eq!(got.content_range(), Some(content_range), "{range}");
            assert_eq!(
                got.body.collect().await.unwrap().into_bytes().as_ref(),
                body
            );
        }
    });
}

/// UploadPartCopy's `x-amz-copy-source-range` must be `bytes=first-last` inside the
/// source: anything else is 400 `InvalidArgument`, as S3 answers, never a clamped copy.
#[test]
fn copy_source_ranges_lie_inside_the_source() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("parts").send().await.unwrap();
        s3.put_object()
            .bucket("parts")
            .key("source")
            .body(ByteStream::from_static(b"12345"))
            .send()
            .await
            .unwrap();
        let upload = s3
            .create_multipart_upload()
            .bucket("parts")
            .key("dest")
            .send()
            .await
            .unwrap();
        let id = upload.upload_id().unwrap();
        let copy = |range: &'static str| {
            s3.upload_part_copy()
                .bucket("parts")
                .key("dest")
                .upload_id(id)
                .part_number(1)
                .copy_source("parts/source")
                .copy_source_range(range)
                .send()
        };
        for range in [
            "bytes=0-21",
            "bytes=5-5",
            "0-2",
            "bytes=0",
            "bytes=hello-world",
            "bytes=0-bar",
            "bytes=hello-",
            "bytes=0-2,3-5",
            "bytes=2-",
            "bytes=-2",
            "bytes=3-1",
        ] {
            let e = copy(range).await.unwrap_err();
            assert_eq!(e.raw_response().unwrap().status().as_u16(), 400, "{range}");
            assert_eq!(
                code(e.as_service_error().unwrap()),
                "InvalidArgument",
                "{range}"
            );
        }
        for (range, size) in [("bytes=1-3", 3), ("bytes=0-4", 5)] {
            copy(range).await.unwrap();
            let parts = s3
                .list_parts()
                .bucket("parts")
                .key("dest")
                .upload_id(id)
                .send()
                .await
                .unwrap();
            assert_eq!(parts.parts()[0].size(), Some(size), "{range}");
        }
    });
}

/// An empty `continuation-token` asks for the first page, and is echoed, as S3 does.
#[test]
fn an_empty_continuation_token_lists_from_the_start() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("listing").send().await.unwrap();
        s3.put_object()
            .bucket("listing")
            .key("bar")
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .unwrap();
        let page = s3
            .list_objects_v2()
            .bucket("listing")
            .continuation_token("")
            .send()
            .await
            .unwrap();
        assert_eq!(page.continuation_token(), Some(""));
        let keys: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["bar"]);
    });
}

/// Keys may hold control characters, as in S3 and R2 (tristore keeps them rather than
/// refuse objects R2 would store). A listing carries them as character references,
/// `&#xD;` included so that a carriage return survives XML's line-end normalisation;
/// XML 1.0 parsers refuse `&#x0;`, so such keys are listed with `encoding-type=url`,
/// which boto3 sends by default.
#[test]
fn keys_with_control_characters_are_kept() {
    use tristore::r2::presign::{presign_url_with, Credentials, PresignRequest};
    let emu = Emulator::start();
    let keys = ["ctl/a\u{0}b", "ctl/cr\rlf", "ctl/tab\there"];
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("keys").send().await.unwrap();
        for key in keys {
            s3.put_object()
                .bucket("keys")
                .key(key)
                .body(ByteStream::from(key.as_bytes().to_vec()))
                .send()
                .await
                .unwrap();
            assert_eq!(read(&s3, "keys", key).await, key.as_bytes());
        }
    });
    let creds = Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY);
    let endpoint = emu.endpoint();
    let list = |query: &[(&str, &str)]| {
        let request = PresignRequest {
            method: "GET",
            endpoint: &endpoint,
            bucket: "keys",
            key: "",
            region: "auto",
            expires_in: 60,
            now: std::time::SystemTime::now(),
        };
        let url = presign_url_with(&request, query, &[], &creds).unwrap();
        ureq::get(&url).call().unwrap().into_string().unwrap()
    };
    let xml = list(&[("list-type", "2")]);
    for escaped in ["ctl/a&#x0;b", "ctl/cr&#xD;lf", "ctl/tab\there"] {
        assert!(xml.contains(&format!("<Key>{escaped}</Key>")), "{xml}");
    }
    let xml = list(&[("list-type", "2"), ("encoding-type", "url")]);
    for encoded in ["ctl/a%00b", "ctl/cr%0Dlf", "ctl/tab%09here"] {
        assert!(xml.contains(&format!("<Key>{encoded}</Key>")), "{xml}");
    }
}

/// SSE-C: the object is stored under the customer's key and read back only with it;
/// the headers' mistakes and a missing or wrong key get S3's errors; a copy reads its
/// source with the copy-source key and writes with the destination's.
#[test]
fn customer_encryption_keys_encrypt_and_are_required_to_read() {
    use base64::Engine;
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("docs").send().await.unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let key_of = |byte: u8| {
            let key = [byte; 32];
            (
                b64.encode(key),
                b64.encode(<md5::Md5 as md5::Digest>::digest(key)),
            )
        };
        let ((a, a_md5), (b, b_md5)) = (key_of(7), key_of(8));
        let put = s3
            .put_object()
            .bucket("docs")
            .key("secret")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&a)
            .sse_customer_key_md5(&a_md5)
            .body(ByteStream::from_static(b"the secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.sse_customer_algorithm(), Some("AES256"));
        assert_eq!(put.sse_customer_key_md5(), Some(a_md5.as_str()));
        let got = s3
            .get_object()
            .bucket("docs")
            .key("secret")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&a)
            .sse_customer_key_md5(&a_md5)
            .send()
            .await
            .unwrap();
        assert_eq!(got.sse_customer_key_md5(), Some(a_md5.as_str()));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&bytes[..], b"the secret");

        let missing = s3
            .get_object()
            .bucket("docs")
            .key("secret")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (
                missing.raw_response().unwrap().status().as_u16(),
                code(missing.as_service_error().unwrap())
            ),
            (400, "InvalidRequest".into())
        );
        let wrong = s3
            .get_object()
            .bucket("docs")
            .key("secret")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&b)
            .sse_customer_key_md5(&b_md5)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (
                wrong.raw_response().unwrap().status().as_u16(),
                code(wrong.as_service_error().unwrap())
            ),
            (403, "AccessDenied".into())
        );
        let head = s3
            .head_object()
            .bucket("docs")
            .key("secret")
            .send()
            .await
            .unwrap_err();
        assert_eq!(head.raw_response().unwrap().status().as_u16(), 400);
        let bad_md5 = s3
            .put_object()
            .bucket("docs")
            .key("other")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&a)
            .sse_customer_key_md5(&b_md5)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(bad_md5.as_service_error().unwrap()), "InvalidArgument");
        let absent = s3.head_object().bucket("docs").key("other").send().await;
        assert!(absent.is_err(), "the refused put stored the object");

        // Re-encrypted under another key by a copy; the source needs its own key.
        let copy = |with_source_key: bool| {
            let mut c = s3
                .copy_object()
                .bucket("docs")
                .key("copy")
                .copy_source("docs/secret")
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&b)
                .sse_customer_key_md5(&b_md5);
            if with_source_key {
                c = c
                    .copy_source_sse_customer_algorithm("AES256")
                    .copy_source_sse_customer_key(&a)
                    .copy_source_sse_customer_key_md5(&a_md5);
            }
            c.send()
        };
        let e = copy(false).await.unwrap_err();
        assert_eq!(code(e.as_service_error().unwrap()), "InvalidRequest");
        copy(true).await.unwrap();
        let copied = s3
            .get_object()
            .bucket("docs")
            .key("copy")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&b)
            .sse_customer_key_md5(&b_md5)
            .send()
            .await
            .unwrap();
        let bytes = copied.body.collect().await.unwrap().into_bytes();
        assert_eq!(&bytes[..], b"the secret");

        // A key for an object stored without one is an error, not ignored.
        s3.put_object()
            .bucket("docs")
            .key("plain")
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .unwrap();
        let get = s3
            .get_object()
            .bucket("docs")
            .key("plain")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&a)
            .sse_customer_key_md5(&a_md5)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(get.as_service_error().unwrap()), "InvalidRequest");
    });
}

/// Bucket CORS: rules written with PutBucketCors are read back, answer a browser's
/// preflight (403 when no rule allows it) and label the browser's actual request, which
/// is what a page uploading to a presigned URL needs.
#[test]
fn cors_rules_answer_preflights_and_label_browser_requests() {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let none = s3
            .get_bucket_cors()
            .bucket("vault")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(none.as_service_error().unwrap()),
            "NoSuchCORSConfiguration"
        );
        let rule = CorsRule::builder()
            .allowed_origins("https://app.example")
            .allowed_methods("PUT")
            .allowed_methods("GET")
            .allowed_headers("content-type")
            .allowed_headers("x-amz-meta-*")
            .expose_headers("ETag")
            .max_age_seconds(600)
            .build()
            .unwrap();
        let config = CorsConfiguration::builder()
            .cors_rules(rule.clone())
            .build()
            .unwrap();
        s3.put_bucket_cors()
            .bucket("vault")
            .cors_configuration(config)
            .send()
            .await
            .unwrap();
        let stored = s3.get_bucket_cors().bucket("vault").send().await.unwrap();
        assert_eq!(stored.cors_rules(), [rule]);

        let url = s3
            .put_object()
            .bucket("vault")
            .key("user-1/a.pdf")
            .presigned(presigning())
            .await
            .unwrap()
            .uri()
            .to_owned();
        let preflight = move |origin: Option<&str>, method: &str, headers: &str| {
            let mut request = ureq::request("OPTIONS", &url);
            if let Some(origin) = origin {
                request = request.set("Origin", origin);
            }
            request = request.set("Access-Control-Request-Method", method);
            if !headers.is_empty() {
                request = request.set("Access-Control-Request-Headers", headers);
            }
            // Refusals are answers here too: the status is what is checked.
            match request.call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("transport error: {e}"),
            }
        };
        let browser_put = {
            let url = s3
                .put_object()
                .bucket("vault")
                .key("user-1/a.pdf")
                .presigned(presigning())
                .await
                .unwrap()
                .uri()
                .to_owned();
            move |origin: &str| {
                ureq::put(&url)
                    .set("Origin", origin)
                    .send_bytes(b"%PDF")
                    .unwrap()
            }
        };
        let preflight = tokio::task::spawn_blocking(move || {
            let ok = preflight(
                Some("https://app.example"),
                "PUT",
                "content-type, X-Amz-Meta-Doc",
            );
            assert_eq!(ok.status(), 200);
            let header = |name: &str| ok.header(name).map(str::to_owned);
            assert_eq!(
                header("access-control-allow-origin").as_deref(),
                Some("https://app.example")
            );
            assert_eq!(
                header("access-control-allow-methods").as_deref(),
                Some("PUT, GET")
            );
            assert_eq!(
                header("access-control-allow-headers").as_deref(),
                Some("content-type, X-Amz-Meta-Doc")
            );
            assert_eq!(header("access-control-max-age").as_deref(), Some("600"));
            for (origin, method, headers) in [
                ("https://other.example", "PUT", ""),
                ("https://app.example", "DELETE", ""),
                ("https://app.example", "PUT", "content-type, x-user-id"),
            ] {
                let refused = preflight(Some(origin), method, headers);
                assert_eq!(refused.status(), 403, "{origin} {method} {headers}");
            }
            let anonymous = preflight(None, "PUT", "");
            assert_eq!(anonymous.status(), 400, "a preflight names its origin");

            let put = browser_put("https://app.example");
            assert_eq!(
                put.header("access-control-allow-origin"),
                Some("https://app.example")
            );
            assert_eq!(put.header("access-control-expose-headers"), Some("ETag"));
            // Served, but without the headers that would let the page read the answer.
            let other = browser_put("https://other.example");
            assert_eq!(other.header("access-control-allow-origin"), None);
            preflight
        })
        .await
        .unwrap();
        assert_eq!(read(&s3, "vault", "user-1/a.pdf").await, b"%PDF");

        s3.delete_bucket_cors()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        let gone = s3
            .get_bucket_cors()
            .bucket("vault")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(gone.as_service_error().unwrap()),
            "NoSuchCORSConfiguration"
        );
        tokio::task::spawn_blocking(move || {
            let refused = preflight(Some("https://app.example"), "PUT", "");
            assert_eq!(refused.status(), 403, "no rules, no CORS");
        })
        .await
        .unwrap();
    });
}

/// Lifecycle rules in R2's kinds (expiry after days or from a date, under a prefix;
/// aborting uploads some days after they started) are stored, read back, and carried out
/// by `R2Store::apply_lifecycle`; what R2 lacks is refused rather than dropped, since a
/// dropped filter would widen what a rule deletes.
#[test]
fn lifecycle_rules_expire_objects_and_abort_uploads_when_applied() {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
        LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, Tag,
        Transition, TransitionStorageClass,
    };
    use tristore::r2::LifecycleReport;
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let default = s3
            .get_bucket_lifecycle_configuration()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        let days = |r: &LifecycleRule| {
            r.abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation())
        };
        assert_eq!(default.rules().len(), 1, "R2's default rule");
        assert_eq!(days(&default.rules()[0]), Some(7));

        let rule = |id: &str, prefix: &str| {
            LifecycleRule::builder()
                .id(id)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
        };
        let rules = vec![
            rule("tmp", "tmp/")
                .expiration(LifecycleExpiration::builder().days(1).build())
                .build()
                .unwrap(),
            rule("old", "old/")
                .expiration(
                    LifecycleExpiration::builder()
                        .date(aws_sdk_s3::primitives::DateTime::from_secs(1_577_836_800))
                        .build(),
                )
                .build()
                .unwrap(),
            rule("uploads", "")
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(2)
                        .build(),
                )
                .build()
                .unwrap(),
        ];
        let put = |rules: Vec<LifecycleRule>| {
            s3.put_bucket_lifecycle_configuration()
                .bucket("vault")
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .set_rules(Some(rules))
                        .build()
                        .unwrap(),
                )
                .send()
        };
        put(rules.clone()).await.unwrap();
        let read = s3
            .get_bucket_lifecycle_configuration()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        assert_eq!(read.rules(), rules);

        for key in ["tmp/a", "old/b", "keep/c"] {
            s3.put_object()
                .bucket("vault")
                .key(key)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap();
        }
        s3.create_multipart_upload()
            .bucket("vault")
            .key("big")
            .send()
            .await
            .unwrap();
        let r2 = emu.store.r2().clone();
        let now = std::time::SystemTime::now();
        let at = move |later: Duration| {
            let r2 = r2.clone();
            async move {
                tokio::task::spawn_blocking(move || r2.apply_lifecycle(now + later).unwrap())
                    .await
                    .unwrap()
            }
        };
        let expired = |n| LifecycleReport {
            expired_objects: n,
            ..Default::default()
        };
        assert_eq!(at(Duration::ZERO).await, expired(1), "past the date");
        let report = at(DAY * 3).await;
        assert_eq!((report.expired_objects, report.aborted_uploads), (1, 1));
        assert_eq!(at(DAY * 4).await, LifecycleReport::default());
        let left = s3.list_objects_v2().bucket("vault").send().await.unwrap();
        let keys: Vec<_> = left.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["keep/c"]);
        let uploads = s3
            .list_multipart_uploads()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        assert!(uploads.uploads().is_empty());

        let refused_with = |rule: LifecycleRule| async {
            let e = put(vec![rule]).await.unwrap_err();
            let status = e.raw_response().unwrap().status().as_u16();
            (status, code(e.as_service_error().unwrap()))
        };
        let by_tag = LifecycleRule::builder()
            .id("t")
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .tag(Tag::builder().key("k").value("v").build().unwrap())
                    .build(),
            )
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .unwrap();
        assert_eq!(refused_with(by_tag).await, (501, "NotImplemented".into()));
        let versions = rule("v", "")
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(1)
                    .build(),
            )
            .build()
            .unwrap();
        assert_eq!(refused_with(versions).await, (501, "NotImplemented".into()));
        let glacier = rule("g", "")
            .transitions(
                Transition::builder()
                    .days(1)
                    .storage_class(TransitionStorageClass::Glacier)
                    .build(),
            )
            .build()
            .unwrap();
        assert_eq!(
            refused_with(glacier).await,
            (400, "InvalidStorageClass".into())
        );
        let read = s3
            .get_bucket_lifecycle_configuration()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.rules(),
            rules,
            "a refused configuration changes nothing"
        );

        s3.delete_bucket_lifecycle()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        let gone = s3
            .get_bucket_lifecycle_configuration()
            .bucket("vault")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(gone.as_service_error().unwrap()),
            "NoSuchLifecycleConfiguration"
        );
    });
}

/// `partNumber` reads one part of a multipart object (206, the part's bytes, the number
/// of parts); an object stored whole is its own part 1; a part past the last is S3's
/// 416 `InvalidPartNumber`.
#[test]
fn part_number_reads_one_part_of_an_object() {
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let first = vec![b'a'; 5 * 1024 * 1024];
        let upload = s3
            .create_multipart_upload()
            .bucket("vault")
            .key("big")
            .send()
            .await
            .unwrap();
        let id = upload.upload_id().unwrap();
        let mut done = Vec::new();
        for (n, data) in [(1, first.clone()), (2, b"tail".to_vec())] {
            let part = s3
                .upload_part()
                .bucket("vault")
                .key("big")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(data))
                .send()
                .await
                .unwrap();
            done.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            );
        }
        let whole = s3
            .complete_multipart_upload()
            .bucket("vault")
            .key("big")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let get = |key: &'static str, part: i32| {
            s3.get_object()
                .bucket("vault")
                .key(key)
                .part_number(part)
                .send()
        };
        let second = get("big", 2).await.unwrap();
        assert_eq!(second.parts_count(), Some(2));
        assert_eq!(second.e_tag(), whole.e_tag(), "the whole object's ETag");
        assert_eq!(
            second.content_range(),
            Some("bytes 5242880-5242883/5242884")
        );
        assert_eq!(
            second.body.collect().await.unwrap().into_bytes(),
            &b"tail"[..]
        );
        let head = s3
            .head_object()
            .bucket("vault")
            .key("big")
            .part_number(1)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(5 * 1024 * 1024));
        assert_eq!(head.parts_count(), Some(2));

        s3.put_object()
            .bucket("vault")
            .key("small")
            .body(ByteStream::from_static(b"body"))
            .send()
            .await
            .unwrap();
        let only = get("small", 1).await.unwrap();
        assert_eq!(only.parts_count(), None);
        assert_eq!(
            only.body.collect().await.unwrap().into_bytes(),
            &b"body"[..]
        );

        for (key, part) in [("big", 3), ("small", 2)] {
            let e = get(key, part).await.unwrap_err();
            assert_eq!(e.raw_response().unwrap().status().as_u16(), 416, "{key}");
            assert_eq!(code(e.as_service_error().unwrap()), "InvalidPartNumber");
        }
        let missing = get("nothing", 1).await.unwrap_err();
        assert_eq!(code(missing.as_service_error().unwrap()), "NoSuchKey");
        let both = s3
            .get_object()
            .bucket("vault")
            .key("big")
            .part_number(1)
            .range("bytes=0-1")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(both.as_service_error().unwrap()), "InvalidRequest");
    });
}

/// GetBucketEncryption answers as R2 does for every bucket (SSE-S3, AES256: R2 encrypts
/// everything at rest); writing it is not offered, on R2 either (501).
#[test]
fn bucket_encryption_reads_as_r2s_fixed_aes256() {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    let emu = Emulator::start();
    runtime().block_on(async {
        let s3 = emu.client();
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let got = s3
            .get_bucket_encryption()
            .bucket("vault")
            .send()
            .await
            .unwrap();
        let rules = got.server_side_encryption_configuration().unwrap().rules();
        let default = rules[0].apply_server_side_encryption_by_default().unwrap();
        assert_eq!(default.sse_algorithm(), &ServerSideEncryption::Aes256);
        let missing = s3
            .get_bucket_encryption()
            .bucket("nope")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(missing.as_service_error().unwrap()), "NoSuchBucket");

        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::Aes256)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .build()
            .unwrap();
        let put = s3
            .put_bucket_encryption()
            .bucket("vault")
            .server_side_encryption_configuration(config)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(put.as_service_error().unwrap()), "NotImplemented");
        let delete = s3
            .delete_bucket_encryption()
            .bucket("vault")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(delete.as_service_error().unwrap()), "NotImplemented");
    });
}
