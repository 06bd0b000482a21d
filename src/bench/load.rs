//! Load through the emulator's HTTP surface: the engine of `tristore bench http` and of
//! the 64-client test (`tests/http_load.rs` includes this file). A load generator is a
//! client, so it lives with the bench commands rather than in the server, and uses only
//! tristore's public API. Each client is a thread with keep-alive connections and a
//! small HTTP/1.1 client of its own, so the numbers measure the server, not a client
//! library.
//!
//! A [`Target`] turns an [`Op`] into a request: [`Emulator`] for tristore (the v4 REST
//! API for D1 and Vectorize, presigned S3 URLs for R2), [`MiniflareWorker`] for the
//! Worker in `bench/miniflare_http.mjs`, which does the same D1 and R2 work through
//! Miniflare's bindings.
//!
//! A mixed run ([`mixed`]) checks what the server answered, not only the status: GET
//! bodies against the bytes stored, point queries against their row, vector queries'
//! matches against the stored vectors they name; and afterwards every acknowledged
//! write ([`verify`]), which the 64-client test repeats after reopening the store.

#![allow(dead_code)] // The bench command and the test each use part of it.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use md5::Digest;

use tristore::r2::presign::{presign_url, Credentials, PresignRequest};
use tristore::vectorize::dataset::Dataset;
use tristore::vectorize::{IndexConfig, Metric, VectorizeVector};
use tristore::Store;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `SELECT * FROM kv WHERE k = ?` on a 10,000-row table.
    D1PointQuery,
    /// `INSERT INTO kv (v) VALUES (?)`.
    D1Insert,
    /// A 768-dimension topK-10 cosine query.
    VectorQuery,
    /// An upsert of one 768-dimension vector under a new id.
    VectorUpsert,
    /// GET of a 4 KiB object.
    S3Get4K,
    /// PUT of a 4 KiB object under a new key.
    S3Put4K,
    /// GET of a 1 MiB object.
    S3Get1M,
    /// PUT of a 1 MiB object under a new key.
    S3Put1M,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 8] = [
        Op::D1PointQuery,
        Op::D1Insert,
        Op::VectorQuery,
        Op::VectorUpsert,
        Op::S3Get4K,
        Op::S3Put4K,
        Op::S3Get1M,
        Op::S3Put1M,
    ];

    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Op::D1PointQuery => "D1 point query",
            Op::D1Insert => "D1 single-row insert",
            Op::VectorQuery => "Vectorize query (768-d, topK 10)",
            Op::VectorUpsert => "Vectorize upsert (768-d, one vector)",
            Op::S3Get4K => "R2 GET 4 KiB",
            Op::S3Put4K => "R2 PUT 4 KiB",
            Op::S3Get1M => "R2 GET 1 MiB",
            Op::S3Put1M => "R2 PUT 1 MiB",
        }
    }
}

/// An HTTP request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where to.
    pub addr: SocketAddr,
    /// `GET`, `PUT`, `POST`.
    pub method: &'static str,
    /// Path and query.
    pub target: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: std::sync::Arc<[u8]>,
    /// What the request stores, to look for after the run once it is acknowledged.
    pub writes: Option<Stored>,
    /// What a successful answer must contain.
    pub expect: Expect,
    /// Speak HTTPS with this configuration (trusting the server's certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What a successful answer must contain besides a 2xx status.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Nothing more.
    Status,
    /// Exactly these bytes (an S3 GET).
    Bytes(Arc<[u8]>),
    /// The row `(k, 'row-k')` of the bench table, alone.
    Row(u64),
    /// Ten matches of query `n` of the bench set, best first, each one's score that of
    /// the query against the vector its id names (a prepared or an upserted one).
    Matches(usize),
}

/// A write a request makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// A `kv` row with this value, at this row id (from the answer's `last_row_id`).
    Row {
        /// The value inserted.
        value: String,
        /// Its row id.
        rowid: i64,
    },
    /// An object under this key with this body.
    Object {
        /// The key.
        key: String,
        /// The bytes PUT.
        body: Arc<[u8]>,
        /// MD5 hex of the body.
        etag: String,
    },
    /// A vector upserted in the namespace [`UPSERT_NAMESPACE`] with these values.
    Vector {
        /// Its id.
        id: String,
        /// Its values.
        values: Vec<f32>,
    },
}

pub use tristore::transfer::http::Response;

/// A keep-alive connection to one server: the crate's HTTP client, speaking TLS (to the
/// emulator's `localhost` certificate) when the request says so.
struct Connection {
    addr: SocketAddr,
    inner: Option<tristore::transfer::http::Connection>,
}

impl Connection {
    fn new(addr: SocketAddr) -> Connection {
        Connection { addr, inner: None }
    }

    fn send(&mut self, req: &Request) -> io::Result<Response> {
        let inner = self.inner.get_or_insert_with(|| {
            let tls = req.tls.clone().map(|config| {
                let name =
                    rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
                (config, name)
            });
            tristore::transfer::http::Connection::new(req.addr, req.addr.to_string(), tls)
        });
        let headers: Vec<(&str, &str)> =
            req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        inner.send(req.method, &req.target, &headers, &req.body)
    }
}

/// Sends one request on a connection of its own.
pub fn send_once(req: &Request) -> io::Result<Response> {
    Connection::new(req.addr).send(req)
}

/// Turns operations into requests.
pub trait Target: Sync {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// The request for `op` by `client` on its `seq`-th turn; `None` if not offered.
    fn request(&self, op: Op, client: usize, seq: u64) -> Option<Request>;
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed or were answered otherwise.
    pub errors: u64,
    /// The first few failures, for the report.
    pub first_errors: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of every successful request, sorted, in microseconds.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Runs `clients` threads for `duration`, each sending `ops[seq % ops.len()]` requests
/// back to back; `acknowledged` sees every successful (request, response).
pub fn run(
    target: &dyn Target,
    ops: &[Op],
    clients: usize,
    duration: Duration,
    acknowledged: &(dyn Fn(&Request, &Response) + Sync),
) -> Outcome {
    let start = Instant::now();
    let deadline = start + duration;
    let merged = Mutex::new(Outcome {
        ok: 0,
        errors: 0,
        first_errors: Vec::new(),
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    });
    std::thread::scope(|scope| {
        for client in 0..clients {
            let merged = &merged;
            scope.spawn(move || {
                let mut connections: Vec<Connection> = Vec::new();
                let (mut ok, mut errors, mut latencies, mut first) = (0, 0, Vec::new(), Vec::new());
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    let op = ops[(seq as usize + client) % ops.len()];
                    seq += 1;
                    let Some(req) = target.request(op, client, seq) else {
                        continue;
                    };
                    let i = match connections.iter().position(|c| c.addr == req.addr) {
                        Some(i) => i,
                        None => {
                            connections.push(Connection::new(req.addr));
                            connections.len() - 1
                        }
                    };
                    let t = Instant::now();
                    match connections[i].send(&req) {
                        Ok(resp) if (200..300).contains(&resp.status) => {
                            latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            ok += 1;
                            acknowledged(&req, &resp);
                        }
                        outcome => {
                            errors += 1;
                            if first.len() < 3 {
                                first.push(match outcome {
                                    Ok(r) => format!(
                                        "{} {} -> {} {}",
                                        req.method,
                                        req.target,
                                        r.status,
                                        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                                    ),
                                    Err(e) => format!("{} {} -> {e}", req.method, req.target),
                                });
                            }
                        }
                    }
                }
                let mut m = merged.lock().unwrap_or_else(|p| p.into_inner());
                m.ok += ok;
                m.errors += errors;
                m.latencies_us.extend(latencies);
                for e in first {
                    if m.first_errors.len() < 5 {
                        m.first_errors.push(e);
                    }
                }
            });
        }
    });
    let mut outcome = merged.into_inner().unwrap_or_else(|p| p.into_inner());
    outcome.elapsed = start.elapsed();
    outcome.latencies_us.sort_unstable();
    outcome
}

/// The bench names in tristore: database, index and bucket.
pub const BENCH: &str = "bench";
/// The namespace of the vectors a load upserts.
pub const UPSERT_NAMESPACE: &str = "load";
const ROWS: u64 = 10_000;
const GET_OBJECTS: u64 = 64;
const DIMS: usize = 768;
const TOP_K: usize = 10;

/// The values of the vector client `client` upserts on its `seq`-th turn: distinct
/// for each (client, seq), in [-1, 1).
pub fn upserted_values(client: usize, seq: u64) -> Vec<f32> {
    let mut x = (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_add(1);
    (0..DIMS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// tristore's emulator as a load target.
pub struct Emulator {
    /// What the report calls it.
    label: &'static str,
    rest: SocketAddr,
    s3: SocketAddr,
    credentials: Credentials,
    database: String,
    queries: Vec<std::sync::Arc<[u8]>>,
    /// The query vectors and the prepared vectors (`v{i}`), for checking matches.
    query_vectors: Vec<f32>,
    base: Vec<f32>,
    small: std::sync::Arc<[u8]>,
    large: std::sync::Arc<[u8]>,
    /// MD5 hex of `small` and of `large`, the ETags their PUTs must leave.
    etags: [String; 2],
    /// Set when the server speaks HTTPS.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A payload of `n` bytes that does not compress to nothing.
fn payload(n: usize) -> std::sync::Arc<[u8]> {
    (0..n)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

impl Emulator {
    /// The same target under another name in the report.
    pub fn labelled(self, label: &'static str) -> Emulator {
        Emulator { label, ..self }
    }

    /// The same target over HTTPS, trusting the certificate (PEM) in `cert`.
    pub fn over_tls(self, cert: &std::path::Path) -> io::Result<Emulator> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).map_err(io::Error::other)? {
            roots
                .add(c.map_err(io::Error::other)?)
                .map_err(io::Error::other)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Emulator {
            tls: Some(Arc::new(config)),
            ..self
        })
    }

    /// Provisions the bench database (10,000 rows), an index of `vectors` 768-d vectors
    /// and a bucket of 4 KiB and 1 MiB objects in `store`, served at `rest` and `s3`.
    pub fn prepare(
        store: &Store,
        rest: SocketAddr,
        s3: SocketAddr,
        credentials: Credentials,
        vectors: usize,
    ) -> tristore::Result<Emulator> {
        if store.d1().get(BENCH).is_err() {
            store.d1().create(BENCH)?;
        }
        let db = store.d1().database(BENCH)?;
        db.exec("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
        db.exec(&format!(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS}) \
             INSERT OR IGNORE INTO kv (k, v) SELECT x, 'row-' || x FROM s"
        ))?;
        let data = Dataset::synthetic(vectors, 768, 64, 100, 10, 7);
        if store.vectorize().index(BENCH).is_err() {
            store.vectorize().create(
                BENCH,
                "tristore bench http",
                IndexConfig {
                    dimensions: 768,
                    metric: Metric::Cosine,
                },
            )?;
            let index = store.vectorize().index(BENCH)?;
            let rows: Vec<VectorizeVector> = data
                .base
                .chunks(768)
                .enumerate()
                .map(|(i, v)| VectorizeVector::new(format!("v{i}"), v.to_vec()))
                .collect();
            for batch in rows.chunks(1000) {
                index.upsert(batch)?;
            }
        }
        let queries = data
            .queries
            .chunks(768)
            .map(|q| {
                serde_json::to_vec(&serde_json::json!({"vector": q, "topK": 10}))
                    .expect("JSON")
                    .into()
            })
            .collect();
        if store.r2().bucket(BENCH).is_err() {
            store.r2().create_bucket(BENCH)?;
        }
        let bucket = store.r2().bucket(BENCH)?;
        let (small, large) = (payload(4096), payload(1 << 20));
        for i in 0..GET_OBJECTS {
            bucket.put(&format!("get-4k/{i}"), &small[..], &Default::default())?;
            bucket.put(&format!("get-1m/{i}"), &large[..], &Default::default())?;
        }
        let etags = [&small, &large].map(|p| format!("{:x}", md5::Md5::digest(p)));
        Ok(Emulator {
            label: "tristore",
            rest,
            s3,
            credentials,
            database: store.d1().get(BENCH)?.uuid,
            queries,
            query_vectors: data.queries,
            base: data.base,
            small,
            large,
            etags,
            tls: None,
        })
    }

    fn presigned(&self, method: &'static str, key: &str) -> Request {
        let endpoint = format!("http://{}", self.s3);
        let url = presign_url(
            &PresignRequest {
                method,
                endpoint: &endpoint,
                bucket: BENCH,
                key,
                region: "auto",
                expires_in: 3600,
                now: SystemTime::now(),
            },
            &self.credentials,
        )
        .expect("valid presign inputs");
        Request {
            addr: self.s3,
            method,
            target: url[endpoint.len()..].to_owned(),
            headers: Vec::new(),
            body: std::sync::Arc::from(&[][..]),
            writes: None,
            expect: Expect::Status,
            tls: self.tls.clone(),
        }
    }

    fn d1(&self, sql: &str, param: serde_json::Value) -> Request {
        let body = serde_json::json!({"sql": sql, "params": [param]});
        Request {
            addr: self.rest,
            method: "POST",
            target: format!(
                "/client/v4/accounts/bench/d1/database/{}/query",
                self.database
            ),
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(&body).expect("JSON").into(),
            writes: None,
            expect: Expect::Status,
            tls: self.tls.clone(),
        }
    }

    fn vectorize(&self, action: &str, content_type: &str, body: Vec<u8>) -> Request {
        Request {
            addr: self.rest,
            method: "POST",
            target: format!("/client/v4/accounts/bench/vectorize/v2/indexes/{BENCH}/{action}"),
            headers: vec![("Content-Type", content_type.into())],
            body: body.into(),
            writes: None,
            expect: Expect::Status,
            tls: self.tls.clone(),
        }
    }

    /// The vector an id names: `v{i}` prepared, `load-{client}-{seq}` upserted.
    fn vector_of(&self, id: &str) -> Option<Vec<f32>> {
        if let Some(i) = id.strip_prefix('v').and_then(|i| i.parse::<usize>().ok()) {
            return self.base.get(i * DIMS..(i + 1) * DIMS).map(<[f32]>::to_vec);
        }
        let (client, seq) = id.strip_prefix("load-")?.split_once('-')?;
        Some(upserted_values(client.parse().ok()?, seq.parse().ok()?))
    }

    /// Checks a successful answer against what `req` expects; returns the write it
    /// acknowledged, if any, completed from the answer (a D1 insert's row id).
    pub fn check(&self, req: &Request, resp: &Response) -> Result<Option<Stored>, String> {
        let json = || -> Result<serde_json::Value, String> {
            serde_json::from_slice(&resp.body)
                .map_err(|e| format!("{} answered {e}: not JSON", req.target))
        };
        match &req.expect {
            Expect::Status => {}
            Expect::Bytes(want) => {
                if resp.body[..] != want[..] {
                    return Err(format!(
                        "GET {} returned {} bytes that differ from the {} stored",
                        req.target,
                        resp.body.len(),
                        want.len()
                    ));
                }
            }
            Expect::Row(k) => {
                let body = json()?;
                let rows = &body["result"][0]["results"];
                let want = serde_json::json!([{"k": k, "v": format!("row-{k}")}]);
                if *rows != want {
                    return Err(format!("point query of {k} returned {rows}, not {want}"));
                }
            }
            Expect::Matches(n) => {
                let body = json()?;
                let query = &self.query_vectors[n * DIMS..(n + 1) * DIMS];
                let matches = body["result"]["matches"]
                    .as_array()
                    .ok_or_else(|| format!("query answered without matches: {body}"))?;
                if matches.len() != TOP_K {
                    return Err(format!("{} matches, not {TOP_K}", matches.len()));
                }
                let mut last = f64::INFINITY;
                for m in matches {
                    let (Some(id), Some(score)) = (m["id"].as_str(), m["score"].as_f64()) else {
                        return Err(format!("a match without id or score: {m}"));
                    };
                    let stored = self
                        .vector_of(id)
                        .ok_or_else(|| format!("a match names no vector written: {id}"))?;
                    let want = cosine(query, &stored);
                    if (score - want).abs() > 1e-3 {
                        return Err(format!("match {id} scores {score}, its vector {want}"));
                    }
                    if score > last + 1e-6 {
                        return Err(format!("matches out of order at {id}: {matches:?}"));
                    }
                    last = score;
                }
            }
        }
        Ok(match &req.writes {
            Some(Stored::Row { value, .. }) => {
                let body = json()?;
                let rowid = body["result"][0]["meta"]["last_row_id"]
                    .as_i64()
                    .ok_or_else(|| format!("an insert answered without last_row_id: {body}"))?;
                Some(Stored::Row {
                    value: value.clone(),
                    rowid,
                })
            }
            other => other.clone(),
        })
    }

    /// Asks the server, for each acknowledged upsert, for the nearest vector to its
    /// values in [`UPSERT_NAMESPACE`] (an exact scan while that namespace holds at most
    /// 2,048 vectors): it must be that vector, values and all. Returns the problems.
    pub fn query_back(&self, acknowledged: &[Stored]) -> Vec<String> {
        let mut connection = Connection::new(self.rest);
        let mut problems = Vec::new();
        for write in acknowledged {
            let Stored::Vector { id, values } = write else {
                continue;
            };
            let body = serde_json::json!({
                "vector": values,
                "topK": 1,
                "namespace": UPSERT_NAMESPACE,
                "returnValues": true,
            });
            let req = self.vectorize("query", "application/json", body.to_string().into());
            let answer = match connection.send(&req) {
                Ok(r) if r.status == 200 => r,
                Ok(r) => {
                    problems.push(format!("query for {id}: status {}", r.status));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("query for {id}: {e}"));
                    continue;
                }
            };
            let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            let top = &json["result"]["matches"][0];
            let got: Option<Vec<f32>> = serde_json::from_value(top["values"].clone()).ok();
            if top["id"].as_str() != Some(id) || got.as_ref() != Some(values) {
                problems.push(format!("query for {id} found {}", top["id"]));
            }
        }
        problems
    }
}

impl Target for Emulator {
    fn name(&self) -> &str {
        self.label
    }

    fn request(&self, op: Op, client: usize, seq: u64) -> Option<Request> {
        let spread = (client as u64).wrapping_mul(7919).wrapping_add(seq);
        Some(match op {
            Op::D1PointQuery => {
                let k = spread % ROWS + 1;
                let mut req = self.d1("SELECT * FROM kv WHERE k = ?", k.into());
                req.expect = Expect::Row(k);
                req
            }
            Op::D1Insert => {
                let value = format!("load-{client}-{seq}");
                let mut req = self.d1("INSERT INTO kv (v) VALUES (?)", value.clone().into());
                req.writes = Some(Stored::Row { value, rowid: 0 });
                req
            }
            Op::VectorQuery => {
                let n = spread as usize % self.queries.len();
                let mut req = self.vectorize("query", "application/json", Vec::new());
                req.body = self.queries[n].clone();
                req.expect = Expect::Matches(n);
                req
            }
            Op::VectorUpsert => {
                let id = format!("load-{client}-{seq}");
                let values = upserted_values(client, seq);
                let line = serde_json::json!({
                    "id": id,
                    "values": values,
                    "namespace": UPSERT_NAMESPACE,
                    "metadata": {"client": client, "seq": seq},
                });
                let mut req = self.vectorize(
                    "upsert",
                    "application/x-ndjson",
                    format!("{line}\n").into_bytes(),
                );
                req.writes = Some(Stored::Vector { id, values });
                req
            }
            Op::S3Get4K => {
                let mut req = self.presigned("GET", &format!("get-4k/{}", spread % GET_OBJECTS));
                req.expect = Expect::Bytes(self.small.clone());
                req
            }
            Op::S3Get1M => {
                let mut req = self.presigned("GET", &format!("get-1m/{}", spread % GET_OBJECTS));
                req.expect = Expect::Bytes(self.large.clone());
                req
            }
            Op::S3Put4K | Op::S3Put1M => {
                let (size, data, etag) = match op {
                    Op::S3Put4K => ("4k", &self.small, &self.etags[0]),
                    _ => ("1m", &self.large, &self.etags[1]),
                };
                let key = format!("put-{size}/{client}/{seq}");
                let mut req = self.presigned("PUT", &key);
                req.body = data.clone();
                req.writes = Some(Stored::Object {
                    key,
                    body: data.clone(),
                    etag: etag.clone(),
                });
                req
            }
        })
    }
}

/// The Worker of `bench/miniflare_http.mjs`, serving the same D1 and R2 work through
/// Miniflare's bindings (it has no Vectorize).
pub struct MiniflareWorker {
    addr: SocketAddr,
    small: std::sync::Arc<[u8]>,
    large: std::sync::Arc<[u8]>,
}

impl MiniflareWorker {
    /// The Worker listening at `addr`, after asking it to provision the same data.
    pub fn prepare(addr: SocketAddr) -> io::Result<MiniflareWorker> {
        let mut c = Connection::new(addr);
        let setup = Request {
            addr,
            method: "POST",
            target: format!("/setup?rows={ROWS}&objects={GET_OBJECTS}"),
            headers: Vec::new(),
            body: std::sync::Arc::from(&[][..]),
            writes: None,
            expect: Expect::Status,
            tls: None,
        };
        let r = c.send(&setup)?;
        if r.status != 200 {
            return Err(io::Error::other(format!(
                "the Miniflare worker's /setup answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )));
        }
        Ok(MiniflareWorker {
            addr,
            small: payload(4096),
            large: payload(1 << 20),
        })
    }
}

impl Target for MiniflareWorker {
    fn name(&self) -> &str {
        "Miniflare"
    }

    fn request(&self, op: Op, client: usize, seq: u64) -> Option<Request> {
        let spread = (client as u64).wrapping_mul(7919).wrapping_add(seq);
        let (method, target, body) = match op {
            Op::D1PointQuery => ("GET", format!("/d1/point?k={}", spread % ROWS + 1), None),
            Op::D1Insert => ("POST", format!("/d1/insert?v=load-{client}-{seq}"), None),
            Op::VectorQuery | Op::VectorUpsert => return None,
            Op::S3Get4K => ("GET", format!("/r2/get-4k/{}", spread % GET_OBJECTS), None),
            Op::S3Get1M => ("GET", format!("/r2/get-1m/{}", spread % GET_OBJECTS), None),
            Op::S3Put4K => (
                "PUT",
                format!("/r2/put-4k/{client}/{seq}"),
                Some(&self.small),
            ),
            Op::S3Put1M => (
                "PUT",
                format!("/r2/put-1m/{client}/{seq}"),
                Some(&self.large),
            ),
        };
        Some(Request {
            addr: self.addr,
            method,
            target,
            headers: Vec::new(),
            body: body
                .cloned()
                .unwrap_or_else(|| std::sync::Arc::from(&[][..])),
            writes: None,
            expect: Expect::Status,
            tls: None,
        })
    }
}

/// What a mixed run acknowledged and what the store then held.
#[derive(Debug)]
pub struct MixedReport {
    /// The run.
    pub outcome: Outcome,
    /// Reads (GETs, point and vector queries) whose answer was compared with what is
    /// stored.
    pub reads_checked: usize,
    /// Answers that were 2xx but wrong (a few of them; `wrong_answers` counts all).
    pub first_wrong: Vec<String>,
    /// How many answers were wrong.
    pub wrong_answers: usize,
    /// Every write acknowledged (D1 inserts, S3 PUTs, vector upserts).
    pub acknowledged: Vec<Stored>,
    /// Acknowledged writes not found as written afterwards, read from the store directly.
    pub lost: Vec<String>,
}

impl MixedReport {
    /// How many acknowledged writes of each kind: (inserts, puts, upserts).
    pub fn writes(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Stored) -> bool| self.acknowledged.iter().filter(|w| f(w)).count();
        (
            count(|w| matches!(w, Stored::Row { .. })),
            count(|w| matches!(w, Stored::Object { .. })),
            count(|w| matches!(w, Stored::Vector { .. })),
        )
    }
}

/// Every operation interleaved across `clients`, each answer checked against what it
/// must contain, then every acknowledged write looked up in `store` directly.
pub fn mixed(
    store: &Store,
    target: &Emulator,
    clients: usize,
    duration: Duration,
) -> tristore::Result<MixedReport> {
    struct Seen {
        acknowledged: Vec<Stored>,
        reads: usize,
        wrong: usize,
        first_wrong: Vec<String>,
    }
    let seen = Mutex::new(Seen {
        acknowledged: Vec::new(),
        reads: 0,
        wrong: 0,
        first_wrong: Vec::new(),
    });
    let outcome = run(target, &Op::ALL, clients, duration, &|req, resp| {
        let checked = target.check(req, resp);
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.reads += usize::from(!matches!(req.expect, Expect::Status));
        match checked {
            Ok(Some(write)) => seen.acknowledged.push(write),
            Ok(None) => {}
            Err(e) => {
                seen.wrong += 1;
                if seen.first_wrong.len() < 5 {
                    seen.first_wrong.push(e);
                }
            }
        }
    });
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    let lost = verify(store, &seen.acknowledged)?;
    Ok(MixedReport {
        outcome,
        reads_checked: seen.reads,
        first_wrong: seen.first_wrong,
        wrong_answers: seen.wrong,
        acknowledged: seen.acknowledged,
        lost,
    })
}

/// Looks up every acknowledged write in `store` (the one served, or the same data
/// directory reopened): each row at its row id with its value and no other load row,
/// each object's bytes and ETag, each vector's values and namespace. Returns what is
/// missing or different.
pub fn verify(store: &Store, acknowledged: &[Stored]) -> tristore::Result<Vec<String>> {
    let mut lost = Vec::new();
    let db = store.d1().database(BENCH)?;
    let row = db.prepare("SELECT v FROM kv WHERE k = ?");
    let bucket = store.r2().bucket(BENCH)?;
    let index = store.vectorize().index(BENCH)?;
    let mut rows = HashSet::new();
    for write in acknowledged {
        match write {
            Stored::Row { value, rowid } => {
                rows.insert(value.as_str());
                let got = row.bind([*rowid]).first_column("v")?;
                if got.as_ref().and_then(|v| v.as_str()) != Some(value.as_str()) {
                    lost.push(format!(
                        "row {rowid}: {value:?} acknowledged, {got:?} stored"
                    ));
                }
            }
            Stored::Object { key, body, etag } => match bucket.get(key, &Default::default())? {
                Some(o) => {
                    let tag = o.object.etag.clone();
                    let same = o.bytes().is_ok_and(|b| b[..] == body[..]);
                    if !same || tag != *etag {
                        lost.push(format!("object {key}: other bytes (ETag {tag})"));
                    }
                }
                None => lost.push(format!("object {key}: missing")),
            },
            Stored::Vector { id, values } => {
                let got = index.get_by_ids(&[id])?;
                match got.first() {
                    Some(v)
                        if v.values == *values
                            && v.namespace.as_deref() == Some(UPSERT_NAMESPACE) => {}
                    Some(_) => lost.push(format!("vector {id}: other values or namespace")),
                    None => lost.push(format!("vector {id}: missing")),
                }
            }
        }
    }
    // No load row besides the acknowledged ones (with no failed request, none other
    // was sent), and none twice. Row ids only grow, so the run's rows are those from
    // its first acknowledged one on; earlier load rows (`tristore bench http` runs each
    // operation alone first) are not counted.
    let rowids = acknowledged.iter().filter_map(|w| match w {
        Stored::Row { rowid, .. } => Some(*rowid),
        _ => None,
    });
    if let Some(first) = rowids.min() {
        let stored = db
            .prepare("SELECT count(*) AS n FROM kv WHERE k >= ? AND v LIKE 'load-%'")
            .bind([first])
            .first_column("n")?
            .and_then(|n| n.as_u64())
            .unwrap_or(0) as usize;
        if stored != rows.len() {
            lost.push(format!(
                "{stored} load rows stored from row {first} on, {} acknowledged",
                rows.len()
            ));
        }
    }
    Ok(lost)
}
