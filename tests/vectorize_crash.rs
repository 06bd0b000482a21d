//! Crash safety of Vectorize: a child process that upserts, deletes and checkpoints
//! continuously is killed with SIGKILL at random moments; after reopening, every
//! acknowledged mutation is there and nothing unacknowledged is half-applied. Each
//! acknowledged vector is checked whole (values, namespace, metadata), and the metadata
//! index on `batch` must find it: a query filtered on its batch returns exactly the
//! batch's live vectors.

mod common;

use std::collections::BTreeMap;

use tristore::vectorize::{
    IndexConfig, MetadataIndexType, Metric, QueryOptions, ReturnMetadata, VectorizeVector,
};
use tristore::{Store, StoreOptions};

const CHILD_ENV: &str = "TRISTORE_VECTORIZE_CRASH_CHILD_DIR";
const DIMS: usize = 32;
/// Acknowledged upsert batches each round must have seen (here 330-860 a round).
const MIN_ACKS_PER_ROUND: usize = 10;

fn values(i: u64) -> Vec<f32> {
    (0..DIMS)
        .map(|d| ((i * 31 + d as u64) % 97) as f32 / 97.0 - 0.5)
        .collect()
}

/// The namespace of the vectors of batch `b`.
fn namespace(b: u64) -> String {
    format!("n{}", b % 4)
}

/// The metadata of vector `i` (of batch `i / 8`).
fn metadata(i: u64) -> serde_json::Value {
    serde_json::json!({"batch": i / 8, "name": format!("vector {i}")})
}

fn options() -> StoreOptions {
    let mut o = StoreOptions::default();
    // Checkpoint often, so that kills land inside segment writes too.
    o.vectorize_options.checkpoint_bytes = 64 * 1024;
    o
}

/// Batch `b` upserts ids `b*8 .. b*8+8`, all with the batch number in their metadata
/// and in the namespace of the batch; every third batch then deletes the first id of
/// the batch before.
#[test]
#[ignore = "run by acknowledged_vectorize_writes_survive_kill_9 as a child process"]
fn vectorize_crash_child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by the parent test");
    let start: u64 = std::env::var("TRISTORE_VECTORIZE_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::open_with(&dir, options()).unwrap();
    let idx = store.vectorize().index("crash").unwrap();
    for b in start.. {
        let batch: Vec<VectorizeVector> = (b * 8..b * 8 + 8)
            .map(|i| {
                let mut v = VectorizeVector::new(format!("v{i}"), values(i)).metadata(metadata(i));
                v.namespace = Some(namespace(b));
                v
            })
            .collect();
        idx.upsert(&batch).unwrap();
        println!("put {b}");
        if b % 3 == 2 {
            idx.delete_by_ids(&[format!("v{}", (b - 1) * 8)]).unwrap();
            println!("del {}", (b - 1) * 8);
        }
    }
}

#[test]
fn acknowledged_vectorize_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    Store::open_with(dir.path(), options())
        .unwrap()
        .vectorize()
        .create(
            "crash",
            "",
            IndexConfig {
                dimensions: DIMS,
                metric: Metric::Cosine,
            },
        )
        .unwrap();
    Store::open_with(dir.path(), options())
        .unwrap()
        .vectorize()
        .index("crash")
        .unwrap()
        .create_metadata_index("batch", MetadataIndexType::Number)
        .unwrap();
    let mut clock = common::KillClock::new();
    // id -> whether it must exist (true) or must be gone (false), per acknowledgements.
    let mut expect: BTreeMap<u64, bool> = BTreeMap::new();
    let mut next_batch = 1;
    for round in 0..4 {
        let lines = common::run_and_kill_child_at(
            "vectorize_crash_child_writer",
            &[
                (CHILD_ENV, dir.path().display().to_string()),
                ("TRISTORE_VECTORIZE_CRASH_START", next_batch.to_string()),
            ],
            std::time::Duration::ZERO,
            "put ",
            clock.next(400, 900),
        );
        let lines: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("put ") || l.starts_with("del "))
            .collect();
        for line in &lines {
            let (what, n) = line.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            match what {
                "put" => (n * 8..n * 8 + 8).for_each(|i| {
                    expect.insert(i, true);
                }),
                _ => {
                    expect.insert(n, false);
                }
            }
        }
        // Killed after acknowledging `put b` of a deleting batch, the child may have
        // applied its delete without saying so: that id may be either way from now on.
        if let Some(b) = lines.last().and_then(|l| l.strip_prefix("put ")) {
            let b: u64 = b.parse().unwrap();
            if b % 3 == 2 {
                expect.remove(&((b - 1) * 8));
            }
        }
        let acked = lines.iter().filter(|l| l.starts_with("put")).count();
        let lines: Vec<String> = lines.into_iter().cloned().collect();
        common::assert_round_acked(round, acked, MIN_ACKS_PER_ROUND, &lines);
        let acked = acked as u64;

        let store = Store::open_with(dir.path(), options()).unwrap();
        let idx = store.vectorize().index("crash").unwrap();
        for (&i, &present) in &expect {
            let got = idx.get_by_ids(&[format!("v{i}")]).unwrap();
            if present {
                assert_eq!(got.len(), 1, "round {round}: acknowledged v{i} is missing");
                let v = &got[0];
                assert_eq!(v.values, values(i), "round {round}: v{i} values damaged");
                assert_eq!(
                    v.namespace.as_deref(),
                    Some(namespace(i / 8).as_str()),
                    "round {round}: v{i} namespace"
                );
                assert_eq!(
                    v.metadata.clone().map(serde_json::Value::Object),
                    Some(metadata(i)),
                    "round {round}: v{i} metadata"
                );
            } else {
                assert!(got.is_empty(), "round {round}: deleted v{i} came back");
            }
        }
        // The one unacknowledged batch (if any) is all there or not there at all.
        let last = next_batch + acked;
        let present = (last * 8..last * 8 + 8)
            .filter(|i| !idx.get_by_ids(&[format!("v{i}")]).unwrap().is_empty())
            .count();
        assert!(
            present == 0 || present == 8,
            "round {round}: batch {last} half applied ({present}/8)"
        );
        if present == 8 {
            (last * 8..last * 8 + 8).for_each(|i| {
                expect.insert(i, true);
            });
        }
        // The metadata index finds every live vector of each batch and no deleted one:
        // a query filtered on `batch` (in the batch's namespace) returns exactly them.
        let mut batches: BTreeMap<u64, Vec<(u64, bool)>> = BTreeMap::new();
        for (&i, &p) in &expect {
            batches.entry(i / 8).or_default().push((i, p));
        }
        for (&b, members) in &batches {
            let probe = members.iter().find(|(_, p)| *p).map_or(b * 8, |(i, _)| *i);
            let m = idx
                .query(
                    &values(probe),
                    &QueryOptions {
                        top_k: 20,
                        namespace: Some(namespace(b)),
                        return_metadata: ReturnMetadata::All,
                        filter: Some(serde_json::json!({"batch": b})),
                        ..QueryOptions::default()
                    },
                )
                .unwrap();
            let found: Vec<&str> = m.matches.iter().map(|x| x.id.as_str()).collect();
            for &(i, p) in members {
                assert_eq!(
                    found.contains(&format!("v{i}").as_str()),
                    p,
                    "round {round}: a query filtered on batch {b} returned {found:?}; v{i} present: {p}"
                );
            }
            for x in &m.matches {
                let i: u64 = x.id[1..].parse().unwrap();
                assert_eq!(
                    i / 8,
                    b,
                    "round {round}: filter on batch {b} returned {}",
                    x.id
                );
                assert_eq!(
                    x.metadata.clone().map(serde_json::Value::Object),
                    Some(metadata(i)),
                    "round {round}: metadata of match {}",
                    x.id
                );
            }
        }
        // Queries work and find a known vector first. (These vectors are the 97 cyclic
        // shifts of one sequence, ~80 copies of each: a walk on byte codes, from 4,096
        // rows, must walk on past the near-copies its codes cannot tell apart.)
        let (&some, _) = expect.iter().rev().find(|(_, &p)| p).unwrap();
        let m = idx
            .query(&values(some), &tristore::vectorize::QueryOptions::default())
            .unwrap();
        assert!(
            (m.matches[0].score - 1.0).abs() < 1e-5,
            "round {round}: {m:?}"
        );
        next_batch = last + 1;
    }
}
