//! Crash safety of Vectorize: a child process that upserts, deletes and checkpoints
//! continuously is killed with SIGKILL at random moments; after reopening, every
//! acknowledged mutation is there and nothing unacknowledged is half-applied.

mod common;

use std::collections::BTreeMap;

use tristore::vectorize::{IndexConfig, Metric, VectorizeVector};
use tristore::{Store, StoreOptions};

const CHILD_ENV: &str = "TRISTORE_VECTORIZE_CRASH_CHILD_DIR";
const DIMS: usize = 32;

fn values(i: u64) -> Vec<f32> {
    (0..DIMS)
        .map(|d| ((i * 31 + d as u64) % 97) as f32 / 97.0 - 0.5)
        .collect()
}

fn options() -> StoreOptions {
    let mut o = StoreOptions::default();
    // Checkpoint often, so that kills land inside segment writes too.
    o.vectorize_options.checkpoint_bytes = 64 * 1024;
    o
}

/// Batch `b` upserts ids `b*8 .. b*8+8`, all with the batch number in their metadata;
/// every third batch then deletes the first id of the batch before.
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
                VectorizeVector::new(format!("v{i}"), values(i))
                    .metadata(serde_json::json!({"batch": b}))
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
    let mut clock = common::KillClock::new();
    // id -> whether it must exist (true) or must be gone (false), per acknowledgements.
    let mut expect: BTreeMap<u64, bool> = BTreeMap::new();
    let mut next_batch = 1;
    for round in 0..4 {
        let lines = common::run_and_kill_child(
            "vectorize_crash_child_writer",
            &[
                (CHILD_ENV, dir.path().display().to_string()),
                ("TRISTORE_VECTORIZE_CRASH_START", next_batch.to_string()),
            ],
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
        let acked = lines.iter().filter(|l| l.starts_with("put")).count() as u64;
        assert!(acked > 0, "round {round}: the child acknowledged nothing");

        let store = Store::open_with(dir.path(), options()).unwrap();
        let idx = store.vectorize().index("crash").unwrap();
        for (&i, &present) in &expect {
            let got = idx.get_by_ids(&[format!("v{i}")]).unwrap();
            if present {
                assert_eq!(got.len(), 1, "round {round}: acknowledged v{i} is missing");
                assert_eq!(got[0].values, values(i), "round {round}: v{i} damaged");
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
        // Queries work and find a known vector first.
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
