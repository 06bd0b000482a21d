//! Durability: a `run` or `batch` that returned survives kill -9.
//!
//! The test re-runs its own binary as a child that writes continuously and prints each
//! acknowledged write; the parent kills it with SIGKILL at a random moment, reopens the
//! store and checks that every write acknowledged so far, in this round or an earlier
//! one, is there with its exact content. The table is never emptied: each child starts
//! at ids past everything the earlier ones wrote, so every later crash re-checks the
//! earlier rounds' writes.

mod common;

use std::collections::BTreeSet;

use tristore::d1::D1Value;
use tristore::Store;

const CHILD_ENV: &str = "TRISTORE_CRASH_CHILD_DIR";
const START_ENV: &str = "TRISTORE_CRASH_CHILD_START";
/// Acknowledged writes each round must have seen: here a child acknowledged 2,000 to
/// 6,000 in the fraction of a second it lives; the floor leaves room for a slow disk.
const MIN_ACKS_PER_ROUND: usize = 20;

/// The body of the single-row insert of even id `i`.
fn single_body(i: i64) -> String {
    format!("{i}:{}", "x".repeat(500))
}

/// The writer, run only as the child of `acknowledged_writes_survive_kill_9`. Even ids
/// are single inserts; odd ids are a batch of two rows, `i` and `-i`.
#[test]
#[ignore = "run by acknowledged_writes_survive_kill_9 as a child process"]
fn crash_child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by the parent test");
    let start: i64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let store = Store::open(&dir).unwrap();
    let db = store.d1().database("crash").unwrap();
    let insert = db.prepare("INSERT INTO acks (id, body) VALUES (?, ?)");
    for i in start.. {
        if i % 2 == 0 {
            insert
                .bind([i.into(), D1Value::from(single_body(i))])
                .run()
                .unwrap();
            println!("ack {i}");
        } else {
            // A batch of two: both rows, or neither.
            db.batch(&[
                insert.bind([i.into(), D1Value::from(format!("b{i}"))]),
                insert.bind([-i, i]),
            ])
            .unwrap();
            println!("ack {i}");
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.d1().create("crash").unwrap();
        store
            .d1()
            .database("crash")
            .unwrap()
            .exec("CREATE TABLE acks (id INTEGER PRIMARY KEY, body)")
            .unwrap();
    }
    let mut clock = common::KillClock::new();
    // Every id acknowledged by any round so far.
    let mut acked_ever: BTreeSet<i64> = BTreeSet::new();
    // Ids a child may have written without acknowledging (the one in flight at a kill).
    let mut unknown: BTreeSet<i64> = BTreeSet::new();
    let mut next = 1i64;
    for round in 0..4 {
        let lines = common::run_and_kill_child_at(
            "crash_child_writer",
            &[
                (CHILD_ENV, dir.path().display().to_string()),
                (START_ENV, next.to_string()),
            ],
            std::time::Duration::ZERO,
            "ack ",
            clock.next(150, 400),
        );
        // The first acknowledgement shares its line with libtest's `test NAME ... `.
        let acked: Vec<i64> = lines
            .iter()
            .filter_map(|l| l.rsplit_once("ack ")?.1.trim().parse().ok())
            .collect();
        common::assert_round_acked(round, acked.len(), MIN_ACKS_PER_ROUND, &lines);
        assert!(
            acked.iter().zip(next..).all(|(a, b)| *a == b),
            "round {round}: acknowledgements out of sequence: {acked:?}"
        );
        acked_ever.extend(&acked);
        // The write after the last acknowledged one may or may not have committed; the
        // next child starts past it.
        next += acked.len() as i64;
        unknown.insert(next);
        next += 1;

        let store = Store::open(dir.path()).unwrap();
        let db = store.d1().database("crash").unwrap();
        let get = db.prepare("SELECT body FROM acks WHERE id = ?");
        for &id in &acked_ever {
            let body = get.bind([id]).first_column("body").unwrap();
            let want = if id % 2 == 0 {
                single_body(id)
            } else {
                format!("b{id}")
            };
            assert_eq!(
                body,
                Some(want.into()),
                "round {round}: acknowledged write {id} lost or changed"
            );
            if id % 2 == 1 {
                let other = get.bind([-id]).first_column("body").unwrap();
                assert_eq!(
                    other,
                    Some(id.into()),
                    "round {round}: the second row of acknowledged batch {id} lost"
                );
            }
        }
        let torn = db
            .prepare("SELECT count(*) AS n FROM acks a WHERE a.id > 0 AND a.id % 2 = 1 AND NOT EXISTS (SELECT 1 FROM acks b WHERE b.id = -a.id)")
            .first_column("n")
            .unwrap();
        assert_eq!(
            torn,
            Some(0.into()),
            "round {round}: half of a batch was committed"
        );
        let torn = db
            .prepare("SELECT count(*) AS n FROM acks a WHERE a.id < 0 AND NOT EXISTS (SELECT 1 FROM acks b WHERE b.id = -a.id)")
            .first_column("n")
            .unwrap();
        assert_eq!(
            torn,
            Some(0.into()),
            "round {round}: half of a batch was committed"
        );
        // Nothing besides the acknowledged writes and the ones in flight at a kill.
        let ids: Vec<i64> = db
            .prepare("SELECT id FROM acks WHERE id > 0")
            .raw(false)
            .unwrap()
            .iter()
            .map(|row| row[0].as_i64().unwrap())
            .collect();
        for id in ids {
            assert!(
                acked_ever.contains(&id) || unknown.contains(&id),
                "round {round}: row {id} was never written"
            );
        }
        let integrity = db
            .prepare("PRAGMA quick_check")
            .first_column("quick_check")
            .unwrap();
        assert_eq!(integrity, Some("ok".into()));
    }
}

/// Writer threads of the concurrent child; their writes share commits (group commit).
const THREADS: i64 = 8;
/// Each thread of a round writes ids `start + t * STRIDE + j`, so rounds never overlap.
const STRIDE: i64 = 1_000_000;

/// Whether the `j`th request of a thread is one that fails on purpose: a batch whose
/// second row repeats the first's id, so neither may be kept.
fn fails_on_purpose(j: i64) -> bool {
    j % 5 == 4
}

/// The concurrent writer, run only as the child of
/// `concurrent_acknowledged_writes_survive_kill_9`: eight threads write at once, as the
/// single child does (even ids single inserts, odd ids batches of `i` and `-i`), and
/// every fifth request of a thread is a batch that fails on a duplicate id.
#[test]
#[ignore = "run by concurrent_acknowledged_writes_survive_kill_9 as a child process"]
fn crash_child_concurrent_writers() {
    let dir = std::env::var(CHILD_ENV).expect("run by the parent test");
    let start: i64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let store = Store::open(&dir).unwrap();
    let db = store.d1().database("crash").unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let insert = db.prepare("INSERT INTO acks (id, body) VALUES (?, ?)");
                for j in 0.. {
                    let i = start + t * STRIDE + j;
                    if fails_on_purpose(j) {
                        let failed = db.batch(&[
                            insert.bind([i.into(), D1Value::from(format!("b{i}"))]),
                            insert.bind([i.into(), D1Value::from("duplicate")]),
                        ]);
                        assert!(failed.is_err(), "a duplicate id was accepted");
                        println!("fail {i}");
                    } else if i % 2 == 0 {
                        insert
                            .bind([i.into(), D1Value::from(single_body(i))])
                            .run()
                            .unwrap();
                        println!("ack {i}");
                    } else {
                        db.batch(&[
                            insert.bind([i.into(), D1Value::from(format!("b{i}"))]),
                            insert.bind([-i, i]),
                        ])
                        .unwrap();
                        println!("ack {i}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn concurrent_acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.d1().create("crash").unwrap();
        store
            .d1()
            .database("crash")
            .unwrap()
            .exec("CREATE TABLE acks (id INTEGER PRIMARY KEY, body)")
            .unwrap();
    }
    let mut clock = common::KillClock::new();
    let mut acked_ever: BTreeSet<i64> = BTreeSet::new();
    let mut failed_ever: BTreeSet<i64> = BTreeSet::new();
    let mut unknown: BTreeSet<i64> = BTreeSet::new();
    for round in 0..4 {
        let start = 1 + round * THREADS * STRIDE;
        let lines = common::run_and_kill_child_at(
            "crash_child_concurrent_writers",
            &[
                (CHILD_ENV, dir.path().display().to_string()),
                (START_ENV, start.to_string()),
            ],
            std::time::Duration::ZERO,
            "ack ",
            clock.next(150, 400),
        );
        let tagged = |tag: &str| -> Vec<i64> {
            lines
                .iter()
                .filter_map(|l| l.rsplit_once(tag)?.1.trim().parse().ok())
                .collect()
        };
        let acked = tagged("ack ");
        let failed = tagged("fail ");
        common::assert_round_acked(round as usize, acked.len(), MIN_ACKS_PER_ROUND, &lines);
        // Each thread answers in order: its requests after the last answered one were
        // not yet answered, and only the first of them can have been under way.
        for t in 0..THREADS {
            let first = start + t * STRIDE;
            let answered = acked
                .iter()
                .chain(&failed)
                .filter(|&&i| (first..first + STRIDE).contains(&i))
                .count() as i64;
            unknown.insert(first + answered);
        }
        acked_ever.extend(&acked);
        failed_ever.extend(&failed);

        let store = Store::open(dir.path()).unwrap();
        let db = store.d1().database("crash").unwrap();
        let get = db.prepare("SELECT body FROM acks WHERE id = ?");
        for &id in &acked_ever {
            let want = if id % 2 == 0 {
                single_body(id)
            } else {
                format!("b{id}")
            };
            let body = get.bind([id]).first_column("body").unwrap();
            assert_eq!(
                body,
                Some(want.into()),
                "round {round}: acknowledged write {id} lost or changed"
            );
            if id % 2 == 1 {
                let other = get.bind([-id]).first_column("body").unwrap();
                assert_eq!(
                    other,
                    Some(id.into()),
                    "round {round}: the second row of acknowledged batch {id} lost"
                );
            }
        }
        for &id in &failed_ever {
            let body = get.bind([id]).first_column("body").unwrap();
            assert_eq!(body, None, "round {round}: failed request {id} left a row");
        }
        let rows = db.prepare("SELECT id, body FROM acks").raw(false).unwrap();
        for row in rows {
            let id = row[0].as_i64().unwrap();
            let key = if id < 0 { -id } else { id };
            assert!(
                acked_ever.contains(&key) || unknown.contains(&key),
                "round {round}: row {id} was never acknowledged nor under way"
            );
            if id < 0 {
                let pair = get.bind([key]).first_column("body").unwrap();
                assert!(pair.is_some(), "round {round}: half of batch {key} kept");
            } else if id % 2 == 1 {
                let pair = get.bind([-id]).first_column("body").unwrap();
                assert!(pair.is_some(), "round {round}: half of batch {id} kept");
            }
        }
        let integrity = db
            .prepare("PRAGMA quick_check")
            .first_column("quick_check")
            .unwrap();
        assert_eq!(integrity, Some("ok".into()));
    }
}
