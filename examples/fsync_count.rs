//! Runs one write operation many times so that `strace -f -c -e trace=fsync,fdatasync`
//! can count the flushes each costs (tristore's own, redb's and SQLite's alike):
//!
//! ```text
//! cargo build --example fsync_count
//! strace -f -c -e trace=fsync,fdatasync target/debug/examples/fsync_count r2-4k 100
//! ```
//!
//! Operations: `r2-4k`, `r2-1m` (a put of that size, new bytes each time), `r2-4k-64`
//! (4 KiB puts of distinct keys from 64 threads at once, N in all), `d1-insert`
//! (one autocommit insert), `d1-batch` (a batch of 100 inserts), `d1-insert-64`
//! (single-row inserts from 64 threads at once, N in all: what group commit shares).
//! The setup (store, bucket, schema) flushes too: subtract a run with N = 0, then
//! divide by N.

use tristore::d1::{D1Database, D1Limits};
use tristore::r2::R2PutOptions;
use tristore::Store;

const INSERT: &str = "INSERT INTO t VALUES (?)";

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args
        .next()
        .expect("operation: r2-4k | r2-1m | r2-4k-64 | d1-insert | d1-batch | d1-insert-64");
    let n: u64 = args.next().map_or(100, |s| s.parse().expect("count"));
    let dir = tempfile::tempdir().unwrap();
    match op.as_str() {
        "r2-4k" | "r2-1m" => {
            let len = if op == "r2-4k" { 4 << 10 } else { 1 << 20 };
            let store = Store::open(dir.path().join("store")).unwrap();
            store.r2().create_bucket("bench").unwrap();
            let bucket = store.r2().bucket("bench").unwrap();
            let mut body = vec![7u8; len];
            for i in 0..n {
                body[..8].copy_from_slice(&i.to_le_bytes());
                bucket.put("obj", &body, &R2PutOptions::default()).unwrap();
            }
        }
        "r2-4k-64" => {
            let store = Store::open(dir.path().join("store")).unwrap();
            store.r2().create_bucket("bench").unwrap();
            let bucket = store.r2().bucket("bench").unwrap();
            std::thread::scope(|scope| {
                for t in 0..64 {
                    let bucket = &bucket;
                    scope.spawn(move || {
                        let mut body = vec![7u8; 4 << 10];
                        for i in (t..n).step_by(64) {
                            body[..8].copy_from_slice(&i.to_le_bytes());
                            let key = format!("obj-{i}");
                            bucket.put(&key, &body, &R2PutOptions::default()).unwrap();
                        }
                    });
                }
            });
        }
        "d1-insert" | "d1-batch" | "d1-insert-64" => {
            let db = D1Database::open(dir.path().join("d1.sqlite"), D1Limits::default()).unwrap();
            db.execute_script("CREATE TABLE t (v TEXT)", &[]).unwrap();
            let stmt = db.prepare(INSERT);
            if op == "d1-insert-64" {
                std::thread::scope(|scope| {
                    for t in 0..64 {
                        let stmt = &stmt;
                        scope.spawn(move || {
                            for i in (t..n).step_by(64) {
                                stmt.bind([format!("v{i}")]).run().unwrap();
                            }
                        });
                    }
                });
                return;
            }
            for i in 0..n {
                if op == "d1-insert" {
                    stmt.bind([format!("v{i}")]).run().unwrap();
                } else {
                    let batch: Vec<_> =
                        (0..100).map(|j| stmt.bind([format!("v{i}-{j}")])).collect();
                    db.batch(&batch).unwrap();
                }
            }
        }
        other => panic!("unknown operation {other}"),
    }
}
