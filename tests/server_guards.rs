//! What protects a developer's local server: web pages cannot use the REST port (no
//! cross-site requests, no DNS rebinding, no `text/plain` bodies), every REST error has
//! the v4 envelope, slow or idle clients lose their connection, a flood of connections
//! on one port leaves the other alone, and stalled uploads cannot starve D1 or S3.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tristore::r2::presign::{presign_url, Credentials, PresignRequest};
use tristore::server::guard::BrowserPolicy;
use tristore::server::listen::ConnectionLimits;
use tristore::server::{start, RunningServer, ServerOptions};
use tristore::{defaults, Store};

struct Served {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    server: RunningServer,
}

fn serve(options: ServerOptions) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    defaults::provision_metacogna(&store).unwrap();
    let server = start(
        store.clone(),
        ServerOptions {
            port: 0,
            s3_port: 0,
            ..options
        },
    )
    .unwrap();
    Served {
        _dir: dir,
        store,
        server,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Value,
}

/// One request on its own connection; `headers` are sent as given (a `Host` among them
/// replaces the default one).
fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    conn.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

const QUERY: &str = "/client/v4/accounts/a/d1/database/metacogna/query";

fn tables(store: &Store) -> Vec<String> {
    let db = store.d1().database("metacogna").unwrap();
    db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .raw(false)
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn web_pages_cannot_run_sql_on_the_local_server() {
    let s = serve(ServerOptions::default());
    let a = s.server.addr;
    let sql = r#"{"sql":"CREATE TABLE pwned (x)"}"#;
    // A cross-site "simple" POST from a page: foreign Origin, text/plain, no token.
    let r = send(
        a,
        "POST",
        QUERY,
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        sql,
    );
    assert_eq!(
        (r.status, r.body["success"].clone()),
        (403, Value::Bool(false)),
        "{r:?}"
    );
    // A form post carries an Origin too.
    let r = send(
        a,
        "POST",
        QUERY,
        &[
            ("Origin", "null"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        sql,
    );
    assert_eq!(r.status, 403);
    // Browsers that send Sec-Fetch-Site but no Origin.
    let r = send(a, "POST", QUERY, &[("Sec-Fetch-Site", "cross-site")], sql);
    assert_eq!(r.status, 403);
    // text/plain from anything: no API client sends it, a page can.
    let r = send(a, "POST", QUERY, &[("Content-Type", "text/plain")], sql);
    assert_eq!(r.status, 415, "{r:?}");
    // DNS rebinding: the page's own name in Host.
    let r = send(
        a,
        "GET",
        "/client/v4/accounts/a/d1/database",
        &[("Host", "evil.example:8790")],
        "",
    );
    assert_eq!(r.status, 403);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-host"),
        "{r:?}"
    );
    assert!(!tables(&s.store).contains(&"pwned".to_owned()));
    // What API clients send still works: curl's -d (form type, no Origin), JSON,
    // loopback names, the server's own origin.
    for (host, content_type) in [
        ("localhost:1", "application/x-www-form-urlencoded"),
        ("127.0.0.1", "application/json"),
        ("[::1]:8790", "application/json"),
    ] {
        let r = send(
            a,
            "POST",
            QUERY,
            &[("Host", host), ("Content-Type", content_type)],
            r#"{"sql":"SELECT 1"}"#,
        );
        assert_eq!(r.status, 200, "{host} {content_type}: {r:?}");
    }
    let own = format!("http://{a}");
    let r = send(
        a,
        "POST",
        QUERY,
        &[("Origin", &own), ("Content-Type", "application/json")],
        r#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(r.status, 200);
    // The reset route and the bindings route are on the same port, behind the same guard.
    let r = send(
        a,
        "POST",
        "/cdn-cgi/tristore/reset",
        &[("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(r.status, 403);
    s.server.shutdown().unwrap();
}

#[test]
fn named_origins_and_hosts_are_served_with_cors() {
    let s = serve(ServerOptions {
        browsers: BrowserPolicy {
            allowed_hosts: vec!["dev.example".into()],
            cors_origins: vec!["https://app.example".into()],
            ..Default::default()
        },
        ..Default::default()
    });
    let a = s.server.addr;
    let r = send(
        a,
        "OPTIONS",
        QUERY,
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        "",
    );
    assert_eq!(r.status, 204);
    assert!(
        r.head
            .contains("access-control-allow-origin: https://app.example"),
        "{}",
        r.head
    );
    assert!(
        r.head
            .contains("access-control-allow-headers: content-type"),
        "{}",
        r.head
    );
    let r = send(
        a,
        "POST",
        QUERY,
        &[
            ("Origin", "https://app.example"),
            ("Content-Type", "application/json"),
        ],
        r#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(r.status, 200);
    assert!(r
        .head
        .contains("access-control-allow-origin: https://app.example"));
    let r = send(
        a,
        "OPTIONS",
        QUERY,
        &[
            ("Origin", "https://other.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(r.status, 403);
    let r = send(
        a,
        "GET",
        "/client/v4/accounts/a/d1/database",
        &[("Host", "dev.example:8790")],
        "",
    );
    assert_eq!(r.status, 200);
    s.server.shutdown().unwrap();
    // With a token, a page cannot authenticate, so any Host is answered.
    let s = serve(ServerOptions {
        api_token: Some("t".into()),
        ..Default::default()
    });
    let r = send(
        s.server.addr,
        "GET",
        "/client/v4/accounts/a/d1/database",
        &[("Host", "tristore.lan"), ("Authorization", "Bearer t")],
        "",
    );
    assert_eq!(r.status, 200);
    s.server.shutdown().unwrap();
}

#[test]
fn every_rest_error_comes_in_the_envelope() {
    let s = serve(ServerOptions::default());
    let a = s.server.addr;
    for path in [
        "/client/v4/accounts/a/d1/database?per_page=-1",
        "/client/v4/accounts/a/d1/database?page=99999999999999999999",
        "/client/v4/accounts/a/vectorize/v2/indexes/metacogna-index/list?count=1000000000000000000000000000000",
    ] {
        let r = send(a, "GET", path, &[], "");
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.body["success"], false, "{path}: {r:?}");
        assert!(r.body["errors"][0]["code"].is_u64(), "{path}: {r:?}");
    }
    // A body over the 100 MiB limit (the server may answer before it has all of it).
    let mut conn = TcpStream::connect(a).unwrap();
    let head = format!("POST {QUERY} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 101 << 20);
    conn.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..101 {
        if conn.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut raw = String::new();
    let _ = conn.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("\"success\":false"), "{raw}");
    s.server.shutdown().unwrap();
}

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 16,
    }
}

/// Whether the server closed `conn` within `within`.
fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_and_capped_per_port() {
    let s = serve(ServerOptions {
        limits: limits(),
        ..Default::default()
    });
    for addr in [s.server.addr, s.server.s3_addr] {
        // Headers that never end.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        assert!(
            closed_within(&mut slow, Duration::from_secs(6)),
            "{addr}: slow headers kept"
        );
        // A connection that never sends a byte.
        let mut silent = TcpStream::connect(addr).unwrap();
        assert!(
            closed_within(&mut silent, Duration::from_secs(6)),
            "{addr}: silent kept"
        );
        // Idle after a complete request (keep-alive).
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(
            format!("GET /client/v4/accounts/a/d1/database HTTP/1.1\r\nHost: {addr}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert!(
            closed_within(&mut idle, Duration::from_secs(8)),
            "{addr}: idle kept"
        );
    }
    // Filling the REST port's connections leaves S3 answering.
    let flood: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(s.server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = send(s.server.s3_addr, "GET", "/", &[], "");
    assert_eq!(r.status, 403, "S3 answers (anonymous: AccessDenied)");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(flood);
    s.server.shutdown().unwrap();
}

#[test]
fn stalled_uploads_do_not_starve_the_other_apis() {
    let s = serve(ServerOptions {
        body_timeout: Duration::from_secs(10),
        blocking_threads: 128,
        ..Default::default()
    });
    let creds = Credentials::new(
        tristore::server::s3::DEFAULT_ACCESS_KEY_ID,
        tristore::server::s3::DEFAULT_SECRET_ACCESS_KEY,
    );
    let endpoint = format!("http://{}", s.server.s3_addr);
    let url = presign_url(
        &PresignRequest {
            method: "PUT",
            endpoint: &endpoint,
            bucket: "metacogna-vault",
            key: "stalled.bin",
            region: "auto",
            expires_in: 600,
            now: SystemTime::now(),
        },
        &creds,
    )
    .unwrap();
    let path = &url[endpoint.len()..];
    // More stalled uploads than the server has blocking threads (128 here).
    let stalled: Vec<TcpStream> = (0..150)
        .map(|_| {
            let mut c = TcpStream::connect(s.server.s3_addr).unwrap();
            c.write_all(
                format!(
                    "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\nabc",
                    s.server.s3_addr
                )
                .as_bytes(),
            )
            .unwrap();
            c
        })
        .collect();
    // Until every upload has reached the store (and, before the bound, taken a thread).
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        let started = Instant::now();
        let r = send(
            s.server.addr,
            "POST",
            QUERY,
            &[("Content-Type", "application/json")],
            r#"{"sql":"SELECT count(*) FROM users"}"#,
        );
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "D1 took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let list = send(
            s.server.addr,
            "GET",
            "/client/v4/accounts/a/vectorize/v2/indexes",
            &[],
            "",
        );
        assert_eq!(list.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "Vectorize took {:?}",
            started.elapsed()
        );
    }
    // The stalled bodies fail with S3's RequestTimeout, and nothing is stored.
    let mut first = stalled.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = first.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.contains("RequestTimeout"), "{answer}");
    let bucket = s.store.r2().bucket("metacogna-vault").unwrap();
    assert!(bucket.head("stalled.bin").unwrap().is_none());
    s.server.shutdown().unwrap();
}
