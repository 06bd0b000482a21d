//! D1 export and import over the v4 REST API with the polling protocol, as wrangler
//! drives them: export, download the signed URL; init, PUT the file, ingest, poll.

use std::sync::Arc;

use serde_json::{json, Value};
use tristore::server::{start, ServerOptions};
use tristore::Store;

fn post(url: &str, body: Value) -> Value {
    let response = ureq::post(url)
        .set("Authorization", "Bearer any")
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
