//! The filtered and namespaced graph walk at a size where it matters: 20,000 clustered
//! vectors, metadata filters that keep 2% to 60% of them (below a quarter the walk hops
//! over rejected neighbours) and a namespace that keeps a third. With the graph alone answering (no exact scan to fall back on), every hit must
//! pass the filter and recall@10 against brute force must stay high; the default plan
//! must do at least as well. Both for Euclidean distance and for cosine, where the
//! default plan scans on byte codes on CPUs that have VNNI.

use serde_json::{json, Value};
use tristore::vectorize::{
    IndexConfig, MetadataIndexType, Metric, QueryOptions, QueryPlan, VectorizeIndex,
    VectorizeOptions, VectorizeVector,
};
use tristore::{Store, StoreOptions};

const DIMS: usize = 32;
const COUNT: usize = 20_000;
const QUERIES: usize = 40;
const TOP_K: usize = 10;

/// xorshift64*: the same vectors on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// What the test knows of each vector, to judge the answers.
struct Item {
    values: Vec<f32>,
    bucket: u32,
    colour: &'static str,
    namespace: &'static str,
}

fn items() -> Vec<Item> {
    let mut rng = Rng(7);
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..DIMS).map(|_| rng.unit()).collect())
        .collect();
    (0..COUNT)
        .map(|i| {
            let centre = &centres[(rng.next() % 40) as usize];
            Item {
                values: centre.iter().map(|c| c + rng.unit()).collect(),
                bucket: (rng.next() % 10) as u32,
                colour: ["red", "green", "blue", "gold", "grey"][(rng.next() % 5) as usize],
                namespace: ["a", "b", "c"][i % 3],
            }
        })
        .collect()
}

fn open(dir: &std::path::Path, plan: QueryPlan) -> VectorizeIndex {
    let options = StoreOptions {
        vectorize_options: VectorizeOptions {
            plan,
            ..VectorizeOptions::default()
        },
        ..StoreOptions::default()
    };
    Store::open_with(dir, options)
        .unwrap()
        .vectorize()
        .index("recall")
        .unwrap()
}

fn build(dir: &std::path::Path, items: &[Item], metric: Metric) {
    let store = Store::open(dir).unwrap();
    let config = IndexConfig {
        dimensions: DIMS,
        metric,
    };
    store.vectorize().create("recall", "", config).unwrap();
    let idx = store.vectorize().index("recall").unwrap();
    idx.create_metadata_index("bucket", MetadataIndexType::Number)
        .unwrap();
    idx.create_metadata_index("colour", MetadataIndexType::String)
        .unwrap();
    for (chunk_no, chunk) in items.chunks(1000).enumerate() {
        let batch: Vec<VectorizeVector> = chunk
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let mut v =
                    VectorizeVector::new(format!("v{}", chunk_no * 1000 + i), it.values.clone());
                v.namespace = Some(it.namespace.into());
                v.metadata = Some(
                    json!({"bucket": it.bucket, "colour": it.colour})
                        .as_object()
                        .unwrap()
                        .clone(),
                );
                v
            })
            .collect();
        idx.upsert(&batch).unwrap();
    }
}

/// A selection and the test's own reading of it.
struct Selection {
    name: &'static str,
    namespace: Option<&'static str>,
    filter: Option<Value>,
    keeps: fn(&Item) -> bool,
}

fn selections() -> Vec<Selection> {
    vec![
        Selection {
            name: "bucket 3 and colour red (2%)",
            namespace: None,
            filter: Some(json!({"bucket": 3, "colour": "red"})),
            keeps: |it| it.bucket == 3 && it.colour == "red",
        },
        Selection {
            name: "bucket 5 (10%)",
            namespace: None,
            filter: Some(json!({"bucket": 5})),
            keeps: |it| it.bucket == 5,
        },
        Selection {
            name: "bucket < 2 (20%)",
            namespace: None,
            filter: Some(json!({"bucket": {"$lt": 2}})),
            keeps: |it| it.bucket < 2,
        },
        Selection {
            name: "colour in red, green (40%)",
            namespace: None,
            filter: Some(json!({"colour": {"$in": ["red", "green"]}})),
            keeps: |it| it.colour == "red" || it.colour == "green",
        },
        Selection {
            name: "bucket >= 4 (60%)",
            namespace: None,
            filter: Some(json!({"bucket": {"$gte": 4}})),
            keeps: |it| it.bucket >= 4,
        },
        Selection {
            name: "namespace b (33%)",
            namespace: Some("b"),
            filter: None,
            keeps: |it| it.namespace == "b",
        },
        Selection {
            name: "namespace c and colour != grey (27%)",
            namespace: Some("c"),
            filter: Some(json!({"colour": {"$ne": "grey"}})),
            keeps: |it| it.namespace == "c" && it.colour != "grey",
        },
    ]
}

/// The distance a match's score stands for: smaller is nearer.
fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum()
    };
    match metric {
        Metric::Cosine => 1.0 - dot(a, b) / (dot(a, a) * dot(b, b)).sqrt(),
        _ => a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt(),
    }
}

fn score_distance(metric: Metric, score: f64) -> f64 {
    match metric {
        Metric::Cosine => 1.0 - score,
        _ => score,
    }
}

/// Mean recall@10 of `idx` over the queries for `s`, after checking that every hit
/// passes the selection and carries its true distance.
fn recall(
    idx: &VectorizeIndex,
    metric: Metric,
    items: &[Item],
    queries: &[Vec<f32>],
    s: &Selection,
) -> f64 {
    let mut found = 0;
    for q in queries {
        let mut truth: Vec<(f64, usize)> = items
            .iter()
            .enumerate()
            .filter(|(_, it)| (s.keeps)(it))
            .map(|(i, it)| (distance(metric, &it.values, q), i))
            .collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let kth = truth[TOP_K - 1].0;
        let options = QueryOptions {
            top_k: TOP_K,
            namespace: s.namespace.map(String::from),
            filter: s.filter.clone(),
            ..QueryOptions::default()
        };
        let got = idx.query(q, &options).unwrap();
        assert_eq!(got.matches.len(), TOP_K, "{}: too few matches", s.name);
        for m in &got.matches {
            let item = &items[m.id[1..].parse::<usize>().unwrap()];
            assert!((s.keeps)(item), "{}: {} does not pass", s.name, m.id);
            let d = score_distance(metric, m.score);
            assert!((distance(metric, &item.values, q) - d).abs() < 1e-3);
            // Ties at the k-th distance count as found.
            if d <= kth + 1e-6 {
                found += 1;
            }
        }
    }
    found as f64 / (queries.len() * TOP_K) as f64
}

#[test]
fn filtered_and_namespaced_walks_keep_recall_and_pass_every_filter() {
    check(Metric::Euclidean);
}

#[test]
fn cosine_filtered_walks_and_scans_keep_recall_and_pass_every_filter() {
    check(Metric::Cosine);
}

fn check(metric: Metric) {
    let dir = tempfile::tempdir().unwrap();
    let items = items();
    build(dir.path(), &items, metric);
    let mut rng = Rng(99);
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| {
            let base = &items[(rng.next() % COUNT as u64) as usize].values;
            base.iter().map(|x| x + rng.unit()).collect()
        })
        .collect();
    let graph = open(dir.path(), QueryPlan::Graph);
    let graph_recall: Vec<f64> = selections()
        .iter()
        .map(|s| recall(&graph, metric, &items, &queries, s))
        .collect();
    drop(graph);
    let auto = open(dir.path(), QueryPlan::Auto);
    for (s, graph_recall) in selections().iter().zip(graph_recall) {
        let auto_recall = recall(&auto, metric, &items, &queries, s);
        eprintln!(
            "{metric:?}, {}: recall@10 graph {graph_recall:.3}, auto {auto_recall:.3}",
            s.name
        );
        assert!(
            graph_recall >= 0.95,
            "{}: graph recall {graph_recall}",
            s.name
        );
        assert!(
            auto_recall >= graph_recall.min(0.99),
            "{}: auto {auto_recall}",
            s.name
        );
    }
}
