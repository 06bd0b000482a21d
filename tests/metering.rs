//! Metering: after a known workload over the REST API and the S3 API, `/metrics` and the
//! usage report hold exactly its counts; the counts survive a restart and are what
//! `tristore usage` prints; and past a free-tier allowance, `--free-tier warn` logs once
//! and `--free-tier enforce` refuses in each API's own error shape, storing nothing.

mod common;
#[path = "support/node_project.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::metric;
use serde_json::{json, Value};
use tristore::r2::presign::{presign_url, Credentials, PresignRequest};
use tristore::server::s3::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use tristore::server::{start, RunningServer, ServerOptions};
use tristore::usage::{Allowance, FreeTier, Policy};
use tristore::vectorize::{IndexConfig, Metric};
use tristore::Store;

const DIMENSIONS: usize = 4;

struct Emulator {
    dir: tempfile::TempDir,
    server: Option<RunningServer>,
    store: Option<Arc<Store>>,
}

impl Emulator {
    /// A store with database `app` (table `t`), index `idx` and bucket `files`.
    fn start(free_tier: FreeTier) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.d1().create("app").unwrap();
        store
            .d1()
            .database("app")
            .unwrap()
            .exec("CREATE TABLE t (n INTEGER)")
            .unwrap();
        store
            .vectorize()
            .create(
                "idx",
                "",
                IndexConfig {
                    dimensions: DIMENSIONS,
                    metric: Metric::Euclidean,
                },
            )
            .unwrap();
        store.r2().create_bucket("files").unwrap();
        drop(store);
        let mut emulator = Emulator {
            dir,
            server: None,
            store: None,
        };
        emulator.restart(free_tier);
        emulator
    }

    /// Stops the server (which saves the counts) and starts a new one on the same data.
    fn restart(&mut self, free_tier: FreeTier) {
        if let Some(server) = self.server.take() {
            server.shutdown().unwrap();
        }
        self.store = None;
        let store = Arc::new(Store::open(self.dir.path()).unwrap());
        let options = ServerOptions {
            port: 0,
            s3_port: 0,
            free_tier,
            ..ServerOptions::default()
        };
        self.server = Some(start(store.clone(), options).unwrap());
        self.store = Some(store);
    }

    fn rest(&self, path: &str) -> String {
        let addr = self.server.as_ref().unwrap().addr;
        format!("http://{addr}{path}")
    }

    fn api(&self, path: &str) -> String {
        self.rest(&format!("/client/v4/accounts/any/{path}"))
    }

    /// A presigned S3 URL for `method` on `key` of bucket `files`.
    fn s3(&self, method: &str, key: &str) -> String {
        let endpoint = format!("http://{}", self.server.as_ref().unwrap().s3_addr);
        presign_url(
            &PresignRequest {
                method,
                endpoint: &endpoint,
                bucket: "files",
                key,
                region: "auto",
                expires_in: 600,
                now: SystemTime::now(),
            },
            &Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY),
        )
        .unwrap()
    }

    /// The metrics, as `name{labels} value` lines.
    fn scrape(&self) -> String {
        http("GET", &self.rest("/metrics"), None).1
    }

    fn usage(&self) -> Value {
        let (status, body) = http("GET", &self.rest("/cdn-cgi/tristore/usage"), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["result"].clone()
    }
}

/// One request; the status and the body, whatever the status.
fn http(method: &str, url: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
    let request = ureq::request(method, url);
    let sent = match body {
        Some((content_type, bytes)) => request.set("content-type", content_type).send_bytes(bytes),
        None => request.call(),
    };
    let response = match sent {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (response.status(), response.into_string().unwrap())
}

fn d1_query(emulator: &Emulator, sql: &str) -> (u16, Value) {
    let body = json!({ "sql": sql }).to_string();
    let (status, text) = http(
        "POST",
        &emulator.api("d1/database/app/query"),
        Some(("application/json", body.as_bytes())),
    );
    (status, serde_json::from_str(&text).unwrap())
}

fn vector_query(emulator: &Emulator) -> (u16, Value) {
    let body = json!({ "vector": vec![0.5; DIMENSIONS], "topK": 2 }).to_string();
    let (status, text) = http(
        "POST",
        &emulator.api("vectorize/v2/indexes/idx/query"),
        Some(("application/json", body.as_bytes())),
    );
    (status, serde_json::from_str(&text).unwrap())
}

/// The line of the usage report for `allowance`.
fn allowance<'a>(usage: &'a Value, name: &str) -> &'a Value {
    usage["allowances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["allowance"] == name)
        .unwrap_or_else(|| panic!("no {name} in {usage}"))
}

/// What the workload did, counted by the client from the answers.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    rows_read: u64,
    rows_written: u64,
    sent_bytes: u64,
    received_bytes: u64,
}

/// D1 statements, Vectorize writes and 2 queries, and S3 calls of each class.
fn workload(emulator: &Emulator) -> Expected {
    let mut expected = Expected::default();
    for sql in [
        "INSERT INTO t VALUES (1), (2), (3)",
        "SELECT * FROM t",
        "UPDATE t SET n = n + 1 WHERE n > 1",
    ] {
        let (status, answer) = d1_query(emulator, sql);
        assert_eq!(status, 200, "{answer}");
        let meta = &answer["result"][0]["meta"];
        expected.rows_read += meta["rows_read"].as_u64().unwrap();
        expected.rows_written += meta["rows_written"].as_u64().unwrap();
    }
    assert!(
        expected.rows_read > 0 && expected.rows_written >= 5,
        "{expected:?}"
    );

    let ndjson: String = (0..3)
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": format!("v{i}"), "values": vec![i as f32; DIMENSIONS]})
            )
        })
        .collect();
    let (status, body) = http(
        "POST",
        &emulator.api("vectorize/v2/indexes/idx/insert"),
        Some(("application/x-ndjson", ndjson.as_bytes())),
    );
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        assert_eq!(vector_query(emulator).0, 200);
    }

    for (i, size) in [10usize, 2000, 70_000].into_iter().enumerate() {
        let body = vec![b'x'; size];
        let (status, text) = http(
            "PUT",
            &emulator.s3("PUT", &format!("k{i}")),
            Some(("application/octet-stream", &body)),
        );
        assert_eq!(status, 200, "{text}");
        expected.received_bytes += size as u64;
    }
    for key in ["k1", "k2", "missing"] {
        let (status, body) = http("GET", &emulator.s3("GET", key), None);
        assert_eq!(status, if key == "missing" { 404 } else { 200 });
        expected.sent_bytes += body.len() as u64;
    }
    assert_eq!(http("HEAD", &emulator.s3("HEAD", "k0"), None).0, 200);
    assert_eq!(http("DELETE", &emulator.s3("DELETE", "k0"), None).0, 204);
    expected
}

#[test]
fn metrics_and_usage_count_a_known_workload_exactly_and_survive_a_restart() {
    let mut emulator = Emulator::start(FreeTier::default());
    let expected = workload(&emulator);
    let scrape = emulator.scrape();

    let requests = |api: &str, surface: &str, op: &str, status: u16| {
        let series = format!(
            "tristore_requests_total{{api=\"{api}\",surface=\"{surface}\",operation=\"{op}\",status=\"{status}\"}}"
        );
        metric(&scrape, &series)
    };
    assert_eq!(
        requests("d1", "rest", "POST d1/database/{db}/query", 200),
        3
    );
    assert_eq!(
        requests(
            "vectorize",
            "rest",
            "POST vectorize/v2/indexes/{index}/query",
            200
        ),
        2
    );
    assert_eq!(requests("r2", "s3", "PutObject", 200), 3);
    assert_eq!(requests("r2", "s3", "GetObject", 200), 2);
    assert_eq!(requests("r2", "s3", "GetObject", 404), 1);
    assert_eq!(requests("r2", "s3", "HeadObject", 200), 1);
    assert_eq!(requests("r2", "s3", "DeleteObject", 204), 1);
    let latency = metric(
        &scrape,
        "tristore_request_duration_seconds_count{api=\"r2\",surface=\"s3\",operation=\"PutObject\"}",
    );
    assert_eq!(latency, 3);

    let series =
        |name: &str, labels: &str| metric(&scrape, &format!("tristore_{name}{{{labels}}}"));
    assert_eq!(
        series("d1_rows_read_total", "database=\"app\""),
        expected.rows_read
    );
    assert_eq!(
        series("d1_rows_written_total", "database=\"app\""),
        expected.rows_written
    );
    assert_eq!(
        series("vectorize_queried_dimensions_total", "index=\"idx\""),
        2 * DIMENSIONS as u64
    );
    assert_eq!(
        series("vectorize_stored_dimensions", "index=\"idx\""),
        3 * DIMENSIONS as u64
    );
    // 3 puts are Class A; 3 gets (the 404 too: R2 bills it) and a head are Class B.
    assert_eq!(
        series("r2_operations_total", "bucket=\"files\",class=\"a\""),
        3
    );
    assert_eq!(
        series("r2_operations_total", "bucket=\"files\",class=\"b\""),
        4
    );
    assert_eq!(
        series("r2_operations_total", "bucket=\"files\",class=\"free\""),
        1
    );
    assert_eq!(
        series("r2_received_bytes_total", "bucket=\"files\""),
        expected.received_bytes
    );
    assert_eq!(
        series("r2_sent_bytes_total", "bucket=\"files\""),
        expected.sent_bytes
    );

    let check_usage = |usage: &Value| {
        let used = |name: &str| allowance(usage, name)["used"].as_u64().unwrap();
        assert_eq!(used("d1-rows-read"), expected.rows_read, "{usage}");
        assert_eq!(used("d1-rows-written"), expected.rows_written);
        assert_eq!(used("vectorize-queried-dimensions"), 2 * DIMENSIONS as u64);
        assert_eq!(used("vectorize-stored-dimensions"), 3 * DIMENSIONS as u64);
        assert_eq!(used("r2-class-a-operations"), 3);
        assert_eq!(used("r2-class-b-operations"), 4);
        assert_eq!(used("r2-storage-bytes"), 2000 + 70_000);
        assert_eq!(allowance(usage, "d1-rows-read")["limit"], 5_000_000);
    };
    check_usage(&emulator.usage());

    // While the server holds the data directory, `tristore usage` reads what it saved
    // (at most a second old).
    let data = emulator.dir.path().to_owned();
    let cli = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tristore"))
            .args(["usage", "--json", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", support::report(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    std::thread::sleep(Duration::from_millis(1500));
    let saved = cli();
    assert_eq!(
        allowance(&saved, "d1-rows-written")["used"]
            .as_u64()
            .unwrap(),
        expected.rows_written
    );

    emulator.restart(FreeTier::default());
    check_usage(&emulator.usage());
    emulator.server.take().unwrap().shutdown().unwrap();
    emulator.store = None;
    check_usage(&cli());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tristore"))
        .args(["usage", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("Class A operations") && table.contains("5,000,000 a day"),
        "{table}"
    );
}

#[test]
fn enforce_refuses_past_each_allowance_in_the_apis_own_shape_and_stores_nothing() {
    let tier = FreeTier {
        policy: Policy::Enforce,
        overrides: [
            (Allowance::D1RowsWritten, 1),
            (Allowance::VectorizeQueriedDimensions, 2 * DIMENSIONS as u64),
            (Allowance::R2ClassA, 2),
            (Allowance::R2ClassB, 1),
        ]
        .into(),
    };
    let emulator = Emulator::start(tier);

    assert_eq!(d1_query(&emulator, "INSERT INTO t VALUES (1)").0, 200);
    let (status, refused) = d1_query(&emulator, "INSERT INTO t VALUES (2)");
    assert_eq!(status, 400);
    assert_eq!(refused["errors"][0]["code"], 7500);
    assert_eq!(
        refused["errors"][0]["message"],
        "Your account has exceeded D1's free tier daily row write limit. Upgrade to a paid plan or wait until tomorrow (midnight UTC) to continue."
    );
    // Reads are refused too, as D1 does once a daily allowance is used up.
    assert_eq!(d1_query(&emulator, "SELECT * FROM t").0, 400);
    let rows = emulator
        .store
        .as_ref()
        .unwrap()
        .d1()
        .database("app")
        .unwrap()
        .prepare("SELECT count(*) AS n FROM t")
        .first_column("n")
        .unwrap();
    assert_eq!(rows, Some(json!(1)));

    for _ in 0..2 {
        assert_eq!(vector_query(&emulator).0, 200);
    }
    let (status, refused) = vector_query(&emulator);
    assert_eq!(status, 403);
    assert_eq!(refused["errors"][0]["code"], 40011);
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("queried vector dimensions"));

    for key in ["a", "b"] {
        let put = http("PUT", &emulator.s3("PUT", key), Some(("text/plain", b"x")));
        assert_eq!(put.0, 200);
    }
    let (status, xml) = http("PUT", &emulator.s3("PUT", "c"), Some(("text/plain", b"x")));
    assert_eq!(status, 403);
    assert!(xml.contains("<Code>NotEntitled</Code>"), "{xml}");
    assert!(xml.contains("Class A operations"), "{xml}");
    assert_eq!(http("GET", &emulator.s3("GET", "a"), None).0, 200);
    let (status, xml) = http("GET", &emulator.s3("GET", "a"), None);
    assert_eq!(status, 403, "{xml}");
    // Deletes are free, so never refused.
    assert_eq!(http("DELETE", &emulator.s3("DELETE", "b"), None).0, 204);
    let bucket = emulator
        .store
        .as_ref()
        .unwrap()
        .r2()
        .bucket("files")
        .unwrap();
    assert!(
        bucket.head("c").unwrap().is_none(),
        "a refused put stored nothing"
    );

    // Refused requests are answered and counted as requests, not in billing units.
    let usage = emulator.usage();
    let used = |name: &str| allowance(&usage, name)["used"].as_u64().unwrap();
    assert_eq!(used("d1-rows-written"), 1);
    assert_eq!(used("vectorize-queried-dimensions"), 2 * DIMENSIONS as u64);
    assert_eq!(used("r2-class-a-operations"), 2);
    assert_eq!(used("r2-class-b-operations"), 1);
    let scrape = emulator.scrape();
    assert_eq!(
        metric(
            &scrape,
            "tristore_requests_total{api=\"r2\",surface=\"s3\",operation=\"PutObject\",status=\"403\"}"
        ),
        1
    );
}

#[test]
fn warn_logs_once_per_allowance_and_period() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let data = dir.path().join("data");
    let server = support::Tristore::start_logging(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--free-tier",
            "warn",
            "--free-tier-allowance",
            "d1-rows-written=2",
        ],
        &log,
    );
    let url = format!(
        "{}/client/v4/accounts/any/d1/database/metacogna/query",
        server.origin
    );
    for i in 0..4 {
        let sql =
            format!("INSERT INTO chat_sessions (id, title, createdAt, updatedAt) VALUES ('s{i}', 't', 0, 0)");
        let body = json!({ "sql": sql }).to_string();
        let (status, text) = http("POST", &url, Some(("application/json", body.as_bytes())));
        assert_eq!(status, 200, "warn only counts: {text}");
    }
    server.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("past the free tier's allowance"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("d1-rows-written"), "{}", warnings[0]);
}
