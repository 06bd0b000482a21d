//! Whole S3 requests through the real router: fuzzed method, key, subresources, headers
//! and body, correctly presigned so they get past authentication. Every answer is a
//! valid status below 500 (but a deliberate 501 NotImplemented), and every error (but
//! HEAD's) is S3 XML. Headers are signed too, except
//! where the input says not to: an unsigned `x-amz-*` or `cf-` header is refused (403)
//! before anything happens.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tristore::r2::presign::{presign_url_with, Credentials, PresignRequest};
use tristore::server::s3;
use tristore::Store;

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    runtime: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        store.r2().create_bucket("fuzz").unwrap();
        store
            .r2()
            .bucket("fuzz")
            .unwrap()
            .put("k", b"0123456789", &Default::default())
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        World {
            _dir: dir,
            store,
            runtime,
        }
    })
}

const SUBRESOURCES: &[&str] = &[
    "uploads",
    "uploadId",
    "partNumber",
    "list-type",
    "continuation-token",
    "start-after",
    "delimiter",
    "prefix",
    "max-keys",
    "encoding-type",
    "marker",
    "location",
    "versioning",
    "acl",
    "tagging",
    "versions",
    "max-parts",
    "part-number-marker",
    "response-content-type",
    "cors",
    "lifecycle",
    "encryption",
];
const HEADERS: &[&str] = &[
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-copy-source",
    "x-amz-copy-source-range",
    "x-amz-metadata-directive",
    "content-md5",
    "x-amz-checksum-crc32",
    "x-amz-checksum-sha256",
    "x-amz-trailer",
    "content-encoding",
    "x-amz-decoded-content-length",
    "x-amz-storage-class",
    "x-amz-meta-a",
    "expires",
    "cf-create-bucket-if-missing",
    "x-amz-checksum-mode",
    "content-type",
    "x-amz-content-sha256",
    "origin",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-key",
];

/// Whether S3 refuses `name` unsigned (the payload hash is the one `x-amz-*` it tolerates).
fn must_be_signed(name: &str) -> bool {
    (name.starts_with("x-amz-") && name != "x-amz-content-sha256") || name.starts_with("cf-")
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // Fields separated by 0xff: method, key, then name=value pairs, then the body.
    let mut fields = data.split(|&b| b == 0xff);
    let method = ["GET", "PUT", "DELETE", "HEAD"]
        [fields.next().and_then(|f| f.first()).copied().unwrap_or(0) as usize % 4];
    let key = String::from_utf8_lossy(fields.next().unwrap_or(b"k")).into_owned();
    let mut query = Vec::new();
    let mut headers: Vec<(&str, String, bool)> = Vec::new();
    let mut body = Vec::new();
    for f in fields {
        let Some((&tag, rest)) = f.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest).into_owned();
        match tag % 3 {
            0 => query.push((SUBRESOURCES[tag as usize / 3 % SUBRESOURCES.len()], text)),
            1 => {
                let pick = tag as usize / 3;
                let signed = (pick / HEADERS.len()).is_multiple_of(2);
                headers.push((HEADERS[pick % HEADERS.len()], text, signed));
            }
            _ => body.extend_from_slice(rest),
        }
    }
    let creds = Credentials::new("tristore", "tristore-secret");
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(_, _, signed)| *signed)
        .map(|(k, v, _)| (*k, v.as_str()))
        .collect();
    let unsigned_refused = headers
        .iter()
        .any(|(k, _, signed)| !signed && must_be_signed(k));
    let Ok(url) = presign_url_with(
        &PresignRequest {
            method,
            endpoint: "http://127.0.0.1:8791",
            bucket: "fuzz",
            key: &key,
            region: "auto",
            expires_in: 600,
            now: SystemTime::now(),
        },
        &pairs,
        &signed,
        &creds,
    ) else {
        return;
    };
    let mut request = Request::builder()
        .method(method)
        .uri(&url["http://127.0.0.1:8791".len()..])
        .header("host", "127.0.0.1:8791");
    for (name, value, _) in &headers {
        request = request.header(*name, value.as_str());
    }
    request = request.header("content-length", body.len());
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };
    let usage = tristore::usage::Usage::open(w.store.dir(), Default::default()).unwrap();
    // Metered, so that the meter reads the fuzzed requests too.
    let meter = Some(Arc::new(tristore::server::meter::Meter::new(Arc::new(
        usage,
    ))));
    let router = s3::router(w.store.clone(), creds, meter);
    w.runtime.block_on(async move {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        assert!((200..600).contains(&status));
        if unsigned_refused {
            assert_eq!(status, 403, "an unsigned header was honoured");
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        // A 5xx is the server's fault, never the request's: any is a failure, except the
        // deliberate 501 NotImplemented R2 answers for features it lacks (an unsupported
        // checksum algorithm, presigning another method).
        if status >= 500 {
            let text = String::from_utf8_lossy(&bytes);
            let not_implemented =
                status == 501 && (method == "HEAD" || text.contains("<Code>NotImplemented</Code>"));
            assert!(not_implemented, "{method} {url}: {status}: {text}");
        }
        if status >= 400 && method != "HEAD" {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("<Error><Code>"), "{status}: {text}");
        }
    });
});
