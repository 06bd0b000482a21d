//! Dot-product indexes rank exactly by inner product whatever the norms of the vectors:
//! one very long vector must not degrade the answers for every other query, not while it
//! is stored, not after it is deleted, not after a restart. Also: indexes written by the
//! previous segment format open with their vectors and answers unchanged.

use tristore::vectorize::{
    IndexConfig, Metric, QueryOptions, VectorizeIndex, VectorizeOptions, VectorizeVector,
};
use tristore::{Store, StoreOptions};

/// A deterministic stream of uniform numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random direction scaled to `norm`.
    fn vector(&mut self, dims: usize, norm: f64) -> Vec<f32> {
        let dir: Vec<f64> = (0..dims).map(|_| self.next() * 2.0 - 1.0).collect();
        let len = dir.iter().map(|x| x * x).sum::<f64>().sqrt();
        dir.iter().map(|x| (x / len * norm) as f32).collect()
    }

    /// A norm spread evenly over the orders of magnitude from 1e-3 to 1e20.
    fn norm(&mut self) -> f64 {
        10f64.powf(self.next() * 23.0 - 3.0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// The ids of the `k` largest inner products with `q` among `live`, best first.
fn brute_force(live: &[(String, Vec<f32>)], q: &[f32], k: usize) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = live
        .iter()
        .map(|(id, v)| (dot(q, v), id.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|s| s.1.to_owned()).collect()
}

fn top(idx: &VectorizeIndex, q: &[f32], k: usize) -> Vec<String> {
    let found = idx
        .query(
            q,
            &QueryOptions {
                top_k: k,
                ..QueryOptions::default()
            },
        )
        .unwrap();
    found.matches.iter().map(|m| m.id.clone()).collect()
}

fn create(store: &Store, name: &str, dims: usize) -> VectorizeIndex {
    store
        .vectorize()
        .create(
            name,
            "",
            IndexConfig {
                dimensions: dims,
                metric: Metric::DotProduct,
            },
        )
        .unwrap();
    store.vectorize().index(name).unwrap()
}

fn vectors(items: &[(String, Vec<f32>)]) -> Vec<VectorizeVector> {
    items
        .iter()
        .map(|(id, v)| VectorizeVector::new(id.clone(), v.clone()))
        .collect()
}

/// The audit's case on a small index (answered by an exact scan): 200 vectors in
/// [-1, 1]⁴, then one vector of norm 1e20 orthogonal to the query.
#[test]
fn one_long_vector_leaves_the_ranking_of_the_others_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let idx = create(&store, "dp", 4);
    let mut rng = Rng(7);
    let live: Vec<(String, Vec<f32>)> = (0..200)
        .map(|i| {
            let v = (0..4).map(|_| (rng.next() * 2.0 - 1.0) as f32).collect();
            (format!("v{i}"), v)
        })
        .collect();
    idx.insert(&vectors(&live)).unwrap();
    let q = [1.0, 0.5, -0.25, 0.0];
    let want = brute_force(&live, &q, 5);
    assert_eq!(top(&idx, &q, 5), want);

    idx.insert(&[VectorizeVector::new("long", vec![0.0, 0.0, 0.0, 1e20])])
        .unwrap();
    assert_eq!(top(&idx, &q, 5), want, "with the long vector stored");
    // Its own score is exact, far past the float32 range of the product.
    let scores = idx
        .query(
            &[0.0, 0.0, 0.0, 1e20],
            &QueryOptions {
                top_k: 1,
                ..QueryOptions::default()
            },
        )
        .unwrap();
    assert_eq!(scores.matches[0].id, "long");
    let long = f64::from(1e20f32);
    assert_eq!(scores.matches[0].score, -(long * long));

    idx.delete_by_ids(&["long"]).unwrap();
    assert_eq!(top(&idx, &q, 5), want, "after deleting it");
    drop(idx);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let idx = store.vectorize().index("dp").unwrap();
    assert_eq!(top(&idx, &q, 5), want, "after reopening");
}

/// 3,000 vectors through the graph (exact scans switched off), norms spread from 1e-3
/// to 1e20, queries of every norm too: recall@10 against brute force in f64 of at least
/// 0.95, with exact scores. Again after deleting the longest 9% at once (the ones that
/// set Φ and won most queries; before deletes stopped pruning lists with room, this
/// dropped recall to ~0.77), after a checkpoint and a restart, and after new short
/// vectors arrive.
#[test]
fn graph_recall_and_scores_hold_for_norms_from_1e_minus_3_to_1e20() {
    let dir = tempfile::tempdir().unwrap();
    let options = || StoreOptions {
        vectorize_options: VectorizeOptions {
            exact_scan_max: 0,
            ..VectorizeOptions::default()
        },
        ..StoreOptions::default()
    };
    let dims = 8;
    let mut rng = Rng(42);
    let mut live: Vec<(String, Vec<f32>)> = (0..3000)
        .map(|i| {
            let norm = rng.norm();
            (format!("v{i}"), rng.vector(dims, norm))
        })
        .collect();
    let queries: Vec<Vec<f32>> = (0..40)
        .map(|_| {
            let norm = rng.norm();
            rng.vector(dims, norm)
        })
        .collect();
    // A graph is approximate, so the bar is recall against brute force in f64, with
    // every score exact (before the fix, one long vector made recall 0).
    let check = |idx: &VectorizeIndex, live: &[(String, Vec<f32>)], when: &str| {
        let by_id: std::collections::HashMap<&str, &[f32]> = live
            .iter()
            .map(|(id, v)| (id.as_str(), v.as_slice()))
            .collect();
        let mut found = 0;
        for (n, q) in queries.iter().enumerate() {
            let want = brute_force(live, q, 10);
            let matches = idx
                .query(
                    q,
                    &QueryOptions {
                        top_k: 10,
                        ..QueryOptions::default()
                    },
                )
                .unwrap()
                .matches;
            assert_eq!(matches.len(), 10, "{when}: query {n}");
            for m in &matches {
                assert_eq!(
                    m.score,
                    -dot(q, by_id[m.id.as_str()]),
                    "{when}: query {n}, {}",
                    m.id
                );
            }
            assert!(
                matches.windows(2).all(|w| w[0].score <= w[1].score),
                "{when}: query {n} out of order"
            );
            found += matches.iter().filter(|m| want.contains(&m.id)).count();
        }
        let recall = found as f64 / (10 * queries.len()) as f64;
        assert!(recall >= 0.95, "{when}: recall@10 {recall}");
    };

    let store = Store::open_with(dir.path(), options()).unwrap();
    let idx = create(&store, "spread", dims);
    for batch in live.chunks(1000) {
        idx.upsert(&vectors(batch)).unwrap();
    }
    check(&idx, &live, "all stored");

    // The longest 9%, the vectors that set Φ and won most queries.
    live.sort_by(|a, b| dot(&b.1, &b.1).total_cmp(&dot(&a.1, &a.1)));
    let short = live.split_off(live.len() * 9 / 100);
    let long = std::mem::replace(&mut live, short);
    let long_ids: Vec<&str> = long.iter().map(|(id, _)| id.as_str()).collect();
    for ids in long_ids.chunks(1000) {
        idx.delete_by_ids(ids).unwrap();
    }
    check(&idx, &live, "long ones deleted");

    idx.checkpoint().unwrap();
    drop(idx);
    drop(store);
    let store = Store::open_with(dir.path(), options()).unwrap();
    let idx = store.vectorize().index("spread").unwrap();
    check(&idx, &live, "reopened");

    let fresh: Vec<(String, Vec<f32>)> = (0..500)
        .map(|i| {
            let norm = 10f64.powf(rng.next() * 6.0 - 3.0);
            (format!("w{i}"), rng.vector(dims, norm))
        })
        .collect();
    idx.upsert(&vectors(&fresh)).unwrap();
    live.extend(fresh);
    check(&idx, &live, "short ones added");
}

/// The values the fixture's indexes were written with (by the format-1 code).
fn fixture_vector(i: usize) -> Vec<f32> {
    let scale = if i % 9 == 4 { 1000.0 } else { 1.0 };
    vec![
        (i as f32 * 0.5 - 7.0) * scale,
        ((i % 7) as f32 - 3.0) * scale,
        scale / (i as f32 + 1.0),
        (((i * i) % 11) as f32 - 5.0) * scale,
    ]
}

/// Copies index `name` of fixture `fixture` (under `tests/fixtures`) into the data
/// directory `dir`.
fn install_fixture(dir: &std::path::Path, fixture: &str, name: &str) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture)
        .join("vectorize")
        .join(name);
    let to = dir.join("vectorize").join(name);
    std::fs::create_dir_all(&to).unwrap();
    for file in std::fs::read_dir(from).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
    }
}

/// The fixtures' live vectors: 34 written, `v3` and `v5` deleted.
fn fixture_live() -> Vec<(String, Vec<f32>)> {
    (0..34)
        .filter(|i| ![3, 5].contains(i))
        .map(|i| (format!("v{i}"), fixture_vector(i)))
        .collect()
}

/// `tests/fixtures/vectorize-segment-v1`: a dot-product and a cosine index written by
/// the first segment format (30 vectors, `v3` deleted, checkpoint; then 4 more and
/// `v5` deleted in the log).
#[test]
fn indexes_of_the_first_segment_format_open_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["dots", "cos"] {
        install_fixture(dir.path(), "vectorize-segment-v1", name);
    }
    let live = fixture_live();
    let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
    let q = [0.3, -1.0, 2.0, 0.5];
    for round in 0..2 {
        let store = Store::open(dir.path()).unwrap();
        for name in ["dots", "cos"] {
            let idx = store.vectorize().index(name).unwrap();
            let got = idx.get_by_ids(&ids).unwrap();
            assert_eq!(got.len(), live.len(), "{name}, round {round}");
            for (v, (id, values)) in got.iter().zip(&live) {
                assert_eq!((&v.id, &v.values), (id, values), "{name}, round {round}");
            }
            let found = top(&idx, &q, 5);
            if name == "dots" {
                assert_eq!(found, brute_force(&live, &q, 5), "round {round}");
            }
            assert_eq!(found.len(), 5);
            // Round 0 rewrites each index in the current format; round 1 reads that.
            idx.checkpoint().unwrap();
        }
    }
}

/// `tests/fixtures/vectorize-segment-v2`: a cosine index written by the second segment
/// format, whose one vectors section held every row (30 vectors, `v3` deleted,
/// checkpoint; then 4 more and `v5` deleted in the log). Opened in runs of 8 rows, the
/// rows become runs without files; the next checkpoint writes them out.
#[test]
fn indexes_of_the_second_segment_format_open_and_move_to_vector_files() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "vectorize-segment-v2", "cos");
    let to = dir.path().join("vectorize/cos");
    let mut options = tristore::StoreOptions::default();
    options.vectorize_options.vector_file_bytes = 8 * 4 * 4;
    let live = fixture_live();
    let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
    let vector_files = || {
        std::fs::read_dir(&to)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".vec")
            })
            .count()
    };
    let mut answers = Vec::new();
    for round in 0..2 {
        let store = Store::open_with(dir.path(), options.clone()).unwrap();
        let idx = store.vectorize().index("cos").unwrap();
        let got = idx.get_by_ids(&ids).unwrap();
        assert_eq!(got.len(), live.len(), "round {round}");
        for (v, (id, values)) in got.iter().zip(&live) {
            assert_eq!((&v.id, &v.values), (id, values), "round {round}");
        }
        answers.push(top(&idx, &[0.3, -1.0, 2.0, 0.5], 5));
        assert_eq!(
            vector_files(),
            if round == 0 { 0 } else { 4 },
            "round {round}"
        );
        // Round 0 writes the index in the current format: 33 slots (the log's 4 new
        // vectors took `v3`'s and 3 new ones), so four full runs of 8 and a tail of 1.
        idx.checkpoint().unwrap();
        assert_eq!(vector_files(), 4, "round {round}");
    }
    assert_eq!(answers[0], answers[1]);
}
