//! Random sequences of insert / upsert / delete / query / reopen against a brute-force
//! model, for each metric: every query returns the scores an exact scan over the model
//! gives (ties make ids ambiguous, scores are not), and only ids that exist and pass the
//! filter. Every query walks the graph, filtered and namespaced ones included, with no
//! exact scan behind it, so a node the graph cannot reach fails the test.
//!
//! `TRISTORE_LONG_TESTS=1` runs 40 times as many cases.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use tristore::vectorize::{
    IndexConfig, MetadataIndexType, Metric, QueryOptions, QueryPlan, VectorizeVector,
};
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

/// The graph alone answers every query; cosine ones walk on byte codes from the first
/// vector on (where the CPU has them), fitted anew on each reopen.
fn open(dir: &std::path::Path) -> tristore::vectorize::VectorizeIndex {
    let mut options = StoreOptions::default();
    options.vectorize_options.plan = QueryPlan::Graph;
    options.vectorize_options.quantized_walk_from = Some(1);
    let store = Store::open_with(dir, options).unwrap();
    store.vectorize().index("model").unwrap()
}

/// Cosine has no direction for a zero vector; the model gives it one.
fn nonzero(metric: Metric, mut values: Vec<f32>) -> Vec<f32> {
    if metric == Metric::Cosine && values.iter().all(|&x| x == 0.0) {
        values[0] = 1.0;
    }
    values
}

/// The score Vectorize reports, in f64, and whether higher ranks first.
fn score(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    match metric {
        Metric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt(),
        Metric::Cosine => dot / (norm(a) * norm(b)),
        Metric::DotProduct => -dot,
    }
}

fn cases() -> u32 {
    if std::env::var_os("TRISTORE_LONG_TESTS").is_some() {
        3840
    } else {
        96
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn index_matches_a_brute_force_model(
        metric in prop::sample::select(vec![Metric::Euclidean, Metric::Cosine, Metric::DotProduct]),
        actions in prop::collection::vec(action(), 1..40),
    ) {
        check(metric, actions)?;
    }
}

/// Runs `actions` against an index and the model, failing at the first difference.
fn check(metric: Metric, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let config = IndexConfig {
            dimensions: 4,
            metric,
        };
        store.vectorize().create("model", "", config).unwrap();
        let idx = store.vectorize().index("model").unwrap();
        idx.create_metadata_index("c", MetadataIndexType::String)
            .unwrap();
        idx.create_metadata_index("n", MetadataIndexType::Number)
            .unwrap();
    }
    let mut idx = open(dir.path());
    let mut model: BTreeMap<u8, Item> = BTreeMap::new();
    let fix = |batch: Vec<(u8, Item)>| -> Vec<(u8, Item)> {
        batch
            .into_iter()
            .map(|(id, it)| {
                (
                    id,
                    Item {
                        values: nonzero(metric, it.values.clone()),
                        ..it
                    },
                )
            })
            .collect()
    };
    for a in actions {
        match a {
            Action::Upsert(ref batch) | Action::Insert(ref batch) => {
                let upsert = matches!(a, Action::Upsert(_));
                let batch = fix(batch.clone());
                let vectors: Vec<_> = batch.iter().map(|(id, it)| to_vector(*id, it)).collect();
                if upsert {
                    idx.upsert(&vectors).unwrap();
                } else {
                    idx.insert(&vectors).unwrap();
                }
                for (id, it) in batch {
                    // An insert keeps the first write of an id, an upsert the last.
                    if upsert || !model.contains_key(&id) {
                        model.insert(id, it);
                    }
                }
            }
            Action::Delete(ids) => {
                let names: Vec<String> = ids.iter().map(|i| format!("v{i}")).collect();
                idx.delete_by_ids(&names).unwrap();
                for id in ids {
                    model.remove(&id);
                }
            }
            Action::Query {
                vector,
                top_k,
                namespace,
                filter,
            } => {
                let vector = nonzero(metric, vector);
                let o = QueryOptions {
                    top_k,
                    namespace: namespace.clone(),
                    filter: filter.clone(),
                    ..QueryOptions::default()
                };
                let got = idx.query(&vector, &o).unwrap();
                let eligible: BTreeMap<String, &Item> = model
                    .iter()
                    .filter(|(_, it)| namespace.is_none() || it.namespace == namespace)
                    .filter(|(_, it)| filter.as_ref().is_none_or(|f| passes(it, f)))
                    .map(|(id, it)| (format!("v{id}"), it))
                    .collect();
                let of = |it: &Item| score(metric, &it.values, &vector);
                let mut want: Vec<f64> = eligible.values().map(|it| of(it)).collect();
                want.sort_by(f64::total_cmp);
                if metric == Metric::Cosine {
                    want.reverse();
                }
                want.truncate(top_k);
                let scores: Vec<f64> = got.matches.iter().map(|m| m.score).collect();
                prop_assert_eq!(scores.len(), want.len(), "{:?} {:?}", o, got);
                for (s, w) in scores.iter().zip(&want) {
                    prop_assert!((s - w).abs() < 1e-4, "scores {:?} want {:?}", scores, want);
                }
                for m in &got.matches {
                    let it = eligible.get(&m.id);
                    prop_assert!(it.is_some(), "{} is not eligible", m.id);
                    prop_assert!((of(it.unwrap()) - m.score).abs() < 1e-4);
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
    Ok(())
}

fn plain(values: [i8; 4]) -> Item {
    Item {
        values: values.into_iter().map(f32::from).collect(),
        namespace: None,
        c: None,
        n: None,
    }
}

/// A case the model test found (shrunk): before the fix, deletes and the reuse of their
/// slots left v19 with no link into it, so the graph never returned it.
#[test]
fn a_node_stays_reachable_after_deletes_and_slot_reuse() {
    use Action::*;
    let with = |values, ns: Option<&str>, c: Option<&str>, n| Item {
        namespace: ns.map(String::from),
        c: c.map(String::from),
        n,
        ..plain(values)
    };
    let actions = vec![
        Insert(vec![(3, plain([1, -1, 2, 0]))]),
        Upsert(vec![(15, plain([-1, -2, -1, 0]))]),
        Insert(vec![(14, plain([0; 4])), (9, plain([0, -1, 0, 0]))]),
        Upsert(vec![(7, plain([0; 4]))]),
        Insert(vec![(0, plain([2, -1, 0, -1]))]),
        Delete(vec![7, 14]),
        Upsert(vec![(1, with([0, 0, -1, 0], None, None, Some(2)))]),
        Insert(vec![(1, plain([0; 4]))]),
        Upsert(vec![
            (19, with([0, -3, 3, 3], Some("b"), None, None)),
            (9, with([-3, 0, 1, -2], Some("b"), None, Some(4))),
            (21, with([-3, 3, -3, -3], None, Some("y"), None)),
        ]),
        Upsert(vec![(3, with([2, 2, -1, 3], Some("a"), None, Some(4)))]),
        Delete(vec![1, 5, 6]),
        Query {
            vector: vec![-1.0, 2.0, 2.0, 3.0],
            top_k: 4,
            namespace: None,
            filter: None,
        },
    ];
    check(Metric::Euclidean, actions).unwrap();
}
