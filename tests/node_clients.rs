//! The AWS SDK for JavaScript v3 (tests/node/test_aws_sdk_js.mjs) against the S3 API:
//! it sends streamed bodies as aws-chunked with an unsigned CRC32 trailer.
//!
//! The SDK is installed into `target/tmp/node-clients` on first use (npm, from the
//! registry); `TRISTORE_NODE` picks the interpreter (default `node`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tristore::server::{start, ServerOptions};
use tristore::Store;

const PACKAGES: [&str; 2] = [
    "@aws-sdk/client-s3@3.1175.0",
    "@aws-sdk/s3-request-presigner@3.1169.0",
];

/// The server's `tristore::s3::body` debug events (PutObject's framing), collected here.
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

/// The framing and checksum the server logged for each PutObject of `bucket`/`key`.
fn framings_received(bucket: &str, key: &str) -> Vec<String> {
    let log = SERVER_LOG.lock().unwrap_or_else(|e| e.into_inner());
    let needle = format!("bucket={bucket:?} key={key:?} framing=");
    String::from_utf8_lossy(&log)
        .lines()
        .filter_map(|line| line.split_once(&needle).map(|(_, rest)| rest.to_owned()))
        .collect()
}

#[test]
fn aws_sdk_for_javascript_streams_unsigned_trailers() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "tristore::s3::body=debug",
        ))
        .with_writer(|| ServerLog)
        .with_ansi(false)
        .try_init()
        .expect("the only tracing subscriber in this test binary");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-clients");
    let marker = dir.join(format!(
        "installed-{}",
        PACKAGES.join("-").replace('/', "_")
    ));
    if !marker.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .args(PACKAGES)
            .status()
            .expect("run npm");
        assert!(
            ok.success(),
            "npm install {PACKAGES:?} failed (the npm registry must be reachable)"
        );
        std::fs::write(&marker, b"").unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let server = start(
        Arc::new(Store::open(data.path()).unwrap()),
        ServerOptions {
            port: 0,
            s3_port: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let node = std::env::var("TRISTORE_NODE").unwrap_or_else(|_| "node".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/test_aws_sdk_js.mjs");
    let out = Command::new(node)
        .arg(&script)
        .arg(format!("http://{}", server.s3_addr))
        .env("NODE_CLIENTS", dir.join("node_modules"))
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains("OK"),
        "the JS SDK suite failed:\n{report}"
    );
    // What the server received: the stream aws-chunked with an unsigned CRC32 trailer,
    // the short string plain with its CRC32 in a header.
    assert_eq!(
        framings_received("js-sdk", "stream.txt"),
        ["STREAMING-UNSIGNED-PAYLOAD-TRAILER checksum=Some(Crc32)"]
    );
    assert_eq!(
        framings_received("js-sdk", "small.txt"),
        ["plain checksum=Some(Crc32)"]
    );
    server.shutdown().unwrap();
}
