//! D1 over the v4 REST API with real HTTP: names and ids, result sizes, requests that
//! the client abandons.

use std::sync::Arc;

use serde_json::{json, Value};
use tristore::server::{start, RunningServer, ServerOptions};
use tristore::{Store, StoreOptions};

struct Server {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    running: Option<RunningServer>,
    /// `http://<addr>/client/v4/accounts/a/d1/database`
    base: String,
}

impl Server {
    fn start(options: StoreOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_with(dir.path(), options).unwrap());
        let running = start(
            store.clone(),
            ServerOptions {
                port: 0,
                s3_port: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let base = format!("http://{}/client/v4/accounts/a/d1/database", running.addr);
        Server {
            _dir: dir,
            store,
            running: Some(running),
            base,
        }
    }

    /// Posts `body` to `path` (under the database list) and returns the status and envelope.
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let answer = ureq::post(&format!("{}{path}", self.base)).send_json(body);
        let response = match answer {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        };
        (response.status(), response.into_json().unwrap())
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let response = match ureq::get(&format!("{}{path}", self.base)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        };
        (response.status(), response.into_json().unwrap())
    }

    fn create(&self, name: &str) -> String {
        let (status, envelope) = self.post("", json!({ "name": name }));
        assert_eq!(status, 200, "{envelope}");
        envelope["result"]["uuid"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().unwrap();
        }
    }
}

#[test]
fn a_database_cannot_be_named_with_an_id_so_ids_always_reach_their_own() {
    let server = Server::start(StoreOptions::default());
    let uuid = server.create("app");
    server.post(
        &format!("/{uuid}/query"),
        json!({"sql": "CREATE TABLE users (id INTEGER PRIMARY KEY)"}),
    );
    for impostor in [uuid.clone(), uuid.to_uppercase(), uuid.replace('-', "")] {
        let (status, envelope) = server.post("", json!({ "name": impostor }));
        assert_eq!(status, 400, "{impostor}: {envelope}");
        assert_eq!(envelope["errors"][0]["code"], 7400, "{envelope}");
        let message = envelope["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("looks like a database id"), "{message}");
    }
    let (status, envelope) = server.post(
        &format!("/{uuid}/query"),
        json!({"sql": "SELECT count(*) AS n FROM users"}),
    );
    assert_eq!(status, 200, "{envelope}");
    let (_, info) = server.get(&format!("/{uuid}"));
    assert_eq!(info["result"]["name"], "app");
    let (_, list) = server.get("");
    assert_eq!(list["result"].as_array().unwrap().len(), 1, "{list}");
    assert!(server.store.d1().get(&uuid.to_uppercase()).is_ok());
}

/// A request whose client goes away stops: the database's writer is free again at
/// once, not when the abandoned query reaches the time limit.
#[test]
fn a_query_whose_client_leaves_stops_and_frees_the_database() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    let server = Server::start(StoreOptions {
        d1_limits: tristore::d1::D1Limits {
            query_timeout: Duration::from_secs(20),
            ..Default::default()
        },
        ..Default::default()
    });
    let uuid = server.create("app");
    let forever = json!({"sql": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c"}).to_string();
    let addr = server.running.as_ref().unwrap().addr;
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    write!(
        client,
        "POST /client/v4/accounts/a/d1/database/{uuid}/query HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{forever}",
        forever.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(client);

    let start = Instant::now();
    let (status, envelope) = server.post(
        &format!("/{uuid}/query"),
        json!({"sql": "CREATE TABLE t (x)"}),
    );
    assert_eq!(status, 200, "{envelope}");
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?} for the writer"
    );
}

/// The audit's 107-byte query that asked for 20 MB of BLOBs: refused at a small limit
/// with a message that says what to do.
#[test]
fn results_past_the_size_limit_are_refused_with_a_clear_error() {
    let server = Server::start(StoreOptions {
        d1_limits: tristore::d1::D1Limits {
            max_result_size: 10_000_000,
            ..Default::default()
        },
        ..Default::default()
    });
    let uuid = server.create("app");
    let blobs = |n: u32| json!({"sql": format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT {n}) SELECT zeroblob(1000000) AS b FROM c")});
    for path in ["query", "raw"] {
        let (status, envelope) = server.post(&format!("/{uuid}/{path}"), blobs(20));
        assert_eq!(status, 400, "{}", envelope["errors"]);
        assert_eq!(envelope["errors"][0]["code"], 7500);
        let message = envelope["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("10000000 bytes") && message.contains("LIMIT"),
            "{message}"
        );
        // Under the limit (two bytes of JSON per zero byte), the same query works.
        let (status, envelope) = server.post(&format!("/{uuid}/{path}"), blobs(4));
        assert_eq!(status, 200, "{path}");
        let result = &envelope["result"][0]["results"];
        let first = if path == "raw" {
            &result["rows"][0][0]
        } else {
            &result[0]["b"]
        };
        assert_eq!(first.as_array().unwrap().len(), 1_000_000);
    }
    // A batch shares one budget.
    let batch: Vec<Value> = (0..6).map(|_| blobs(1)).collect();
    let (status, _) = server.post(&format!("/{uuid}/query"), json!({ "batch": batch }));
    assert_eq!(status, 400);
}

/// BLOBs go out as JSON arrays of numbers; building them as a `serde_json::Value` per
/// byte took about 72 bytes of memory per byte of BLOB.
#[cfg(target_os = "linux")]
#[test]
fn blob_results_are_served_in_bounded_memory() {
    use std::io::Read;

    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let server = Server::start(StoreOptions::default());
    let uuid = server.create("app");
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 8) SELECT zeroblob(1500000) AS b FROM c";
    // Resets the peak resident size (VmHWM) to the current one.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let mut body = Vec::new();
    ureq::post(&format!("{}/{uuid}/query", server.base))
        .send_json(json!({ "sql": sql }))
        .unwrap()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    let grown_mib = status_kib("VmHWM:").saturating_sub(before) / 1024;
    assert!(body.len() > 24_000_000, "{}", body.len());
    // 12 MB of BLOBs, 24 MB of JSON: what is left is the rows, the answer and buffers.
    assert!(grown_mib < 250, "the peak grew by {grown_mib} MiB");
}
