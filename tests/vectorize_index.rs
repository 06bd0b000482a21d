//! The Vectorize index through its public API: writes, reads, queries, every filter
//! operator, metadata indexes, errors in Vectorize's format, and reopening.

use serde_json::json;
use tristore::vectorize::error::code;
use tristore::vectorize::{
    IndexConfig, MetadataIndexType, Metric, Op, QueryOptions, ReturnMetadata, VectorizeIndex,
    VectorizeVector,
};
use tristore::Store;

fn index(dir: &std::path::Path, dims: usize, metric: Metric) -> (Store, VectorizeIndex) {
    let store = Store::open(dir).unwrap();
    store
        .vectorize()
        .create(
            "idx",
            "",
            IndexConfig {
                dimensions: dims,
                metric,
            },
        )
        .unwrap();
    let idx = store.vectorize().index("idx").unwrap();
    (store, idx)
}

fn v(id: &str, values: &[f32]) -> VectorizeVector {
    VectorizeVector::new(id, values.to_vec())
}

fn ids(m: &tristore::vectorize::VectorizeMatches) -> Vec<&str> {
    m.matches.iter().map(|m| m.id.as_str()).collect()
}

fn opts(top_k: usize) -> QueryOptions {
    QueryOptions {
        top_k,
        ..QueryOptions::default()
    }
}

#[test]
fn insert_keeps_the_first_write_upsert_replaces_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 3, Metric::Cosine);
    let m1 = idx
        .insert(&[
            v("a", &[1.0, 0.0, 0.0])
                .namespace("n1")
                .metadata(json!({"k": 1})),
            v("b", &[0.0, 1.0, 0.0]),
            v("a", &[9.0, 9.0, 9.0]),
        ])
        .unwrap();
    let info = idx.describe();
    assert_eq!(info.vector_count, 2);
    assert_eq!(info.dimensions, 3);
    assert_eq!(
        info.processed_up_to_mutation.as_deref(),
        Some(m1.mutation_id.as_str())
    );
    assert!(info.processed_up_to_datetime.unwrap().ends_with('Z'));

    // insert on an existing id: no error, no change.
    idx.insert(&[v("a", &[0.0, 0.0, 1.0])]).unwrap();
    let a = &idx.get_by_ids(&["a"]).unwrap()[0];
    assert_eq!(a.values, vec![1.0, 0.0, 0.0]);
    assert_eq!(a.namespace.as_deref(), Some("n1"));

    // upsert replaces values, metadata and namespace; the last duplicate wins.
    idx.upsert(&[
        v("a", &[0.0, 0.0, 2.0]).metadata(json!({"z": true})),
        v("a", &[0.0, 0.0, 1.0]),
    ])
    .unwrap();
    let a = &idx.get_by_ids(&["a", "missing", "a"]).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (
            a[0].values.as_slice(),
            a[0].namespace.as_ref(),
            a[0].metadata.as_ref()
        ),
        (&[0.0, 0.0, 1.0][..], None, None)
    );

    idx.delete_by_ids(&["b", "nope"]).unwrap();
    assert_eq!(idx.describe().vector_count, 1);
    assert!(idx.get_by_ids(&["b"]).unwrap().is_empty());
}

/// `getByIds` answers in the order of the request, each id once, missing ids left out,
/// whatever the insertion order (and the store's id order) is.
#[test]
fn get_by_ids_answers_in_request_order_each_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 2, Metric::Euclidean);
    idx.insert(&[
        v("m", &[1.0, 0.0]),
        v("b", &[2.0, 0.0]),
        v("z", &[3.0, 0.0]),
        v("a", &[4.0, 0.0]),
    ])
    .unwrap();
    let got = idx
        .get_by_ids(&["z", "a", "missing", "m", "z", "b", "a"])
        .unwrap();
    let got: Vec<(&str, f32)> = got.iter().map(|v| (v.id.as_str(), v.values[0])).collect();
    assert_eq!(got, [("z", 3.0), ("a", 4.0), ("m", 1.0), ("b", 2.0)]);
    let reversed = idx.get_by_ids(&["b", "m"]).unwrap();
    let reversed: Vec<&str> = reversed.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(reversed, ["b", "m"]);
}

#[test]
fn values_come_back_as_float32_widened() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 2, Metric::Euclidean);
    let parsed: VectorizeVector =
        serde_json::from_value(json!({"id": "x", "values": [58.8, 1]})).unwrap();
    idx.upsert(&[parsed]).unwrap();
    let got = serde_json::to_value(idx.get_by_ids(&["x"]).unwrap()).unwrap();
    assert_eq!(
        got,
        json!([{"id": "x", "values": [58.79999923706055, 1.0]}])
    );
}

#[test]
fn scores_follow_each_metrics_convention() {
    let dir = tempfile::tempdir().unwrap();
    for (n, metric) in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct]
        .into_iter()
        .enumerate()
    {
        let store = Store::open(dir.path()).unwrap();
        let name = format!("m{n}");
        store
            .vectorize()
            .create(
                &name,
                "",
                IndexConfig {
                    dimensions: 2,
                    metric,
                },
            )
            .unwrap();
        let idx = store.vectorize().index(&name).unwrap();
        idx.upsert(&[v("near", &[3.0, 4.0]), v("far", &[-3.0, 1.0])])
            .unwrap();
        let m = idx.query(&[3.0, 4.0], &opts(2)).unwrap();
        let scores: Vec<f64> = m.matches.iter().map(|m| m.score).collect();
        match metric {
            // cosine similarity: identical direction is 1, best first (descending).
            Metric::Cosine => {
                assert_eq!(ids(&m), ["near", "far"]);
                assert!((scores[0] - 1.0).abs() < 1e-6);
                assert!((scores[1] - (-9.0 + 4.0) / (5.0 * 10f64.sqrt())).abs() < 1e-6);
            }
            // Euclidean distance (not squared): 0, then sqrt(36 + 9).
            Metric::Euclidean => {
                assert_eq!(ids(&m), ["near", "far"]);
                assert!(scores[0].abs() < 1e-6 && (scores[1] - 45f64.sqrt()).abs() < 1e-5);
            }
            // Negated dot product: -25 is better than -(-9 + 4) = 5.
            Metric::DotProduct => {
                assert_eq!(ids(&m), ["near", "far"]);
                assert_eq!(scores, [-25.0, 5.0]);
            }
        }
        assert_eq!(m.count, 2);
    }
}

#[test]
fn errors_use_vectorize_codes_and_texts() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 3, Metric::Cosine);
    let e = idx.insert(&[v("x", &[1.0; 4])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "VECTOR_INSERT_ERROR (code = 40012): invalid vector for id=\"x\", expected 3 dimensions, and got 4 dimensions"
    );
    assert_eq!(idx.upsert(&[v("x", &[1.0; 2])]).unwrap_err().op, Op::Upsert);
    let e = idx.query(&[], &opts(5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "VECTOR_QUERY_ERROR (code = 40006): invalid query vector, expected 3 dimensions, and got 0 dimensions"
    );
    let heavy = QueryOptions {
        top_k: 51,
        return_values: true,
        ..QueryOptions::default()
    };
    let e = idx.query(&[1.0; 3], &heavy).unwrap_err();
    assert!(
        e.to_string().starts_with("VECTOR_QUERY_ERROR (code = 40025): with returnValues=true or returnMetadata=all, max top K is 50, but got 51"),
        "{e}"
    );
    // "indexed" does not lower the cap; 100 is the plain cap.
    let indexed = QueryOptions {
        top_k: 100,
        return_metadata: ReturnMetadata::Indexed,
        ..QueryOptions::default()
    };
    assert!(idx.query(&[1.0; 3], &indexed).is_ok());
    assert_eq!(
        idx.query(&[1.0; 3], &opts(101)).unwrap_err().code,
        code::TOP_K
    );
    // returnMetadata: false is refused like the service refuses it; true means "all".
    let e = serde_json::from_value::<QueryOptions>(json!({"returnMetadata": false})).unwrap_err();
    assert!(e.to_string().contains("returnMetadata: expected value"));
    let o: QueryOptions = serde_json::from_value(json!({"returnMetadata": true})).unwrap();
    assert_eq!((o.return_metadata, o.top_k), (ReturnMetadata::All, 5));

    let long_id = "i".repeat(65);
    assert_eq!(
        idx.insert(&[v(&long_id, &[1.0; 3])]).unwrap_err().code,
        code::INVALID_ID
    );
    let ns = "n".repeat(65);
    assert_eq!(
        idx.insert(&[v("x", &[1.0; 3]).namespace(ns)])
            .unwrap_err()
            .code,
        code::INVALID_NAMESPACE
    );
    for bad in [
        json!({"a.b": 1}),
        json!({"$a": 1}),
        json!({"o": {"q\"": 1}}),
        json!({"big": "x".repeat(10 * 1024)}),
    ] {
        let e = idx
            .insert(&[v("x", &[1.0; 3]).metadata(bad.clone())])
            .unwrap_err();
        assert_eq!(e.code, code::INVALID_METADATA, "{bad}");
    }
    let batch: Vec<VectorizeVector> = (0..1001).map(|i| v(&format!("v{i}"), &[1.0; 3])).collect();
    assert_eq!(idx.upsert(&batch).unwrap_err().code, code::BATCH_TOO_LARGE);
    assert!(idx.write_vectors(Op::Upsert, &batch, 5000).is_ok());
    let e = idx.query_by_id("nope", &opts(1)).unwrap_err();
    assert_eq!(e.code, code::VECTOR_NOT_FOUND);
    // Nothing invalid was stored.
    assert_eq!(idx.describe().vector_count, 1001);
}

/// A 2-dim index where every vector sits on the unit circle and metadata varies.
fn catalogue(dir: &std::path::Path) -> (Store, VectorizeIndex) {
    let (s, idx) = index(dir, 2, Metric::Cosine);
    idx.create_metadata_index("genre", MetadataIndexType::String)
        .unwrap();
    idx.create_metadata_index("year", MetadataIndexType::Number)
        .unwrap();
    idx.create_metadata_index("free", MetadataIndexType::Boolean)
        .unwrap();
    idx.create_metadata_index("a.b", MetadataIndexType::String)
        .unwrap();
    let items = [
        (
            "m1",
            json!({"genre": "drama", "year": 1999, "free": true, "a": {"b": "x"}}),
        ),
        (
            "m2",
            json!({"genre": "comedy", "year": 2005, "free": false}),
        ),
        (
            "m3",
            json!({"genre": "documentary", "year": 2010.5, "tags": ["t"]}),
        ),
        ("m4", json!({"genre": ["drama", "news"], "year": "2020"})),
        ("m5", json!({"year": 2024, "free": true, "a": {"b": "y"}})),
    ];
    let vectors: Vec<VectorizeVector> = items
        .iter()
        .enumerate()
        .map(|(i, (id, m))| {
            let t = i as f32 * 0.3;
            v(id, &[t.cos(), t.sin()]).metadata(m.clone())
        })
        .collect();
    idx.upsert(&vectors).unwrap();
    (s, idx)
}

fn filtered(idx: &VectorizeIndex, filter: serde_json::Value) -> Vec<String> {
    let o = QueryOptions {
        top_k: 10,
        filter: Some(filter),
        ..QueryOptions::default()
    };
    let mut got: Vec<String> = idx
        .query(&[1.0, 0.0], &o)
        .unwrap()
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect();
    got.sort();
    got
}

#[test]
fn every_filter_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = catalogue(dir.path());
    let cases = [
        (json!({"genre": "drama"}), vec!["m1", "m4"]),
        (json!({"genre": {"$eq": "comedy"}}), vec!["m2"]),
        (json!({"genre": {"$ne": "drama"}}), vec!["m2", "m3", "m5"]),
        (
            json!({"genre": {"$in": ["comedy", "news"]}}),
            vec!["m2", "m4"],
        ),
        (
            json!({"genre": {"$nin": ["comedy", "news"]}}),
            vec!["m1", "m3", "m5"],
        ),
        (json!({"genre": {"$eq": null}}), vec!["m5"]),
        (
            json!({"genre": {"$gte": "d", "$lt": "e"}}),
            vec!["m1", "m3", "m4"],
        ),
        (json!({"genre": {"$gt": "drama"}}), vec!["m4"]),
        (json!({"year": {"$lt": 2005}}), vec!["m1"]),
        (json!({"year": {"$lte": 2005}}), vec!["m1", "m2"]),
        (
            json!({"year": {"$gt": 2005, "$lte": 2024}}),
            vec!["m3", "m5"],
        ),
        (json!({"year": {"$gte": 2010.5}}), vec!["m3", "m5"]),
        // "2020" is a string: a number index does not hold it.
        (json!({"year": "2020"}), vec![]),
        (json!({"free": true}), vec!["m1", "m5"]),
        (json!({"free": {"$ne": true}}), vec!["m2", "m3", "m4"]),
        (json!({"a.b": "y"}), vec!["m5"]),
        (json!({"free": true, "year": {"$gt": 2000}}), vec!["m5"]),
        // No metadata index on "tags": nothing is indexed, so nothing matches.
        (json!({"tags": "t"}), vec![]),
    ];
    for (f, want) in cases {
        assert_eq!(filtered(&idx, f.clone()), want, "{f}");
    }
    let e = idx
        .query(
            &[1.0, 0.0],
            &QueryOptions {
                filter: Some(json!({"x": {"$exists": true}})),
                ..QueryOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code, code::INVALID_FILTER);
}

#[test]
fn metadata_indexes_cover_only_later_writes_and_cut_strings_at_64_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 2, Metric::Euclidean);
    let long = format!("{}tail", "p".repeat(64));
    idx.upsert(&[v("old", &[0.0, 0.0]).metadata(json!({"s": "x"}))])
        .unwrap();
    idx.create_metadata_index("s", MetadataIndexType::String)
        .unwrap();
    idx.upsert(&[
        v("new", &[1.0, 0.0]).metadata(json!({"s": "x"})),
        v("long", &[2.0, 0.0]).metadata(json!({"s": long})),
    ])
    .unwrap();
    assert_eq!(filtered(&idx, json!({"s": "x"})), ["new"]);
    // The index keeps 64 bytes, so any string with that prefix matches.
    assert_eq!(
        filtered(&idx, json!({"s": format!("{}other", "p".repeat(64))})),
        ["long"]
    );
    let o = QueryOptions {
        top_k: 1,
        return_metadata: ReturnMetadata::Indexed,
        ..QueryOptions::default()
    };
    let m = idx.query(&[2.0, 0.0], &o).unwrap();
    assert_eq!(
        m.matches[0].metadata.as_ref().unwrap()["s"],
        json!("p".repeat(64))
    );
    let o = QueryOptions {
        return_metadata: ReturnMetadata::All,
        ..o
    };
    assert_eq!(
        idx.query(&[2.0, 0.0], &o).unwrap().matches[0]
            .metadata
            .as_ref()
            .unwrap()["s"],
        json!(long)
    );
    // Re-upserting the old vector indexes it.
    idx.upsert(&[v("old", &[0.0, 0.0]).metadata(json!({"s": "x"}))])
        .unwrap();
    assert_eq!(filtered(&idx, json!({"s": "x"})), ["new", "old"]);

    // Limits: duplicates, ten at most, deleting unknown ones.
    assert_eq!(
        idx.create_metadata_index("s", MetadataIndexType::Number)
            .unwrap_err()
            .code,
        code::METADATA_INDEX
    );
    for i in 0..9 {
        idx.create_metadata_index(&format!("p{i}"), MetadataIndexType::Boolean)
            .unwrap();
    }
    assert_eq!(
        idx.create_metadata_index("p9", MetadataIndexType::Boolean)
            .unwrap_err()
            .code,
        code::METADATA_INDEX
    );
    assert_eq!(idx.list_metadata_indexes().len(), 10);
    idx.delete_metadata_index("s").unwrap();
    assert_eq!(filtered(&idx, json!({"s": "x"})), Vec::<String>::new());
    assert!(idx.delete_metadata_index("s").is_err());
}

#[test]
fn namespaces_restrict_before_the_filter_and_before_top_k() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 2, Metric::Euclidean);
    idx.create_metadata_index("k", MetadataIndexType::Number)
        .unwrap();
    let vectors: Vec<VectorizeVector> = (0..200)
        .map(|i| {
            let x = i as f32;
            let ns = if i % 2 == 0 { "even" } else { "odd" };
            v(&format!("v{i}"), &[x, 0.0])
                .namespace(ns)
                .metadata(json!({"k": i % 10}))
        })
        .collect();
    idx.upsert(&vectors).unwrap();
    let o = QueryOptions {
        top_k: 3,
        namespace: Some("odd".into()),
        filter: Some(json!({"k": 5})),
        return_values: true,
        ..QueryOptions::default()
    };
    // Nearest to 0 among odd vectors with k = 5: 5, 15, 25.
    let m = idx.query(&[0.0, 0.0], &o).unwrap();
    assert_eq!(ids(&m), ["v5", "v15", "v25"]);
    assert_eq!(m.matches[0].namespace.as_deref(), Some("odd"));
    assert_eq!(m.matches[1].values.as_deref(), Some(&[15.0, 0.0][..]));
    let none = QueryOptions {
        namespace: Some("absent".into()),
        ..QueryOptions::default()
    };
    assert_eq!(idx.query(&[0.0, 0.0], &none).unwrap().count, 0);
    let by_id = idx
        .query_by_id(
            "v4",
            &QueryOptions {
                top_k: 2,
                namespace: Some("even".into()),
                ..QueryOptions::default()
            },
        )
        .unwrap();
    assert_eq!(ids(&by_id)[0], "v4");
}

#[test]
fn list_pages_through_ids_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, idx) = index(dir.path(), 1, Metric::Euclidean);
    let vectors: Vec<VectorizeVector> = (0..25)
        .map(|i| v(&format!("id{i:02}"), &[i as f32]))
        .collect();
    idx.upsert(&vectors).unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = idx.list(Some(10), cursor.as_deref()).unwrap();
        assert_eq!(page.total_count, 25);
        seen.extend(page.vectors.iter().map(|v| v.id.clone()));
        if !page.is_truncated {
            assert!(page.next_cursor.is_none());
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(
        seen,
        (0..25).map(|i| format!("id{i:02}")).collect::<Vec<_>>()
    );
    assert_eq!(idx.list(Some(0), None).unwrap_err().code, code::PARSE);
    assert_eq!(
        idx.list(None, Some("!!")).unwrap_err().code,
        code::INVALID_CURSOR
    );
}

#[test]
fn reopening_replays_the_log_and_maps_segments() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<VectorizeVector> = (0..600)
        .map(|i| {
            let x = i as f32;
            v(&format!("v{i}"), &[x.sin(), x.cos(), (x * 0.1).sin(), 1.0])
                .metadata(json!({"g": format!("g{}", i % 7)}))
        })
        .collect();
    let before;
    {
        let (_s, idx) = index(dir.path(), 4, Metric::Cosine);
        idx.create_metadata_index("g", MetadataIndexType::String)
            .unwrap();
        idx.upsert(&data[..300]).unwrap();
        idx.checkpoint().unwrap(); // segment 1
        idx.upsert(&data[300..]).unwrap(); // in the log only
        idx.delete_by_ids(&["v1", "v2", "v301"]).unwrap();
        before = (
            idx.describe(),
            idx.query(
                &[0.5, 0.5, 0.1, 1.0],
                &QueryOptions {
                    top_k: 20,
                    filter: Some(json!({"g": "g3"})),
                    ..QueryOptions::default()
                },
            )
            .unwrap(),
        );
    }
    let names: Vec<String> = std::fs::read_dir(dir.path().join("vectorize/idx"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "segment-0000000000000001.seg"),
        "{names:?}"
    );
    let store = Store::open(dir.path()).unwrap();
    let idx = store.vectorize().index("idx").unwrap();
    assert_eq!(idx.describe(), before.0);
    let after = idx
        .query(
            &[0.5, 0.5, 0.1, 1.0],
            &QueryOptions {
                top_k: 20,
                filter: Some(json!({"g": "g3"})),
                ..QueryOptions::default()
            },
        )
        .unwrap();
    assert_eq!(after, before.1);
    assert_eq!(idx.get_by_ids(&["v599"]).unwrap()[0], data[599]);
    assert!(idx.get_by_ids(&["v1"]).unwrap().is_empty());
    // A write to a vector that lives in the mapped segment copies it out first.
    idx.upsert(&[v("v0", &[9.0, 9.0, 9.0, 9.0])]).unwrap();
    idx.checkpoint().unwrap();
    assert_eq!(idx.get_by_ids(&["v0"]).unwrap()[0].values, vec![9.0; 4]);
}

#[test]
fn damaged_files_give_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_s, idx) = index(dir.path(), 2, Metric::Euclidean);
        idx.upsert(&[v("a", &[1.0, 2.0])]).unwrap();
        idx.checkpoint().unwrap();
        idx.upsert(&[v("b", &[1.0, 2.0])]).unwrap();
        idx.upsert(&[v("c", &[1.0, 2.0])]).unwrap();
    }
    let idx_dir = dir.path().join("vectorize/idx");
    let seg = idx_dir.join("segment-0000000000000001.seg");
    let wal = idx_dir.join("wal-0000000000000001.log");
    let good_seg = std::fs::read(&seg).unwrap();
    let good_wal = std::fs::read(&wal).unwrap();

    // One flipped byte in the vectors section.
    let mut bad = good_seg.clone();
    bad[193] ^= 0x40; // sections start at byte 192
    std::fs::write(&seg, &bad).unwrap();
    let e = Store::open(dir.path())
        .unwrap()
        .vectorize()
        .index("idx")
        .unwrap_err();
    assert!(
        e.to_string().contains("segment-0000000000000001.seg")
            && e.to_string().contains("checksum"),
        "{e}"
    );
    std::fs::write(&seg, &good_seg[..good_seg.len() / 2]).unwrap();
    let e = Store::open(dir.path())
        .unwrap()
        .vectorize()
        .index("idx")
        .unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");
    std::fs::write(&seg, &good_seg).unwrap();

    // Damage in the first of two log records is corruption...
    let mut bad = good_wal.clone();
    bad[20] ^= 1;
    std::fs::write(&wal, &bad).unwrap();
    let e = Store::open(dir.path())
        .unwrap()
        .vectorize()
        .index("idx")
        .unwrap_err();
    assert!(
        e.to_string().contains("wal-0000000000000001.log") && e.to_string().contains("corrupt"),
        "{e}"
    );
    // ...while a torn last record is an unacknowledged write and is dropped.
    std::fs::write(&wal, &good_wal[..good_wal.len() - 2]).unwrap();
    let idx = Store::open(dir.path())
        .unwrap()
        .vectorize()
        .index("idx")
        .unwrap();
    assert_eq!(idx.describe().vector_count, 2);
}

/// The vector files in an index's directory, sorted.
fn vector_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("vectorize/idx"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vectors-"))
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoints_write_each_full_run_of_vectors_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = tristore::StoreOptions::default();
    // 4 dimensions: 16 bytes a row, so runs of 8 rows.
    options.vectorize_options.vector_file_bytes = 8 * 16;
    let open = || {
        let store = Store::open_with(dir.path(), options.clone()).unwrap();
        let idx = store.vectorize().index("idx");
        (store, idx)
    };
    let row = |i: usize| {
        let x = i as f32;
        vec![x.sin(), x.cos(), (x * 0.3).sin(), 1.0]
    };
    let (store, _) = open();
    let config = IndexConfig {
        dimensions: 4,
        metric: Metric::Cosine,
    };
    store.vectorize().create("idx", "", config).unwrap();
    let idx = store.vectorize().index("idx").unwrap();
    let mut seen: Vec<Vec<String>> = Vec::new();
    for batch in 0..5 {
        let vectors: Vec<VectorizeVector> = (batch * 7..batch * 7 + 7)
            .map(|i| v(&format!("v{i}"), &row(i)))
            .collect();
        idx.upsert(&vectors).unwrap();
        idx.checkpoint().unwrap();
        seen.push(vector_files(dir.path()));
    }
    // 35 rows: full runs of 8 after 7, 14, 21, 28 and 35 rows are 0, 1, 2, 3, 4; each
    // run's file is the one the first checkpoint that saw it full wrote.
    let counts: Vec<usize> = seen.iter().map(Vec::len).collect();
    assert_eq!(counts, [0, 1, 2, 3, 4]);
    for pair in seen.windows(2) {
        assert!(pair[1].starts_with(&pair[0]), "{pair:?}");
    }
    assert!(seen[4][0].starts_with("vectors-00000000-"), "{:?}", seen[4]);

    // A changed row copies its run out; the next checkpoint rewrites that run alone
    // and removes the file it replaces.
    idx.upsert(&[v("v9", &[0.0, 0.0, 1.0, 0.0])]).unwrap();
    idx.checkpoint().unwrap();
    let now = vector_files(dir.path());
    let replaced: Vec<&String> = seen[4].iter().filter(|n| !now.contains(n)).collect();
    assert_eq!(replaced.len(), 1, "{now:?}");
    assert!(replaced[0].starts_with("vectors-00000001-"), "{now:?}");
    assert_eq!(now.len(), 4);

    let query = [0.1, 0.9, 0.2, 1.0];
    let before = idx.query(&query, &opts(10)).unwrap();
    drop((idx, store));
    let (store, idx) = open();
    let idx = idx.unwrap();
    assert_eq!(idx.query(&query, &opts(10)).unwrap(), before);
    assert_eq!(idx.describe().vector_count, 35);
    assert_eq!(
        idx.get_by_ids(&["v9"]).unwrap()[0].values,
        [0.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(idx.get_by_ids(&["v20"]).unwrap()[0].values, row(20));
    drop((idx, store));

    // A damaged or missing vector file is refused by name.
    let file = dir.path().join("vectorize/idx").join(&now[2]);
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    bad[5] ^= 0x10;
    std::fs::write(&file, &bad).unwrap();
    let e = open().1.unwrap_err().to_string();
    assert!(e.contains(&now[2]) && e.contains("checksum"), "{e}");
    std::fs::remove_file(&file).unwrap();
    let e = open().1.unwrap_err().to_string();
    assert!(e.contains(&now[2]), "{e}");
    std::fs::write(&file, &good).unwrap();
    assert_eq!(open().1.unwrap().describe().vector_count, 35);
}
