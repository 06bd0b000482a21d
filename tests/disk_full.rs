//! A disk that fills up: D1 writes, R2 puts, multipart parts and Vectorize upserts fail
//! with a clear error, nothing acknowledged is lost, nothing half-written becomes
//! visible, and every store works again once space is freed, in this process and after
//! reopening.
//!
//! The child test runs in a mount namespace of its own, on a small tmpfs, so "full" is
//! the operating system's own ENOSPC; the parent only starts it and reads its verdict.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use tristore::r2::{R2MultipartOptions, R2PutOptions};
use tristore::vectorize::{IndexConfig, Metric, VectorizeVector};
use tristore::{Store, StoreOptions};

const CHILD: &str = "TRISTORE_DISK_FULL_CHILD";

#[test]
fn a_full_disk_fails_writes_cleanly_and_loses_nothing() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "disk_full_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success() && report.contains("DISK-FULL-OK"),
        "{report}"
    );
}

/// Fills the file system with one file, until ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
}

/// Parts of any size, so that a multipart upload fits the small file system.
fn options() -> StoreOptions {
    let mut options = StoreOptions::default();
    options.r2_limits.min_part_bytes = 1;
    options
}

fn vector(i: usize) -> VectorizeVector {
    let values = (0..64)
        .map(|d| ((i * 31 + d * 7) % 97) as f32 / 97.0 + 0.01)
        .collect();
    VectorizeVector::new(format!("v{i}"), values).metadata(json!({"i": i}))
}

/// One round of writes in every store; `Ok` when all were acknowledged.
fn writes(store: &Store, round: usize) -> Vec<Result<(), String>> {
    let db = store.d1().database("app").unwrap();
    let bucket = store.r2().bucket("files").unwrap();
    let index = store.vectorize().index("docs").unwrap();
    let blob = vec![b'x'; 300_000];
    let d1 = db
        .prepare("INSERT INTO notes (round, body) VALUES (?, ?)")
        .bind(
            [
                json!(round),
                json!(String::from_utf8(blob.clone()).unwrap()),
            ]
            .iter()
            .map(|v| tristore::d1::D1Value::from_json(v).unwrap()),
        )
        .run()
        .map(drop)
        .map_err(|e| e.to_string());
    let r2 = bucket
        .put(&format!("obj-{round}"), &blob, &R2PutOptions::default())
        .map(drop)
        .map_err(|e| e.to_string());
    let multipart = (|| {
        let up = bucket
            .create_multipart_upload(&format!("mp-{round}"), &R2MultipartOptions::default())?;
        let p1 = up.upload_part(1, &blob)?;
        let p2 = up.upload_part(2, b"tail")?;
        up.complete(&[p1, p2]).map(drop)
    })()
    .map_err(|e| e.to_string());
    let vectors: Vec<_> = (round * 400..round * 400 + 400).map(vector).collect();
    let vectorize = index.upsert(&vectors).map(drop).map_err(|e| e.to_string());
    vec![d1, r2, multipart, vectorize]
}

/// Everything acknowledged so far is there, byte for byte, and nothing else is.
fn check(store: &Store, acknowledged: &[(usize, [bool; 4])]) {
    let db = store.d1().database("app").unwrap();
    let ok = db
        .prepare("PRAGMA quick_check")
        .first_column("quick_check")
        .unwrap();
    assert_eq!(ok, Some(json!("ok")));
    let bucket = store.r2().bucket("files").unwrap();
    let index = store.vectorize().index("docs").unwrap();
    for (round, done) in acknowledged {
        let rows = db
            .prepare("SELECT length(body) AS n FROM notes WHERE round = ?")
            .bind([*round as i64])
            .all()
            .unwrap()
            .rows
            .len();
        assert_eq!(rows, usize::from(done[0]), "D1 round {round}");
        for (key, i) in [(format!("obj-{round}"), 1), (format!("mp-{round}"), 2)] {
            let got = bucket.get(&key, &Default::default()).unwrap();
            match got {
                Some(o) if done[i] => {
                    let len = o.bytes().unwrap().len();
                    assert_eq!(len, if i == 1 { 300_000 } else { 300_004 }, "{key}");
                }
                None if !done[i] => {}
                other => panic!("{key}: acknowledged {}, found {}", done[i], other.is_some()),
            }
        }
        let ids: Vec<String> = (round * 400..round * 400 + 400)
            .map(|i| format!("v{i}"))
            .collect();
        let found = index.get_by_ids(&ids).unwrap().len();
        assert_eq!(
            found,
            if done[3] { 400 } else { 0 },
            "Vectorize round {round}"
        );
    }
    assert!(
        store.r2().fsck().unwrap().is_empty(),
        "{:?}",
        store.r2().fsck()
    );
}

#[test]
#[ignore = "run by a_full_disk_fails_writes_cleanly_and_loses_nothing in a mount namespace"]
fn disk_full_child() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    common::private_tmpfs(scratch.path(), 48 << 20);
    let dir = scratch.path().join("data");
    let ballast = scratch.path().join("ballast");
    let mut acknowledged = Vec::new();
    {
        let store = Store::open_with(&dir, options()).unwrap();
        store.d1().create("app").unwrap();
        store
            .d1()
            .database("app")
            .unwrap()
            .exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, round INTEGER, body TEXT)")
            .unwrap();
        store.r2().create_bucket("files").unwrap();
        let config = IndexConfig {
            dimensions: 64,
            metric: Metric::Cosine,
        };
        store.vectorize().create("docs", "", config).unwrap();
        let record = |acknowledged: &mut Vec<_>, round: usize, results: Vec<Result<(), String>>| {
            let done = [0, 1, 2, 3].map(|i| results[i].is_ok());
            for (what, r) in ["d1", "r2", "multipart", "vectorize"].iter().zip(&results) {
                println!("round {round} {what}: {r:?}");
            }
            acknowledged.push((round, done));
            done
        };
        record(&mut acknowledged, 0, writes(&store, 0));
        // Full: every kind of write fails, clearly.
        fill(&ballast);
        // Catalog writes alone (long keys) until the catalog file cannot grow: its
        // database refuses everything after such an error until it is reopened.
        let bucket = store.r2().bucket("files").unwrap();
        let refused = (0..5000).find_map(|i| {
            let key = format!("{i:04}{}", "k".repeat(1000));
            bucket
                .create_multipart_upload(&key, &R2MultipartOptions::default())
                .err()
        });
        let refused = refused.expect("the catalog never ran out of space");
        println!("catalog full: {refused}");
        for round in 1..4 {
            let done = record(&mut acknowledged, round, writes(&store, round));
            assert_eq!(done, [false; 4], "round {round} wrote on a full disk");
        }
        check(&store, &acknowledged);
        // Almost full: writes fail part way through.
        std::fs::remove_file(&ballast).unwrap();
        fill(&ballast);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&ballast)
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(200_000)).unwrap();
        drop(f);
        for round in 4..7 {
            record(&mut acknowledged, round, writes(&store, round));
        }
        check(&store, &acknowledged);
        // Space again: every store works.
        std::fs::remove_file(&ballast).unwrap();
        for round in 7..9 {
            let done = record(&mut acknowledged, round, writes(&store, round));
            assert_eq!(done, [true; 4], "round {round} after space was freed");
        }
        check(&store, &acknowledged);
    }
    // And after reopening.
    let store = Store::open_with(&dir, options()).unwrap();
    check(&store, &acknowledged);
    let done = writes(&store, 9);
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    println!("DISK-FULL-OK");
}
