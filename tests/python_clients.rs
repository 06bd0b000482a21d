//! Real clients against the running emulator: the official Cloudflare Python SDK
//! (tests/python/test_cloudflare_sdk.py) drives D1, Vectorize and R2 buckets over the
//! REST API, and boto3 (tests/python/test_boto3.py) drives the S3 API.
//!
//! Both are installed into `target/tmp/python-clients` on first use (pip, from PyPI);
//! `TRISTORE_PYTHON` picks the interpreter (default `python3`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tristore::server::{start, ServerOptions};
use tristore::{defaults, Store};

const PACKAGES: [&str; 2] = ["cloudflare==5.9.0", "boto3==1.44.8"];

/// A virtual environment with the SDK, made once and reused.
fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-clients");
    let python = dir.join("bin/python");
    let marker = dir.join(format!("installed-{}", PACKAGES.join("-")));
    if !marker.exists() {
        let base = std::env::var("TRISTORE_PYTHON").unwrap_or_else(|_| "python3".into());
        let ok = Command::new(&base)
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("run python");
        assert!(ok.success(), "{base} -m venv failed");
        let ok = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES)
            .status()
            .expect("run pip");
        assert!(
            ok.success(),
            "pip install {PACKAGES:?} failed (PyPI must be reachable)"
        );
        std::fs::write(&marker, b"").unwrap();
    }
    python
}

#[test]
fn cloudflare_python_sdk_drives_d1_vectorize_and_r2_buckets() {
    let python = venv();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    defaults::provision_metacogna(&store).unwrap();
    let server = start(
        Arc::new(store),
        ServerOptions {
            port: 0,
            s3_port: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_cloudflare_sdk.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}/client/v4", server.addr))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{report}");
    assert!(out.status.success(), "the SDK suite failed:\n{report}");
    assert!(report.contains("OK"), "{report}");
    server.shutdown().unwrap();
}

#[test]
fn boto3_drives_the_s3_api() {
    let python = venv();
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        Arc::new(Store::open(dir.path()).unwrap()),
        ServerOptions {
            port: 0,
            s3_port: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_boto3.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}", server.s3_addr))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{report}");
    assert!(out.status.success(), "the boto3 suite failed:\n{report}");
    assert!(report.contains("OK"), "{report}");
    server.shutdown().unwrap();
}

#[test]
fn api_token_is_enforced_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        Arc::new(Store::open(dir.path()).unwrap()),
        ServerOptions {
            port: 0,
            s3_port: 0,
            api_token: Some("secret".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let status = |auth: &str| {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(server.addr).unwrap();
        let request = format!("GET /client/v4/accounts/a/d1/database HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}\r\n");
        conn.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        response[9..12].to_owned()
    };
    assert_eq!(status(""), "400");
    assert_eq!(status("Authorization: Bearer wrong\r\n"), "403");
    assert_eq!(status("Authorization: Bearer secret\r\n"), "200");
    server.shutdown().unwrap();
}
