//! v4 REST JSON bodies through the real router: D1 query/raw, Vectorize query, insert,
//! upsert, get_by_ids, delete_by_ids and metadata-index creation. Any body gives a v4
//! envelope, never a panic or a 500.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tristore::server::router;
use tristore::vectorize::{IndexConfig, Metric};
use tristore::Store;

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    db: String,
    runtime: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let db = store.d1().create("fuzz").unwrap().uuid;
        store
            .d1()
            .database("fuzz")
            .unwrap()
            .exec("CREATE TABLE t (a, b)")
            .unwrap();
        store
            .vectorize()
            .create(
                "fuzz",
                "",
                IndexConfig {
                    dimensions: 3,
                    metric: Metric::Cosine,
                },
            )
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        World {
            _dir: dir,
            store,
            db,
            runtime,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let base = "/client/v4/accounts/a";
    let path = match which % 8 {
        0 => format!("{base}/d1/database/{}/query", w.db),
        1 => format!("{base}/d1/database/{}/raw", w.db),
        2 => format!("{base}/vectorize/v2/indexes/fuzz/query"),
        3 => format!("{base}/vectorize/v2/indexes/fuzz/insert"),
        4 => format!("{base}/vectorize/v2/indexes/fuzz/upsert"),
        5 => format!("{base}/vectorize/v2/indexes/fuzz/get_by_ids"),
        6 => format!("{base}/vectorize/v2/indexes/fuzz/delete_by_ids"),
        _ => format!("{base}/vectorize/v2/indexes/fuzz/metadata_index/create"),
    };
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header(
            "content-type",
            if which % 8 == 3 || which % 8 == 4 {
                "application/x-ndjson"
            } else {
                "application/json"
            },
        )
        .body(Body::from(body.to_vec()))
        .unwrap();
    let usage = tristore::usage::Usage::open(w.store.dir(), Default::default()).unwrap();
    // Metered, so that the meter reads the fuzzed requests too.
    let meter = Some(Arc::new(tristore::server::meter::Meter::new(Arc::new(
        usage,
    ))));
    let app = router(w.store.clone(), &Default::default(), meter);
    w.runtime.block_on(async move {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        assert!(status < 500, "a body made the server fail: {status}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let envelope: serde_json::Value = serde_json::from_slice(&bytes).expect("a v4 envelope");
        assert_eq!(envelope["success"].as_bool(), Some(status < 300));
    });
});
