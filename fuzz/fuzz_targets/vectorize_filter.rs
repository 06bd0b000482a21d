//! Filter JSON: any bytes are parsed or refused with a Vectorize error, and a filter that
//! parses runs against a small index with metadata indexes of every type.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tristore::vectorize::{
    IndexConfig, MetadataIndexType, Metric, QueryOptions, VectorizeIndex, VectorizeVector,
};
use tristore::Store;

fn index() -> &'static VectorizeIndex {
    static INDEX: OnceLock<(tempfile::TempDir, Store, VectorizeIndex)> = OnceLock::new();
    &INDEX
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            store.vectorize().create("f", "", IndexConfig { dimensions: 2, metric: Metric::Cosine }).unwrap();
            let idx = store.vectorize().index("f").unwrap();
            for (p, t) in [("s", MetadataIndexType::String), ("n", MetadataIndexType::Number), ("b", MetadataIndexType::Boolean), ("o.p", MetadataIndexType::String)] {
                idx.create_metadata_index(p, t).unwrap();
            }
            let vectors: Vec<VectorizeVector> = (0..50)
                .map(|i| {
                    VectorizeVector::new(format!("v{i}"), vec![1.0, i as f32])
                        .metadata(json!({"s": format!("s{}", i % 7), "n": i % 5, "b": i % 2 == 0, "o": {"p": ["x", "y"]}}))
                })
                .collect();
            idx.upsert(&vectors).unwrap();
            (dir, store, idx)
        })
        .2
}

fuzz_target!(|data: &[u8]| {
    let Ok(filter) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let options = QueryOptions {
        top_k: 10,
        filter: Some(filter),
        ..QueryOptions::default()
    };
    match index().query(&[1.0, 0.5], &options) {
        Ok(m) => assert!(m.count <= 10),
        Err(e) => assert!(e.to_string().starts_with("VECTOR_QUERY_ERROR (code = ")),
    }
});
