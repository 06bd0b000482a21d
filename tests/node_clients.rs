//! The AWS SDK for JavaScript v3 (tests/node/test_aws_sdk_js.mjs) against the S3 API:
//! it sends streamed bodies as aws-chunked with an unsigned CRC32 trailer.
//!
//! It runs over plain HTTP and over HTTPS with a self-signed certificate.
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
    run_suite(&dir, &format!("http://{}", server.s3_addr), None);
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

    // The same suite over HTTPS (`--tls-self-signed`), trusting tristore's certificate
    // the way Node users do: SigV4, aws-chunked trailers and presigned URLs over TLS.
    let data = tempfile::tempdir().unwrap();
    let cert = tristore::server::tls::self_signed(data.path()).unwrap();
    let server = start(
        Arc::new(Store::open(data.path()).unwrap()),
        ServerOptions {
            port: 0,
            s3_port: 0,
            tls: Some(tristore::server::tls::config_from_pem(&cert.cert, &cert.key).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    run_suite(
        &dir,
        &format!("https://localhost:{}", server.s3_addr.port()),
        Some(&cert.cert),
    );
    server.shutdown().unwrap();
}

/// Runs tests/node/test_aws_sdk_js.mjs against `endpoint`, trusting `ca` if given.
fn run_suite(clients: &Path, endpoint: &str, ca: Option<&Path>) {
    let node = std::env::var("TRISTORE_NODE").unwrap_or_else(|_| "node".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/test_aws_sdk_js.mjs");
    let mut command = Command::new(node);
    command
        .arg(&script)
        .arg(endpoint)
        .env("NODE_CLIENTS", clients.join("node_modules"));
    if let Some(ca) = ca {
        command.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let out = command.output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains("OK"),
        "the JS SDK suite failed against {endpoint}:\n{report}"
    );
}
