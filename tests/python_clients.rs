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

/// A virtual environment with the SDK, made once and reused. The tests of this file run
/// in parallel, so the first one makes it while the others wait: two `python -m venv`
/// into one directory break each other's `ensurepip`.
fn venv() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(make_venv).clone()
}

fn make_venv() -> PathBuf {
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
    run_suite(
        &python,
        "test_cloudflare_sdk.py",
        &format!("http://{}/client/v4", server.addr),
        None,
    );
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
    run_suite(
        &python,
        "test_boto3.py",
        &format!("http://{}", server.s3_addr),
        None,
    );
    server.shutdown().unwrap();
}

/// Runs `tests/python/<script>` against `endpoint`, trusting the certificate `ca` (for
/// botocore, requests/httpx and urllib alike) when given, and fails on a failing suite.
fn run_suite(python: &Path, script: &str, endpoint: &str, ca: Option<&Path>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut command = Command::new(python);
    command.arg(path).arg(endpoint);
    if let Some(ca) = ca {
        for name in ["AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"] {
            command.env(name, ca);
        }
    }
    let out = command.output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{report}");
    assert!(
        out.status.success(),
        "{script} failed on {endpoint}:\n{report}"
    );
    assert!(report.contains("OK"), "{report}");
}

/// `--tls-self-signed`: both SDKs' suites pass over HTTPS, trusting the certificate
/// tristore made (SigV4 and presigned URLs included), and a client that does not trust
/// it is refused.
#[test]
fn both_python_sdks_work_over_https_with_the_self_signed_certificate() {
    let python = venv();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    defaults::provision_metacogna(&store).unwrap();
    let cert = tristore::server::tls::self_signed(dir.path()).unwrap();
    let server = start(
        Arc::new(store),
        ServerOptions {
            port: 0,
            s3_port: 0,
            tls: Some(tristore::server::tls::config_from_pem(&cert.cert, &cert.key).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let rest = format!("https://localhost:{}/client/v4", server.addr.port());
    run_suite(&python, "test_cloudflare_sdk.py", &rest, Some(&cert.cert));
    let s3 = format!("https://127.0.0.1:{}", server.s3_addr.port());
    run_suite(&python, "test_boto3.py", &s3, Some(&cert.cert));
    // Without the certificate trusted, the handshake fails: the server really is HTTPS.
    let untrusted = Command::new(&python)
        .args([
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(sys.argv[1])",
        ])
        .arg(&rest)
        .env("SSL_CERT_FILE", "/nonexistent")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success(), "{report}");
    assert!(report.contains("CERTIFICATE_VERIFY_FAILED"), "{report}");
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
    // The status and the v4 envelope's first error code and message.
    let answer = |auth: Option<&str>| -> (u16, serde_json::Value) {
        let url = format!("http://{}/client/v4/accounts/a/d1/database", server.addr);
        let mut request = ureq::get(&url);
        if let Some(auth) = auth {
            request = request.set("Authorization", auth);
        }
        let response = match request.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        (response.status(), response.into_json().unwrap())
    };
    let refused = |auth: Option<&str>| {
        let (status, body) = answer(auth);
        assert_eq!(body["success"], false, "{auth:?}: {body}");
        let error = &body["errors"][0];
        (
            status,
            error["code"].as_u64().unwrap(),
            error["message"].as_str().unwrap().to_owned(),
        )
    };
    let missing = (
        400,
        9106,
        "Missing X-Auth-Key, X-Auth-Email or Authorization headers".to_owned(),
    );
    assert_eq!(refused(None), missing);
    assert_eq!(
        refused(Some("Basic c2VjcmV0")),
        missing,
        "not a bearer token"
    );
    let wrong = (403, 10000, "Authentication error".to_owned());
    assert_eq!(refused(Some("Bearer wrong")), wrong);
    assert_eq!(refused(Some("Bearer secretx")), wrong);
    let (status, body) = answer(Some("Bearer secret"));
    assert_eq!(
        (status, &body["success"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    server.shutdown().unwrap();
}
