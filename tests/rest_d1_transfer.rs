//! D1 export and import over the v4 REST API with the polling protocol, as wrangler
//! drives them: export, download the signed URL; init, PUT the file, ingest, poll.

use std::sync::Arc;

use serde_json::{json, Value};
use tristore::server::{start, ServerOptions};
use tristore::Store;

fn post(url: &str, body: Value) -> Value {
    post_as("any", url, body)
}

fn post_as(token: &str, url: &str, body: Value) -> Value {
    let response = ureq::post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body)
        .unwrap();
    let envelope: Value = response.into_json().unwrap();
    assert_eq!(envelope["success"], true, "{envelope}");
    envelope["result"].clone()
}

#[test]
fn export_and_import_with_polling() {
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
    let base = format!("http://{}/client/v4/accounts/a/d1/database", server.addr);
    let source = post(&base, json!({"name": "source"}))["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = post(&base, json!({"name": "target"}))["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        &format!("{base}/{source}/query"),
        json!({"sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('one'), ('it''s two')"}),
    );

    let export = post(
        &format!("{base}/{source}/export"),
        json!({"output_format": "polling"}),
    );
    assert_eq!(export["status"], "complete");
    let again = post(
        &format!("{base}/{source}/export"),
        json!({"output_format": "polling", "current_bookmark": export["at_bookmark"]}),
    );
    assert_eq!(
        again["result"]["signed_url"],
        export["result"]["signed_url"]
    );
    let dump = ureq::get(export["result"]["signed_url"].as_str().unwrap())
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(dump.contains("CREATE TABLE notes"), "{dump}");

    let etag = format!("{:x}", md5_of(dump.as_bytes()));
    let init = post(
        &format!("{base}/{target}/import"),
        json!({"action": "init", "etag": etag}),
    );
    let uploaded = ureq::put(init["upload_url"].as_str().unwrap())
        .send_bytes(dump.as_bytes())
        .unwrap();
    assert_eq!(uploaded.header("etag").unwrap().trim_matches('"'), etag);
    let ingest = post(
        &format!("{base}/{target}/import"),
        json!({"action": "ingest", "etag": etag, "filename": init["filename"]}),
    );
    let polled = post(
        &format!("{base}/{target}/import"),
        json!({"action": "poll", "current_bookmark": ingest["at_bookmark"]}),
    );
    assert_eq!(polled["status"], "complete", "{polled}");
    assert!(polled["result"]["num_queries"].as_u64().unwrap() >= 2);
    // wrangler prints these four after `d1 execute --remote --file`.
    for field in ["duration", "rows_read", "rows_written", "size_after"] {
        assert!(polled["result"]["meta"][field].is_number(), "{polled}");
    }
    let rows = post(
        &format!("{base}/{target}/query"),
        json!({"sql": "SELECT body FROM notes ORDER BY id"}),
    );
    assert_eq!(
        rows[0]["results"],
        json!([{"body": "one"}, {"body": "it's two"}])
    );

    // A failing import reports an error and changes nothing.
    let bad = "INSERT INTO notes (body) VALUES ('three');\nINSERT INTO nowhere VALUES (1);\n";
    let etag = format!("{:x}", md5_of(bad.as_bytes()));
    let init = post(
        &format!("{base}/{target}/import"),
        json!({"action": "init", "etag": etag}),
    );
    ureq::put(init["upload_url"].as_str().unwrap())
        .send_bytes(bad.as_bytes())
        .unwrap();
    let failed = post(
        &format!("{base}/{target}/import"),
        json!({"action": "ingest", "etag": etag, "filename": init["filename"]}),
    );
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("nowhere"),
        "{failed}"
    );
    let count = post(
        &format!("{base}/{target}/query"),
        json!({"sql": "SELECT count(*) AS n FROM notes"}),
    );
    assert_eq!(count[0]["results"][0]["n"], 2);
    server.shutdown().unwrap();
}

fn md5_of(data: &[u8]) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(data).into())
}

fn status_of(result: Result<ureq::Response, ureq::Error>) -> u16 {
    match result {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("{e}"),
    }
}

/// The transfer URLs are capabilities, as R2's presigned URLs are: only names `init`
/// issued take uploads, only dumps `export` wrote are served, with an API token the URLs
/// are signed with it, uploads are removed once ingested and leftovers once expired.
#[test]
fn transfer_urls_admit_only_what_was_issued() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let token = "s3cret";
    let server = start(
        store.clone(),
        ServerOptions {
            port: 0,
            s3_port: 0,
            api_token: Some(token.into()),
            ..Default::default()
        },
    )
    .unwrap();
    let base = format!("http://{}/client/v4/accounts/a/d1/database", server.addr);
    let files = format!("http://{}/cdn-cgi/tristore/d1", server.addr);
    let db = post_as(token, &base, json!({"name": "db"}))["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let transfers = dir.path().join("d1-transfers");

    // A file left by a crash two hours ago is swept by the next transfer.
    std::fs::create_dir_all(&transfers).unwrap();
    let stale = transfers.join("left-over.sql");
    std::fs::write(&stale, "x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();

    // A name nobody issued takes no upload, signed or not.
    assert_eq!(
        status_of(ureq::put(&format!("{files}/{db}-import-0.sql")).send_bytes(b"SELECT 1")),
        403
    );

    let sql = "CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\n";
    let etag = format!("{:x}", md5_of(sql.as_bytes()));
    let init = post_as(
        token,
        &format!("{base}/{db}/import"),
        json!({"action": "init", "etag": etag}),
    );
    assert!(!stale.exists(), "an expired transfer file was kept");
    let url = init["upload_url"].as_str().unwrap();
    let (unsigned, signature) = url.split_once('?').unwrap();
    assert!(signature.starts_with("signature="), "{url}");
    // Without the signature, or with another's, the issued name alone is not enough.
    assert_eq!(
        status_of(ureq::put(unsigned).send_bytes(sql.as_bytes())),
        403
    );
    assert_eq!(
        status_of(ureq::put(&format!("{unsigned}?signature=00")).send_bytes(sql.as_bytes())),
        403
    );
    assert_eq!(status_of(ureq::put(url).send_bytes(sql.as_bytes())), 200);
    // An upload is not served back: GET serves only dumps.
    let filename = init["filename"].as_str().unwrap();
    let signed_get = url.replace(unsigned, &format!("{files}/{filename}"));
    assert_eq!(status_of(ureq::get(&signed_get).call()), 404);

    let ingest = post_as(
        token,
        &format!("{base}/{db}/import"),
        json!({"action": "ingest", "etag": etag, "filename": filename}),
    );
    assert_eq!(ingest["status"], "complete", "{ingest}");
    let left: Vec<_> = std::fs::read_dir(transfers.join("imports"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "kept after ingest: {left:?}");
    // The issued name is used up: a second upload to it is refused.
    assert_eq!(status_of(ureq::put(url).send_bytes(sql.as_bytes())), 404);

    let export = post_as(
        token,
        &format!("{base}/{db}/export"),
        json!({"output_format": "polling"}),
    );
    let dump_url = export["result"]["signed_url"].as_str().unwrap();
    assert_eq!(status_of(ureq::get(dump_url).call()), 200);
    let (unsigned_dump, _) = dump_url.split_once('?').unwrap();
    assert_eq!(status_of(ureq::get(unsigned_dump).call()), 403);
    server.shutdown().unwrap();
}
