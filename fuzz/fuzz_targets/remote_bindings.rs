//! Binding calls through the real router's remote-bindings route: fuzzed Vectorize,
//! D1 and R2 operations, bodies, R2 request JSON (header and body-framed) and metadata
//! sizes. Whatever arrives, the answer is the binding's own error shape (Vectorize
//! `{code, error}`, D1 `{success: false, error}`, R2 `cf-r2-error`), never a panic or a
//! 500.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tristore::provision::{Plan, PlannedBucket, PlannedDatabase, PlannedIndex};
use tristore::server::router;
use tristore::vectorize::{IndexConfig, MetadataIndex, MetadataIndexType, Metric};
use tristore::Store;

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    plan: Plan,
    runtime: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let plan = Plan {
            databases: vec![PlannedDatabase {
                binding: "DB".into(),
                name: "fuzz".into(),
                migrations: Vec::new(),
                migrations_table: "d1_migrations".into(),
            }],
            indexes: vec![PlannedIndex {
                binding: "VEC".into(),
                name: "fuzz".into(),
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
                name: "fuzz".into(),
            }],
        };
        plan.apply(&store).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        World {
            _dir: dir,
            store,
            plan,
            runtime,
        }
    })
}

const VECTORIZE_OPS: [&str; 7] = [
    "info",
    "query",
    "insert",
    "upsert",
    "getByIds",
    "deleteByIds",
    "x",
];
const D1_OPS: [&str; 5] = [
    "query?resultsFormat=ROWS_AND_COLUMNS",
    "query?resultsFormat=ARRAY_OF_OBJECTS",
    "execute?resultsFormat=NONE",
    "execute",
    "dump",
];

fuzz_target!(|data: &[u8]| {
    let w = world();
    let [which, extra, rest @ ..] = data else {
        return;
    };
    let (kind, builder) = match which % 4 {
        0 => {
            let op = VECTORIZE_OPS[*extra as usize % VECTORIZE_OPS.len()];
            let method = if op == "info" { "GET" } else { "POST" };
            let b = Request::builder()
                .method(method)
                .header("mf-binding", "VEC")
                .header("mf-url", format!("http://vector-search/{op}"));
            ("vectorize", b)
        }
        1 => {
            let op = D1_OPS[*extra as usize % D1_OPS.len()];
            let b = Request::builder()
                .method("POST")
                .header("mf-binding", "DB")
                .header("mf-url", format!("http://d1/{op}"));
            ("d1", b)
        }
        2 => {
            // A read: the request JSON in a header (when the bytes can be a header).
            let Ok(value) = axum::http::HeaderValue::from_bytes(rest) else {
                return;
            };
            let b = Request::builder()
                .method("GET")
                .header("mf-binding", "BUCKET")
                .header("mf-url", "https://fake-host")
                .header("mf-header-cf-r2-request", value);
            ("r2", b)
        }
        _ => {
            // A write: the request JSON is the first `extra`-derived bytes of the body.
            let size = (*extra as usize).min(rest.len() + 2);
            let b = Request::builder()
                .method("PUT")
                .header("mf-binding", "BUCKET")
                .header("mf-url", "https://fake-host")
                .header("mf-header-cf-r2-metadata-size", size.to_string())
                .header("mf-header-content-length", rest.len().to_string());
            ("r2", b)
        }
    };
    let body = if which % 4 == 2 {
        Vec::new()
    } else {
        rest.to_vec()
    };
    let request = builder
        .uri("/cdn-cgi/tristore/remote-bindings")
        .body(Body::from(body))
        .unwrap();
    let options = tristore::server::ServerOptions {
        plan: w.plan.clone(),
        ..Default::default()
    };
    let usage = tristore::usage::Usage::open(w.store.dir(), Default::default()).unwrap();
    // Metered, so that the meter reads the fuzzed requests too.
    let meter = Some(Arc::new(tristore::server::meter::Meter::new(Arc::new(
        usage,
    ))));
    let app = router(w.store.clone(), &options, meter);
    w.runtime.block_on(async move {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        assert!(
            status < 500,
            "a binding call made the server fail: {status}"
        );
        let r2_error = response.headers().get("cf-r2-error").cloned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        if status < 300 {
            return;
        }
        match kind {
            "vectorize" => {
                let e: serde_json::Value = serde_json::from_slice(&bytes).expect("{code, error}");
                assert!(e["code"].is_u64() && e["error"].is_string(), "{e}");
            }
            "d1" => {
                let e: serde_json::Value =
                    serde_json::from_slice(&bytes).expect("{success, error}");
                assert!(e["success"] == false && e["error"].is_string(), "{e}");
            }
            _ => {
                let header = r2_error.expect("a cf-r2-error header");
                let e: serde_json::Value = serde_json::from_slice(header.as_bytes()).unwrap();
                assert!(e["v4code"].is_u64() && e["message"].is_string(), "{e}");
            }
        }
    });
});
