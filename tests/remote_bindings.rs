//! The remote-bindings route (`/cdn-cgi/tristore/remote-bindings`): the requests
//! Miniflare's proxy client sent in the captures of `tests/fixtures/worker-bindings/`
//! (Miniflare 4 and 5, from `shared/spec/wire-captures/worker-bindings/`), replayed,
//! with the status and shape of every answer checked; then the bad input a binding or a
//! stray client can send, which must get the binding's own error and change nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use serde_json::{json, Value};
use tristore::d1::migrations::Migration;
use tristore::provision::{Plan, PlannedBucket, PlannedDatabase, PlannedIndex};
use tristore::r2::R2Limits;
use tristore::server::{start, RunningServer, ServerOptions};
use tristore::usage::{Allowance, FreeTier, Policy};
use tristore::vectorize::{IndexConfig, MetadataIndex, MetadataIndexType, Metric};
use tristore::{Store, StoreOptions};

const ROUTE: &str = "/cdn-cgi/tristore/remote-bindings";

/// What the captures' Worker bound: `VECTORIZE` (3 dimensions, `g` indexed), `DB`
/// (with a `users` table) and `BUCKET`.
fn plan() -> Plan {
    Plan {
        databases: vec![PlannedDatabase {
            binding: "DB".into(),
            name: "app".into(),
            migrations: vec![Migration {
                name: "0001_users.sql".into(),
                sql: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT UNIQUE);".into(),
            }],
            migrations_table: "d1_migrations".into(),
        }],
        indexes: vec![PlannedIndex {
            binding: "VECTORIZE".into(),
            name: "metacogna-index".into(),
            description: String::new(),
            config: IndexConfig {
                dimensions: 3,
                metric: Metric::Cosine,
            },
            metadata_indexes: vec![MetadataIndex {
                property_name: "g".into(),
                index_type: MetadataIndexType::String,
            }],
        }],
        buckets: vec![PlannedBucket {
            binding: "BUCKET".into(),
            name: "files".into(),
        }],
    }
}

struct Served {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    server: RunningServer,
}

impl Served {
    fn new(token: Option<&str>) -> Served {
        Served::with(token, FreeTier::default())
    }

    fn with(token: Option<&str>, free_tier: FreeTier) -> Served {
        // Small R2 limits so that the size checks can be reached cheaply.
        let options = StoreOptions {
            r2_limits: R2Limits {
                max_upload_bytes: 1 << 20,
                min_part_bytes: 1024,
                ..R2Limits::default()
            },
            ..StoreOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_with(dir.path(), options).unwrap());
        plan().apply(&store).unwrap();
        let server = start(
            store.clone(),
            ServerOptions {
                port: 0,
                s3_port: 0,
                api_token: token.map(str::to_owned),
                plan: plan(),
                free_tier,
                ..ServerOptions::default()
            },
        )
        .unwrap();
        Served {
            _dir: dir,
            store,
            server,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `cf-r2-error` header, parsed.
    fn r2_error(&self) -> Value {
        serde_json::from_str(self.header("cf-r2-error").expect("cf-r2-error header")).unwrap()
    }

    /// An R2 answer: its metadata JSON and the bytes after it.
    fn r2_framed(&self) -> (Value, &[u8]) {
        let size: usize = self
            .header("cf-r2-metadata-size")
            .expect("cf-r2-metadata-size")
            .parse()
            .unwrap();
        (
            serde_json::from_slice(&self.body[..size]).unwrap(),
            &self.body[size..],
        )
    }
}

/// One HTTP/1.1 request on its own connection, read to the end.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Reply {
    let mut conn = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A binding call as Miniflare's proxy client makes it.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    binding: &str,
    url: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> Reply {
    let mut headers = vec![
        ("MF-Binding", binding.to_owned()),
        ("MF-URL", url.to_owned()),
    ];
    headers.extend(extra.iter().cloned());
    send(addr, method, path, &headers, body)
}

fn vectorize(addr: SocketAddr, op: &str, body: &str) -> Reply {
    let method = if op == "info" { "GET" } else { "POST" };
    call(
        addr,
        method,
        ROUTE,
        "VECTORIZE",
        &format!("http://vector-search/{op}"),
        &[],
        body.as_bytes(),
    )
}

fn d1(addr: SocketAddr, path: &str, body: Value) -> Reply {
    call(
        addr,
        "POST",
        ROUTE,
        "DB",
        &format!("http://d1/{path}"),
        &[],
        body.to_string().as_bytes(),
    )
}

fn r2_read(addr: SocketAddr, request: Value) -> Reply {
    call(
        addr,
        "GET",
        ROUTE,
        "BUCKET",
        "https://fake-host",
        &[("MF-Header-cf-r2-request", request.to_string())],
        b"",
    )
}

fn r2_write(addr: SocketAddr, request: Value, value: &[u8]) -> Reply {
    let meta = request.to_string();
    let mut body = meta.clone().into_bytes();
    body.extend_from_slice(value);
    let extra = [
        ("MF-Header-cf-r2-metadata-size", meta.len().to_string()),
        ("MF-Header-content-length", body.len().to_string()),
    ];
    call(
        addr,
        "PUT",
        ROUTE,
        "BUCKET",
        "https://fake-host",
        &extra,
        &body,
    )
}

fn fixture(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/worker-bindings/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sends a captured request to the route: the PoC's per-index path becomes the
/// route's `vectorize/{index}`, the root (D1 and R2 bindings) the route itself, and
/// Miniflare 5's one shared URL (bindings `A` and `B`) the route with query mappings.
fn replay(addr: SocketAddr, captured: &Value) -> Reply {
    let path = captured["path"].as_str().unwrap();
    let path = if let Some(rest) = path.strip_prefix("/cdn-cgi/tristore/vectorize/") {
        format!("{ROUTE}/vectorize/{rest}")
    } else if path == "/r" {
        format!("{ROUTE}?A=metacogna-index&B=metacogna-index")
    } else {
        let query = path.split_once('?').map_or("", |(_, q)| q);
        format!("{ROUTE}?{query}")
    };
    if captured["upgrade"] == true {
        let ws = [
            ("Connection", "Upgrade".to_owned()),
            ("Upgrade", "websocket".to_owned()),
            ("Sec-WebSocket-Version", "13".to_owned()),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
        ];
        return send(addr, "GET", &path, &ws, b"");
    }
    let headers: Vec<(&str, String)> = captured["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("mf-"))
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_owned()))
        .collect();
    let body = match &captured["r2_request"] {
        Value::Object(_) if captured["method"] == "PUT" => {
            let meta = captured["r2_request"].to_string();
            let size: usize = captured["headers"]["mf-header-cf-r2-metadata-size"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                meta.len(),
                size,
                "the captured metadata re-encodes to its size"
            );
            format!("{meta}{}", captured["value"].as_str().unwrap_or(""))
        }
        _ => captured["body"].as_str().unwrap_or("").to_owned(),
    };
    send(
        addr,
        captured["method"].as_str().unwrap(),
        &path,
        &headers,
        body.as_bytes(),
    )
}

/// The operation a captured request is, for the checks: `ws`, `vectorize/<op>`,
/// `d1/<op>` or `r2/<method>`.
fn op_of(captured: &Value) -> String {
    if captured["upgrade"] == true {
        return "ws".into();
    }
    let url = captured["headers"]["mf-url"].as_str().unwrap();
    if let Some(op) = url.strip_prefix("http://vector-search/") {
        return format!("vectorize/{op}");
    }
    if let Some(op) = url.strip_prefix("http://d1/") {
        return format!("d1/{}", op.split('?').next().unwrap());
    }
    format!("r2/{}", captured["r2_request"]["method"].as_str().unwrap())
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
}

fn is_bookmark(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 4
        && groups.iter().zip([8, 8, 8, 32]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Checks one answer's shape against the binding's wire format for its operation.
fn check_shape(op: &str, reply: &Reply) {
    let context = format!(
        "{op} -> {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    match op {
        "ws" => assert!(reply.status == 426 && reply.body.is_empty(), "{context}"),
        _ if op.starts_with("vectorize/") && reply.status != 200 => {
            let e = reply.json();
            assert!(e["code"].is_u64() && e["error"].is_string(), "{context}");
            assert_eq!(e.as_object().unwrap().len(), 2, "{context}");
        }
        "vectorize/info" => {
            let v = reply.json();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                [
                    "vectorCount",
                    "dimensions",
                    "processedUpToDatetime",
                    "processedUpToMutation"
                ],
                "{context}"
            );
            assert_eq!(v["dimensions"], 3, "{context}");
        }
        "vectorize/query" => {
            let v = reply.json();
            let matches = v["matches"].as_array().expect("matches");
            assert_eq!(v["count"], matches.len(), "{context}");
            for m in matches {
                assert!(m["id"].is_string() && m["score"].is_number(), "{context}");
            }
        }
        "vectorize/insert" | "vectorize/upsert" | "vectorize/deleteByIds" => {
            let v = reply.json();
            assert!(is_uuid(&v["mutationId"]), "{context}");
            assert_eq!(v.as_object().unwrap().len(), 1, "{context}");
        }
        "vectorize/getByIds" => {
            for v in reply.json().as_array().expect("a bare array") {
                assert!(v["id"].is_string() && v["values"].is_array(), "{context}");
            }
        }
        _ if op.starts_with("d1/") && reply.status != 200 => {
            let e = reply.json();
            assert_eq!(e["success"], false, "{context}");
            assert!(
                e["error"].as_str().unwrap().contains(": SQLITE_"),
                "{context}"
            );
        }
        _ if op.starts_with("d1/") => {
            assert!(
                is_bookmark(reply.header("x-cf-d1-session-commit-token").unwrap()),
                "{context}"
            );
            for r in reply.json().as_array().expect("an array of results") {
                assert_eq!(r["success"], true, "{context}");
                for field in [
                    "duration",
                    "changes",
                    "last_row_id",
                    "changed_db",
                    "size_after",
                    "rows_read",
                    "rows_written",
                ] {
                    assert!(!r["meta"][field].is_null(), "meta.{field}: {context}");
                }
                if op == "d1/query" {
                    assert!(
                        r["results"]["columns"].is_array() && r["results"]["rows"].is_array(),
                        "{context}"
                    );
                } else {
                    assert!(r["results"].is_array(), "{context}");
                }
            }
        }
        _ if reply.status >= 400 => {
            assert!(reply.r2_error()["v4code"].is_u64(), "{context}");
        }
        "r2/delete" => assert!(reply.body.is_empty(), "{context}"),
        "r2/list" => {
            let (v, rest) = reply.r2_framed();
            assert!(
                v["objects"].is_array() && v["truncated"].is_boolean(),
                "{context}"
            );
            assert!(
                v["delimitedPrefixes"].is_array() && rest.is_empty(),
                "{context}"
            );
        }
        _ => {
            let (v, _) = reply.r2_framed();
            for field in [
                "name",
                "version",
                "size",
                "etag",
                "uploaded",
                "checksums",
                "storageClass",
            ] {
                assert!(!v[field].is_null(), "{field}: {context}");
            }
        }
    }
}

/// Replays `file` on a fresh server and returns (operation, status) per request.
fn replay_file(file: &str) -> Vec<(String, u16)> {
    let served = Served::new(None);
    fixture(file)
        .iter()
        .map(|captured| {
            let op = op_of(captured);
            let reply = replay(served.addr(), captured);
            check_shape(&op, &reply);
            (op, reply.status)
        })
        .collect()
}

/// The Miniflare 4 run of every Vectorize call, twice: `queryById("a")` before `a`
/// exists is 40008, `topK: 100` with values is over the cap, `insert([])` is refused.
#[test]
fn miniflare_4_vectorize_calls_get_the_bindings_answers() {
    let statuses = replay_file("vectorize-proxy-requests.jsonl");
    let calls: Vec<_> = statuses.iter().filter(|(op, _)| op != "ws").collect();
    assert_eq!(
        statuses.len(),
        2 * calls.len(),
        "a WebSocket attempt before each call"
    );
    let run: Vec<(&str, u16)> = vec![
        ("vectorize/info", 200),
        ("vectorize/query", 200),
        ("vectorize/query", 200),
        ("vectorize/query", 400),
        ("vectorize/insert", 200),
        ("vectorize/upsert", 200),
        ("vectorize/getByIds", 200),
        ("vectorize/deleteByIds", 200),
        ("vectorize/query", 400),
        ("vectorize/insert", 400),
        ("vectorize/info", 200), // Node's `mf.getBindings()` describe
    ];
    let expected: Vec<(&str, u16)> = run.iter().chain(&run).copied().collect();
    let got: Vec<(&str, u16)> = calls.iter().map(|(op, s)| (op.as_str(), *s)).collect();
    assert_eq!(got, expected);
}

#[test]
fn miniflare_5_vectorize_calls_and_one_url_for_two_bindings() {
    let statuses = replay_file("vectorize-proxy-requests-miniflare5.jsonl");
    assert!(
        statuses.iter().all(|(op, _)| op != "ws"),
        "Miniflare 5 opens no WebSocket"
    );
    let codes: Vec<u16> = statuses.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        codes,
        [200, 200, 200, 400, 200, 200, 200, 200, 400, 400, 200, 200, 200]
    );
}

#[test]
fn d1_and_r2_calls_get_the_bindings_answers() {
    let served = Served::new(None);
    let captured = fixture("d1-r2-proxy-requests.jsonl");
    let replies: Vec<(String, Reply)> = captured
        .iter()
        .map(|c| (op_of(c), replay(served.addr(), c)))
        .collect();
    for (op, reply) in &replies {
        check_shape(op, reply);
    }
    let calls: Vec<&(String, Reply)> = replies.iter().filter(|(op, _)| op != "ws").collect();
    let statuses: Vec<u16> = calls.iter().map(|(_, r)| r.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 400, 200, 200, 200, 200, 404, 200, 200]
    );

    // first(): `SELECT ?1 AS a, ?2 AS b` with (1, "x"), rows and columns.
    assert_eq!(
        calls[0].1.json()[0]["results"],
        json!({"columns": ["a", "b"], "rows": [[1, "x"]]})
    );
    // run(): an INSERT through /execute changed one row.
    assert_eq!(calls[2].1.json()[0]["meta"]["changes"], 1);
    // batch(): one result per statement; exec(): the two lines ran.
    assert_eq!(calls[4].1.json().as_array().unwrap().len(), 2);
    assert_eq!(calls[5].1.json().as_array().unwrap().len(), 2);
    assert_eq!(
        calls[6].1.json()["error"],
        "no such table: nope: SQLITE_ERROR"
    );
    // put: the stored object's metadata, MD5 etag, fields echoed.
    let (put, _) = calls[8].1.r2_framed();
    assert_eq!(put["etag"], "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(put["customFields"], json!([{"k": "owner", "v": "me"}]));
    assert_eq!(put["httpFields"], json!({"contentType": "text/plain"}));
    assert_eq!(
        put["checksums"],
        json!({"0": "5d41402abc4b2a76b9719d911017c592"})
    );
    // get: metadata then the bytes; a ranged get: the range and its bytes.
    assert_eq!(calls[9].1.r2_framed().1, b"hello");
    let (ranged, bytes) = calls[10].1.r2_framed();
    assert_eq!(
        (ranged["range"].clone(), bytes),
        (json!({"offset": 1, "length": 2}), &b"el"[..])
    );
    // head of a missing key: 404 with 10007, which the binding turns into null.
    assert_eq!(calls[11].1.r2_error()["v4code"], 10007);
    // list with include [1]: custom metadata only.
    let (list, _) = calls[12].1.r2_framed();
    assert_eq!(list["objects"][0]["name"], "docs/a.txt");
    assert!(list["objects"][0]["customFields"].is_array());
    assert!(list["objects"][0]["httpFields"].is_null());
    // delete: gone.
    let gone = served
        .store
        .r2()
        .bucket("files")
        .unwrap()
        .head("docs/a.txt")
        .unwrap();
    assert!(gone.is_none());
}

/// The metrics after the captured D1 and R2 calls: each call counted once under its
/// operation (R2's by their S3 names, so that they are classed), D1's rows as the
/// answers' `meta` reports them.
#[test]
fn binding_calls_are_metered_like_the_other_apis() {
    let served = Served::new(None);
    let captured = fixture("d1-r2-proxy-requests.jsonl");
    let mut rows = (0, 0);
    for c in &captured {
        let reply = replay(served.addr(), c);
        if op_of(c).starts_with("d1") && reply.status == 200 {
            for result in reply.json().as_array().unwrap() {
                rows.0 += result["meta"]["rows_read"].as_u64().unwrap();
                rows.1 += result["meta"]["rows_written"].as_u64().unwrap();
            }
        }
    }
    let scrape = send(served.addr(), "GET", "/metrics", &[], b"");
    let scrape = String::from_utf8(scrape.body).unwrap();
    let value = |series: &str| common::metric(&scrape, series);
    let requests = |api: &str, op: &str, status: u16| {
        value(&format!(
            "tristore_requests_total{{api=\"{api}\",surface=\"binding\",operation=\"{op}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("d1", "query", 400), 1);
    assert_eq!(requests("r2", "PutObject", 200), 1);
    assert_eq!(requests("r2", "HeadObject", 404), 1);
    assert_eq!(
        value("tristore_d1_rows_read_total{database=\"app\"}"),
        rows.0
    );
    assert_eq!(
        value("tristore_d1_rows_written_total{database=\"app\"}"),
        rows.1
    );
    assert!(rows.1 > 0);
    // put, list: Class A; get, ranged get, head: Class B; delete: free.
    assert_eq!(
        value("tristore_r2_operations_total{bucket=\"files\",class=\"a\"}"),
        2
    );
    assert_eq!(
        value("tristore_r2_operations_total{bucket=\"files\",class=\"b\"}"),
        3
    );
    assert_eq!(
        value("tristore_r2_operations_total{bucket=\"files\",class=\"free\"}"),
        1
    );
}

/// Under `--free-tier enforce` with every allowance used up, each binding refuses in
/// its own error format, which the Worker sees as D1's, Vectorize's or R2's error.
#[test]
fn binding_calls_past_the_free_tier_get_the_bindings_own_errors() {
    let tier = FreeTier {
        policy: Policy::Enforce,
        overrides: Allowance::ALL.into_iter().map(|a| (a, 0)).collect(),
    };
    let served = Served::with(None, tier);
    let r = d1(served.addr(), "query", json!({"sql": "SELECT 1"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "Your account has exceeded D1's free tier daily row read limit. Upgrade to a paid plan or wait until tomorrow (midnight UTC) to continue."
    );
    let r = vectorize(served.addr(), "query", r#"{"vector":[1,0,0],"topK":1}"#);
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!(40011)));
    // info is not a query: it counts against nothing.
    assert_eq!(vectorize(served.addr(), "info", "").status, 200);
    let r = r2_write(served.addr(), json!({"method": "put", "object": "k"}), b"v");
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (403, json!(10042))
    );
    let r = r2_read(served.addr(), json!({"method": "head", "object": "k"}));
    assert_eq!(r.r2_error()["v4code"], 10042);
    let bucket = served.store.r2().bucket("files").unwrap();
    assert!(bucket.head("k").unwrap().is_none());
}

#[test]
fn bookmarks_move_forward_with_every_write() {
    let served = Served::new(None);
    let token = |r: &Reply| r.header("x-cf-d1-session-commit-token").unwrap().to_owned();
    let read = d1(
        served.addr(),
        "query?resultsFormat=ROWS_AND_COLUMNS",
        json!({"sql": "SELECT 1"}),
    );
    let write = d1(
        served.addr(),
        "execute?resultsFormat=NONE",
        json!({"sql": "INSERT INTO users (name) VALUES ('a')"}),
    );
    let again = d1(
        served.addr(),
        "query?resultsFormat=ROWS_AND_COLUMNS",
        json!({"sql": "SELECT 1"}),
    );
    assert!(
        token(&read) < token(&write),
        "{} {}",
        token(&read),
        token(&write)
    );
    assert_eq!(
        token(&write),
        token(&again),
        "a read does not move the bookmark"
    );
}

#[test]
fn a_call_without_miniflare_headers_is_refused_in_every_bindings_format() {
    let served = Served::new(None);
    let r = send(served.addr(), "POST", ROUTE, &[], b"{}");
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(
        (body["code"].clone(), body["success"].clone()),
        (json!(40000), json!(false))
    );
    assert!(
        body["error"].as_str().unwrap().contains("MF-Binding"),
        "{body}"
    );
    assert_eq!(r.r2_error()["v4code"], 10029);
    // A kind tristore does not serve.
    let r = call(served.addr(), "GET", ROUTE, "KV", "http://kv/get", &[], b"");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("binding KV is not a Vectorize, D1 or R2"));
}

#[test]
fn an_unmapped_binding_gets_an_error_that_says_how_to_map_it() {
    let served = Served::new(None);
    let r = call(
        served.addr(),
        "GET",
        ROUTE,
        "OTHER",
        "http://vector-search/info",
        &[],
        b"",
    );
    assert_eq!((r.status, r.json()["code"].clone()), (404, json!(3000)));
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("?OTHER=<index name>"));
    let r = call(
        served.addr(),
        "POST",
        ROUTE,
        "OTHER",
        "http://d1/query",
        &[],
        br#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(r.json()["success"], false);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("d1_databases entry"));
    let r = call(
        served.addr(),
        "GET",
        ROUTE,
        "OTHER",
        "https://fake-host",
        &[(
            "MF-Header-cf-r2-request",
            r#"{"method":"head","object":"k"}"#.into(),
        )],
        b"",
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (404, json!(10006))
    );
    // Mapped by query parameter, to an index that does not exist.
    let r = call(
        served.addr(),
        "GET",
        &format!("{ROUTE}?OTHER=nope"),
        "OTHER",
        "http://vector-search/info",
        &[],
        b"",
    );
    assert_eq!((r.status, r.json()["code"].clone()), (404, json!(3000)));
    // A per-binding URL whose kind disagrees with the call.
    let r = call(
        served.addr(),
        "GET",
        &format!("{ROUTE}/d1/metacogna-index"),
        "VECTORIZE",
        "http://vector-search/info",
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
    // Metacogna's bindings are known without any configuration (this plan's index
    // happens to have the name of Metacogna's).
    let r = call(
        served.addr(),
        "GET",
        ROUTE,
        "VECTOR_INDEX",
        "http://vector-search/info",
        &[],
        b"",
    );
    assert_eq!((r.status, r.json()["dimensions"].clone()), (200, json!(3)));
    let r = call(
        served.addr(),
        "POST",
        ROUTE,
        "DB",
        "http://d1/query",
        &[],
        br#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(
        r.status, 200,
        "DB maps to the plan's database before Metacogna's"
    );
}

#[test]
fn unknown_operations_and_malformed_bodies_get_the_bindings_errors() {
    let served = Served::new(None);
    let a = served.addr();
    let r = vectorize(a, "listVectors", "{}");
    assert_eq!((r.status, r.json()["code"].clone()), (404, json!(40000)));
    let r = vectorize(a, "query", "{not json");
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(40026)));
    let r = vectorize(
        a,
        "upsert",
        "{\"id\":\"ok\",\"values\":[1,0,0]}\n{\"id\":\"bad\"",
    );
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(40026)));
    let r = d1(a, "dump", json!({}));
    assert_eq!(r.status, 404);
    let r = call(a, "POST", ROUTE, "DB", "http://d1/query", &[], b"[1, 2]");
    assert_eq!(r.json()["success"], false);
    let r = r2_read(a, json!({"method": "createBucket", "bucket": "x"}));
    assert_eq!(r.r2_error()["v4code"], 10029);
    let r = r2_read(a, json!({"method": "put", "object": "k"}));
    assert!(r.r2_error()["message"].as_str().unwrap().contains("PUT"));
    let r = call(
        a,
        "PUT",
        ROUTE,
        "BUCKET",
        "https://fake-host",
        &[("MF-Header-cf-r2-metadata-size", "500".into())],
        b"{\"method\":\"put\"}",
    );
    assert_eq!(r.status, 400, "a metadata size past the body");
    let r = call(
        a,
        "PUT",
        ROUTE,
        "BUCKET",
        "https://fake-host",
        &[("MF-Header-cf-r2-metadata-size", "abc".into())],
        b"{}",
    );
    assert_eq!(r.r2_error()["v4code"], 10029);
    // Nothing of the above was stored.
    assert_eq!(vectorize(a, "info", "").json()["vectorCount"], 0);
    let listed = served
        .store
        .r2()
        .bucket("files")
        .unwrap()
        .list(&Default::default())
        .unwrap();
    assert!(listed.objects.is_empty());
}

#[test]
fn bodies_over_the_limit_are_refused_and_change_nothing() {
    let served = Served::new(None);
    let a = served.addr();
    // R2: the store's object size limit (1 MiB here), as R2's EntityTooLarge.
    let r = r2_write(
        a,
        json!({"method": "put", "object": "big"}),
        &vec![7u8; (1 << 20) + 1],
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (400, json!(100100))
    );
    assert!(served
        .store
        .r2()
        .bucket("files")
        .unwrap()
        .head("big")
        .unwrap()
        .is_none());
    // Vectorize: the binding's 1,000 vectors per write.
    let lines: Vec<String> = (0..1001)
        .map(|i| format!("{{\"id\":\"v{i}\",\"values\":[1,0,0]}}"))
        .collect();
    let r = vectorize(a, "insert", &lines.join("\n"));
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(40005)));
    assert_eq!(vectorize(a, "info", "").json()["vectorCount"], 0);
    // JSON bodies past the 100 MiB transport limit.
    let huge = vec![b' '; tristore::server::REST_BODY_LIMIT + 1];
    let r = call(a, "POST", ROUTE, "DB", "http://d1/query", &[], &huge);
    assert_eq!((r.status, r.json()["success"].clone()), (413, json!(false)));
}

#[test]
fn failed_writes_apply_nothing() {
    let served = Served::new(None);
    let a = served.addr();
    // D1: a batch whose second statement fails rolls back the first.
    let r = d1(
        a,
        "query?resultsFormat=ROWS_AND_COLUMNS",
        json!([
            {"sql": "INSERT INTO users (name) VALUES (?)", "params": ["ann"]},
            {"sql": "INSERT INTO nope VALUES (1)", "params": []},
        ]),
    );
    assert_eq!(r.json()["error"], "no such table: nope: SQLITE_ERROR");
    let count = d1(
        a,
        "query?resultsFormat=ROWS_AND_COLUMNS",
        json!({"sql": "SELECT count(*) AS n FROM users"}),
    );
    assert_eq!(count.json()[0]["results"]["rows"], json!([[0]]));
    // Vectorize: one vector of the wrong size fails the whole upsert.
    let r = vectorize(
        a,
        "upsert",
        "{\"id\":\"a\",\"values\":[1,0,0]}\n{\"id\":\"b\",\"values\":[1,0]}",
    );
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(40012)));
    assert_eq!(
        vectorize(a, "getByIds", r#"{"ids":["a","b"]}"#).json(),
        json!([])
    );
    // R2: a wrong digest stores nothing.
    let r = r2_write(
        a,
        json!({"method": "put", "object": "k", "sha256": "00".repeat(32)}),
        b"hello",
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (400, json!(10037))
    );
    assert_eq!(
        r2_read(a, json!({"method": "head", "object": "k"})).status,
        404
    );
    // R2: completing with a part that was not uploaded stores nothing.
    let created = r2_write(
        a,
        json!({"method": "createMultipartUpload", "object": "mp"}),
        b"",
    );
    let upload_id = created.r2_framed().0["uploadId"]
        .as_str()
        .unwrap()
        .to_owned();
    let part = r2_write(
        a,
        json!({"method": "uploadPart", "object": "mp", "uploadId": upload_id, "partNumber": 1}),
        b"part one",
    );
    assert_eq!(part.status, 200);
    let r = r2_write(
        a,
        json!({"method": "completeMultipartUpload", "object": "mp", "uploadId": upload_id, "parts": [{"part": 1, "etag": "wrong"}]}),
        b"",
    );
    assert_eq!(r.r2_error()["v4code"], 10025);
    assert_eq!(
        r2_read(a, json!({"method": "head", "object": "mp"})).status,
        404
    );
}

#[test]
fn r2_conditions_ranges_and_multipart_follow_the_binding() {
    let served = Served::new(None);
    let a = served.addr();
    let put = r2_write(
        a,
        json!({"method": "put", "object": "doc", "md5": "XUFAKrxLKna5cZ2REBfFkg==", "storageClass": "InfrequentAccess",
        "httpFields": {"contentType": "text/plain", "cacheExpiry": "1800000000000"}}),
        b"hello",
    );
    let (meta, _) = put.r2_framed();
    assert_eq!(
        (
            meta["storageClass"].clone(),
            meta["httpFields"]["cacheExpiry"].clone()
        ),
        (json!("InfrequentAccess"), json!(1800000000000u64))
    );
    // A put that must not overwrite: 412 with 10031, which the binding returns as null.
    let r = r2_write(
        a,
        json!({"method": "put", "object": "doc", "onlyIf": {"etagDoesNotMatch": [{"type": "wildcard"}]}}),
        b"other",
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (412, json!(10031))
    );
    // A get whose condition fails: 412 with the object's metadata and no bytes.
    let r = r2_read(
        a,
        json!({"method": "get", "object": "doc", "onlyIf": {"etagMatches": [{"type": "strong", "value": "nope"}]}}),
    );
    let (meta, bytes) = r.r2_framed();
    assert_eq!(
        (r.status, meta["name"].clone(), bytes.len()),
        (412, json!("doc"), 0)
    );
    // Suffix ranges and the Range header form.
    let r = r2_read(
        a,
        json!({"method": "get", "object": "doc", "range": {"suffix": "3"}}),
    );
    assert_eq!(r.r2_framed().1, b"llo");
    let r = r2_read(
        a,
        json!({"method": "get", "object": "doc", "rangeHeader": "bytes=0-1"}),
    );
    assert_eq!(r.r2_framed().1, b"he");
    let r = r2_read(
        a,
        json!({"method": "get", "object": "doc", "range": {"offset": "9"}}),
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (416, json!(10039))
    );
    // Multipart: two parts (1 KiB minimum here), the S3-style etag.
    let created = r2_write(
        a,
        json!({"method": "createMultipartUpload", "object": "mp", "customFields": [{"k": "a", "v": "b"}]}),
        b"",
    );
    let upload_id = created.r2_framed().0["uploadId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut parts = Vec::new();
    for (n, fill) in [(1, b'a'), (2, b'b')] {
        let value = vec![fill; if n == 1 { 1024 } else { 10 }];
        let r = r2_write(
            a,
            json!({"method": "uploadPart", "object": "mp", "uploadId": upload_id, "partNumber": n}),
            &value,
        );
        parts.push(json!({"part": n, "etag": r.r2_framed().0["etag"]}));
    }
    let done = r2_write(
        a,
        json!({"method": "completeMultipartUpload", "object": "mp", "uploadId": upload_id, "parts": parts}),
        b"",
    );
    let (meta, _) = done.r2_framed();
    assert!(meta["etag"].as_str().unwrap().ends_with("-2"), "{meta}");
    assert_eq!(
        (meta["size"].clone(), meta["customFields"].clone()),
        (json!(1034), json!([{"k": "a", "v": "b"}]))
    );
    let r = r2_read(
        a,
        json!({"method": "get", "object": "mp", "range": {"offset": "1020", "length": "8"}}),
    );
    assert_eq!(r.r2_framed().1, b"aaaabbbb");
    // Abort of a finished upload changes nothing; delete of many.
    assert_eq!(
        r2_write(
            a,
            json!({"method": "abortMultipartUpload", "object": "mp", "uploadId": upload_id}),
            b""
        )
        .status,
        200
    );
    assert_eq!(
        r2_write(
            a,
            json!({"method": "delete", "objects": ["doc", "mp", "absent"]}),
            b""
        )
        .status,
        200
    );
    let listed = r2_read(
        a,
        json!({"method": "list", "include": [0, 1], "newRuntime": true}),
    );
    assert_eq!(listed.r2_framed().0["objects"], json!([]));
}

#[test]
fn r2_refuses_what_it_cannot_honour_and_stores_nothing() {
    let served = Served::new(None);
    let a = served.addr();
    // A malformed SSE-C key (workerd checks it too; a raw request may not).
    let r = r2_write(
        a,
        json!({"method": "put", "object": "k", "ssec": {"key": "abc"}}),
        b"v",
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (400, json!(10029))
    );
    assert!(r.r2_error()["message"].as_str().unwrap().contains("SSE-C"));
    let r = r2_write(
        a,
        json!({"method": "put", "object": "k", "md5": "XUFAKrxLKna5cZ2REBfFkg==", "sha1": "aa".repeat(20)}),
        b"hello",
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (400, json!(10029))
    );
    assert_eq!(
        r2_read(a, json!({"method": "head", "object": "k"})).status,
        404
    );
    // An empty Vectorize write is refused as the REST API refuses it.
    let r = vectorize(a, "insert", "");
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(40026)));
}

/// `ssecKey` through the binding: `R2SSECOptions` in, `R2SSECResponse` out, and the
/// object readable only with its key.
#[test]
fn r2_ssec_keys_encrypt_objects_and_uploads() {
    let served = Served::new(None);
    let a = served.addr();
    let (key, other) = ("ab".repeat(32), "cd".repeat(32));
    let key_md5 = hex::encode(<md5::Md5 as md5::Digest>::digest([0xab; 32]));
    let r = r2_write(
        a,
        json!({"method": "put", "object": "k", "ssec": {"key": key}}),
        b"secret value",
    );
    assert_eq!(r.status, 200);
    let put = r.r2_framed().0;
    assert_eq!(
        put["ssec"],
        json!({"algorithm": "AES256", "keyMd5": key_md5})
    );
    let got = r2_read(
        a,
        json!({"method": "get", "object": "k", "ssec": {"key": key}}),
    );
    assert_eq!(got.r2_framed().1, b"secret value");
    let r = r2_read(a, json!({"method": "get", "object": "k"}));
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (400, json!(10029))
    );
    let r = r2_read(
        a,
        json!({"method": "get", "object": "k", "ssec": {"key": other}}),
    );
    assert_eq!(
        (r.status, r.r2_error()["v4code"].clone()),
        (403, json!(10003))
    );
    // head takes no key and shows which one the object needs.
    let head = r2_read(a, json!({"method": "head", "object": "k"}));
    assert_eq!(head.r2_framed().0["ssec"]["keyMd5"], json!(key_md5));

    let created = r2_write(
        a,
        json!({"method": "createMultipartUpload", "object": "mp", "ssec": {"key": key}}),
        b"",
    );
    let created = created.r2_framed().0;
    assert_eq!(created["ssec"]["keyMd5"], json!(key_md5));
    let upload_id = created["uploadId"].as_str().unwrap().to_owned();
    let part = |ssec: Value| {
        let mut call =
            json!({"method": "uploadPart", "object": "mp", "uploadId": upload_id, "partNumber": 1});
        if !ssec.is_null() {
            call["ssec"] = ssec;
        }
        r2_write(a, call, b"part one")
    };
    assert_eq!(part(Value::Null).status, 400);
    let etag = part(json!({"key": key})).r2_framed().0["etag"].clone();
    let done = r2_write(
        a,
        json!({"method": "completeMultipartUpload", "object": "mp", "uploadId": upload_id, "parts": [{"part": 1, "etag": etag}]}),
        b"",
    );
    assert_eq!(done.r2_framed().0["ssec"]["keyMd5"], json!(key_md5));
    let got = r2_read(
        a,
        json!({"method": "get", "object": "mp", "ssec": {"key": key}}),
    );
    assert_eq!(got.r2_framed().1, b"part one");
}

#[test]
fn the_token_comes_in_the_query_when_one_is_set() {
    let served = Served::new(Some("s3cret"));
    let a = served.addr();
    let r = vectorize(a, "info", "");
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].as_str().unwrap().contains("?token="));
    let r = call(
        a,
        "GET",
        &format!("{ROUTE}?token=wrong"),
        "VECTORIZE",
        "http://vector-search/info",
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = call(
        a,
        "GET",
        &format!("{ROUTE}?token=s3cret"),
        "VECTORIZE",
        "http://vector-search/info",
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    let r = send(a, "POST", "/cdn-cgi/tristore/reset", &[], b"");
    assert_eq!(r.status, 403);
}

#[test]
fn reset_empties_every_resource_and_provisions_it_again() {
    let served = Served::new(None);
    let a = served.addr();
    d1(
        a,
        "execute?resultsFormat=NONE",
        json!({"sql": "INSERT INTO users (name) VALUES ('ann')"}),
    );
    d1(
        a,
        "execute?resultsFormat=NONE",
        json!([{"sql": "CREATE TABLE extra (x)"}]),
    );
    vectorize(
        a,
        "insert",
        "{\"id\":\"a\",\"values\":[1,0,0],\"metadata\":{\"g\":\"x\"}}",
    );
    r2_write(a, json!({"method": "put", "object": "k"}), b"v");
    r2_write(
        a,
        json!({"method": "createMultipartUpload", "object": "pending"}),
        b"",
    );
    let uuid = served.store.d1().get("app").unwrap().uuid;

    let r = send(a, "POST", "/cdn-cgi/tristore/reset", &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["result"]["databases"][0]["applied"],
        json!(["0001_users.sql"])
    );

    let tables = d1(
        a,
        "query?resultsFormat=ROWS_AND_COLUMNS",
        json!({"sql": "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"}),
    );
    assert_eq!(
        tables.json()[0]["results"]["rows"],
        json!([["d1_migrations"], ["sqlite_sequence"], ["users"]])
    );
    let count = d1(
        a,
        "query?resultsFormat=ROWS_AND_COLUMNS",
        json!({"sql": "SELECT count(*) FROM users"}),
    );
    assert_eq!(count.json()[0]["results"]["rows"], json!([[0]]));
    assert_eq!(
        served.store.d1().get("app").unwrap().uuid,
        uuid,
        "the database keeps its id"
    );
    assert_eq!(vectorize(a, "info", "").json()["vectorCount"], 0);
    // The metadata index is back: a filter on g finds what is written after the reset.
    vectorize(
        a,
        "insert",
        "{\"id\":\"b\",\"values\":[1,0,0],\"metadata\":{\"g\":\"y\"}}",
    );
    let found = vectorize(a, "query", r#"{"vector":[1,0,0],"filter":{"g":"y"}}"#);
    assert_eq!(found.json()["count"], 1);
    assert_eq!(
        r2_read(a, json!({"method": "head", "object": "k"})).status,
        404
    );
    let bucket = served.store.r2().bucket("files").unwrap();
    assert!(bucket.list_multipart_uploads().unwrap().is_empty());
}
