//! SigV4 verification against requests boto3 really sent (shared/spec/wire-captures),
//! and against presigned URLs boto3 makes when Python and boto3 are available.

use std::time::{Duration, SystemTime};

use tristore::r2::presign::{presign_url, Credentials, PresignRequest, SignedRequest};

/// The access key the captures were signed with: AWS's SigV4 test-suite pair.
const KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn verify_capture(line: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let (path, query) = v["path"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap_or((v["path"].as_str().unwrap(), ""));
    let headers: Vec<(String, String)> = v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let date = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
        .unwrap()
        .1
        .clone();
    let now = time::PrimitiveDateTime::parse(
        &date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .unwrap()
    .assume_utc();
    let req = SignedRequest {
        method: v["method"].as_str().unwrap(),
        path,
        query,
        headers: &header_refs,
    };
    req.verify(
        |k| (k == KEY).then(|| SECRET.to_owned()),
        SystemTime::from(now) + Duration::from_secs(2),
    )
    .map(|_| ())
    .map_err(|e| format!("{} {}: {e:?}", v["method"], v["path"]))
}

#[test]
fn every_captured_boto3_request_verifies() {
    for file in [
        include_str!("fixtures/boto3_http.jsonl"),
        include_str!("fixtures/boto3_https.jsonl"),
    ] {
        for line in file.lines().filter(|l| !l.trim().is_empty()) {
            verify_capture(line).unwrap();
        }
    }
}

#[test]
fn a_tampered_capture_is_refused() {
    let line = include_str!("fixtures/boto3_http.jsonl")
        .lines()
        .next()
        .unwrap();
    let tampered = line.replace("/b/hello.txt", "/b/hello.txx");
    assert!(verify_capture(&tampered)
        .unwrap_err()
        .contains("SignatureDoesNotMatch"));
}

/// Whether a missing interpreter or boto3 must fail the boto3 comparison rather than skip
/// it: under CI (`CI` set, as CI services do) and wherever `TRISTORE_REQUIRE_BOTO3` is set
/// (`.ci/run` sets it after installing boto3). An empty value or `0` counts as unset.
fn boto3_required() -> bool {
    ["CI", "TRISTORE_REQUIRE_BOTO3"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false"))
}

/// Skips the boto3 comparison loudly, or fails it when boto3 is required.
fn boto3_unavailable(why: &str) {
    assert!(
        !boto3_required(),
        "the boto3 presigner comparison cannot run, and CI / TRISTORE_REQUIRE_BOTO3 require it: {why}"
    );
    eprintln!(
        "\n*** SKIPPED boto3_presigned_urls_match_ours: {why}\n*** tristore's presigner is NOT \
         checked against boto3 in this run; set TRISTORE_PYTHON to an interpreter with boto3 \
         (TRISTORE_REQUIRE_BOTO3=1 or CI=1 turn this skip into a failure)\n"
    );
}

/// boto3's own presigned URLs verify, and for the same inputs ours carry the same
/// signature. Where no interpreter or no boto3 is found this skips with a loud note,
/// or where the script exits non-zero, unless `CI` or `TRISTORE_REQUIRE_BOTO3` is set
/// (`.ci/run` sets it): then each of those is a failure.
#[test]
fn boto3_presigned_urls_match_ours() {
    let script = r#"
import sys
try:
    import boto3
except ImportError as e:
    print("SKIP", e); sys.exit(0)
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:8791", aws_access_key_id="AKID", aws_secret_access_key="s3cr3t", region_name="auto", config=boto3.session.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
for method, op in (("GET", "get_object"), ("PUT", "put_object")):
    print(method, s3.generate_presigned_url(op, Params={"Bucket": "metacogna-vault", "Key": "user-1/doc 1/a.pdf"}, ExpiresIn=3600))
"#;
    let python = std::env::var("TRISTORE_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return boto3_unavailable(&format!("cannot run `{python}`: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return boto3_unavailable(&format!(
            "the boto3 script under `{python}` exited with {}:\n{}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if let Some(why) = text.trim().strip_prefix("SKIP") {
        return boto3_unavailable(&format!("`{python}` cannot import boto3 ({})", why.trim()));
    }
    let creds = Credentials::new("AKID", "s3cr3t");
    let mut seen = 0;
    for line in text.lines() {
        let (method, url) = line.split_once(' ').unwrap();
        let rest = url.strip_prefix("http://127.0.0.1:8791").unwrap();
        let (path, query) = rest.split_once('?').unwrap();
        let date = query
            .split('&')
            .find_map(|p| p.strip_prefix("X-Amz-Date="))
            .unwrap();
        let signed_at = time::PrimitiveDateTime::parse(
            date,
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
        )
        .unwrap()
        .assume_utc();
        let req = SignedRequest {
            method,
            path,
            query,
            headers: &[("host", "127.0.0.1:8791")],
        };
        req.verify(
            |k| (k == "AKID").then(|| "s3cr3t".to_owned()),
            SystemTime::from(signed_at) + Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("boto3's {method} URL was refused: {e:?}"));
        let ours = presign_url(
            &PresignRequest {
                method,
                endpoint: "http://127.0.0.1:8791",
                bucket: "metacogna-vault",
                key: "user-1/doc 1/a.pdf",
                region: "auto",
                expires_in: 3600,
                now: SystemTime::from(signed_at),
            },
            &creds,
        )
        .unwrap();
        let sig = |u: &str| u.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned();
        assert_eq!(
            sig(&ours),
            sig(url),
            "same inputs, same signature as boto3 for {method}"
        );
        seen += 1;
    }
    assert_eq!(seen, 2);
}
