//! Random sequences of insert / upsert / delete / query / reopen against a brute-force
//! model: every query returns the scores an exact scan over the model gives (ties make
//! ids ambiguous, scores are not), and only ids that exist and pass the filter.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use tristore::vectorize::{IndexConfig, MetadataIndexType, Metric, QueryOptions, VectorizeVector};
use tristore::{Store, StoreOptions};

#[derive(Debug, Clone, PartialEq)]
struct Item {
    values: Vec<f32>,
    namespace: Option<String>,
    c: Option<String>,
    n: Option<i64>,
}

#[derive(Debug, Clone)]
enum Action {
    Upsert(Vec<(u8, Item)>),
    Insert(Vec<(u8, Item)>),
    Delete(Vec<u8>),
    Query {
        vector: Vec<f32>,
        top_k: usize,
        namespace: Option<String>,
        filter: Option<Value>,
    },
    Checkpoint,
    Reopen,
}

fn item() -> impl Strategy<Value = Item> {
    (
        prop::collection::vec(-3i8..=3, 4),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        prop::option::of(prop::sample::select(vec!["x", "y", "z"])),
        prop::option::of(0i64..5),
    )
        .prop_map(|(v, ns, c, n)| Item {
            values: v.into_iter().map(f32::from).collect(),
            namespace: ns.map(String::from),
            c: c.map(String::from),
            n,
        })
}

fn filter() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["x", "y", "z"]).prop_map(|c| json!({"c": c})),
        prop::sample::select(vec!["x", "y"]).prop_map(|c| json!({"c": {"$ne": c}})),
        (0i64..5, 1i64..4).prop_map(|(a, w)| json!({"n": {"$gte": a, "$lt": a + w}})),
        Just(json!({"c": {"$in": ["x", "z"]}})),
        Just(json!({"n": {"$nin": [1, 2]}})),
        (0i64..5).prop_map(|a| json!({"c": {"$gt": "x"}, "n": {"$lte": a}})),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => prop::collection::vec((0u8..24, item()), 1..6).prop_map(Action::Upsert),
        2 => prop::collection::vec((0u8..24, item()), 1..6).prop_map(Action::Insert),
        2 => prop::collection::vec(0u8..24, 1..4).prop_map(Action::Delete),
        4 => (
            prop::collection::vec(-3i8..=3, 4),
            1usize..8,
            prop::option::of(prop::sample::select(vec!["a", "b"])),
            prop::option::of(filter())
        )
            .prop_map(|(v, top_k, ns, filter)| Action::Query {
                vector: v.into_iter().map(f32::from).collect(),
                top_k,
                namespace: ns.map(String::from),
                filter
            }),
        1 => Just(Action::Checkpoint),
        1 => Just(Action::Reopen),
    ]
}

fn to_vector(id: u8, it: &Item) -> VectorizeVector {
    let mut m = serde_json::Map::new();
    if let Some(c) = &it.c {
        m.insert("c".into(), json!(c));
    }
    if let Some(n) = it.n {
        m.insert("n".into(), json!(n));
    }
    VectorizeVector {
        id: format!("v{id}"),
        values: it.values.clone(),
        namespace: it.namespace.clone(),
        metadata: (!m.is_empty()).then_some(m),
    }
}

/// The filter semantics of `src/vectorize/filter.rs`, written out plainly.
fn passes(it: &Item, filter: &Value) -> bool {
    filter.as_object().unwrap().iter().all(|(k, cond)| {
        let value: Option<Value> = match k.as_str() {
            "c" => it.c.as_ref().map(|c| json!(c)),
            _ => it.n.map(|n| json!(n as f64)),
        };
        let eq = |x: &Value| {
            value
                .as_ref()
                .is_some_and(|v| v.as_f64().zip(x.as_f64()).map_or(v == x, |(a, b)| a == b))
        };
        let cmp = |x: &Value| -> Option<std::cmp::Ordering> {
            let v = value.as_ref()?;
            match (v, x) {
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => v.as_f64()?.partial_cmp(&x.as_f64()?),
            }
        };
        match cond {
            Value::Object(ops) => ops.iter().all(|(op, x)| match op.as_str() {
                "$ne" => !eq(x),
                "$in" => x.as_array().unwrap().iter().any(eq),
                "$nin" => !x.as_array().unwrap().iter().any(eq),
                "$gt" => cmp(x) == Some(std::cmp::Ordering::Greater),
                "$gte" => matches!(
                    cmp(x),
                    Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
                ),
                "$lt" => cmp(x) == Some(std::cmp::Ordering::Less),
                "$lte" => matches!(
                    cmp(x),
                    Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                ),
                other => panic!("{other}"),
            }),
            x => eq(x),
        }
    })
}

/// Exact scans are turned off, so that every query walks the graph.
fn open(dir: &std::path::Path) -> tristore::vectorize::VectorizeIndex {
    let mut options = StoreOptions::default();
    options.vectorize_options.exact_scan_max = 0;
    let store = Store::open_with(dir, options).unwrap();
    store.vectorize().index("model").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn index_matches_a_brute_force_model(actions in prop::collection::vec(action(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let config = IndexConfig { dimensions: 4, metric: Metric::Euclidean };
            store.vectorize().create("model", "", config).unwrap();
            let idx = store.vectorize().index("model").unwrap();
            idx.create_metadata_index("c", MetadataIndexType::String).unwrap();
            idx.create_metadata_index("n", MetadataIndexType::Number).unwrap();
        }
        let mut idx = open(dir.path());
        let mut model: BTreeMap<u8, Item> = BTreeMap::new();
        for a in actions {
            match a {
                Action::Upsert(batch) => {
                    idx.upsert(&batch.iter().map(|(id, it)| to_vector(*id, it)).collect::<Vec<_>>()).unwrap();
                    for (id, it) in batch {
                        model.insert(id, it);
                    }
                }
                Action::Insert(batch) => {
                    idx.insert(&batch.iter().map(|(id, it)| to_vector(*id, it)).collect::<Vec<_>>()).unwrap();
                    for (id, it) in batch {
                        model.entry(id).or_insert(it);
                    }
                }
                Action::Delete(ids) => {
                    let names: Vec<String> = ids.iter().map(|i| format!("v{i}")).collect();
                    idx.delete_by_ids(&names).unwrap();
                    for id in ids {
                        model.remove(&id);
                    }
                }
                Action::Query { vector, top_k, namespace, filter } => {
                    let o = QueryOptions { top_k, namespace: namespace.clone(), filter: filter.clone(), ..QueryOptions::default() };
                    let got = idx.query(&vector, &o).unwrap();
                    let eligible: BTreeMap<String, &Item> = model
                        .iter()
                        .filter(|(_, it)| namespace.is_none() || it.namespace == namespace)
                        .filter(|(_, it)| filter.as_ref().is_none_or(|f| passes(it, f)))
                        .map(|(id, it)| (format!("v{id}"), it))
                        .collect();
                    let dist = |it: &Item| {
                        it.values.iter().zip(&vector).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt()
                    };
                    let mut want: Vec<f64> = eligible.values().map(|it| dist(it)).collect();
                    want.sort_by(f64::total_cmp);
                    want.truncate(top_k);
                    let scores: Vec<f64> = got.matches.iter().map(|m| m.score).collect();
                    prop_assert_eq!(scores.len(), want.len(), "{:?} {:?}", o, got);
                    for (s, w) in scores.iter().zip(&want) {
                        prop_assert!((s - w).abs() < 1e-4, "scores {:?} want {:?}", scores, want);
                    }
                    for m in &got.matches {
                        let it = eligible.get(&m.id);
                        prop_assert!(it.is_some(), "{} is not eligible", m.id);
                        prop_assert!((dist(it.unwrap()) - m.score).abs() < 1e-4);
                    }
                }
                Action::Checkpoint => idx.checkpoint().unwrap(),
                Action::Reopen => {
                    drop(idx);
                    idx = open(dir.path());
                }
            }
            prop_assert_eq!(idx.describe().vector_count, model.len());
        }
        let ids: Vec<String> = model.keys().map(|i| format!("v{i}")).collect();
        let stored = idx.get_by_ids(&ids).unwrap();
        prop_assert_eq!(stored.len(), model.len());
        for (v, (id, it)) in stored.iter().zip(&model) {
            prop_assert_eq!(v, &to_vector(*id, it));
        }
    }
}
