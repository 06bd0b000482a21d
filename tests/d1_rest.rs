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
