//! Durability: a `run` or `batch` that returned survives kill -9.
//!
//! The test re-runs its own binary as a child that writes continuously and prints each
//! acknowledged write; the parent kills it with SIGKILL at a random moment, reopens the
//! store and checks that every acknowledged write is there.

mod common;

use tristore::Store;

const CHILD_ENV: &str = "TRISTORE_CRASH_CHILD_DIR";

/// The writer, run only as the child of `acknowledged_writes_survive_kill_9`.
#[test]
#[ignore = "run by acknowledged_writes_survive_kill_9 as a child process"]
fn crash_child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by the parent test");
    let store = Store::open(&dir).unwrap();
    let db = store.d1().database("crash").unwrap();
    let insert = db.prepare("INSERT INTO acks (id, body) VALUES (?, ?)");
    for i in 0i64.. {
        if i % 2 == 0 {
            insert
                .bind([i.into(), tristore::d1::D1Value::from("x".repeat(500))])
                .run()
                .unwrap();
            println!("{i}");
        } else {
            // A batch of two: both rows, or neither.
            db.batch(&[
                insert.bind([i.into(), tristore::d1::D1Value::from("b")]),
                insert.bind([-i, 0]),
            ])
            .unwrap();
            println!("{i}");
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
    let mut total_acked = 0;
    for round in 0..4 {
        let lines = common::run_and_kill_child(
            "crash_child_writer",
            &[(CHILD_ENV, dir.path().display().to_string())],
            clock.next(150, 400),
        );
        let acked: Vec<i64> = lines.iter().filter_map(|l| l.trim().parse().ok()).collect();

        let store = Store::open(dir.path()).unwrap();
        let db = store.d1().database("crash").unwrap();
        for &id in &acked {
            let found = db
                .prepare("SELECT count(*) AS n FROM acks WHERE id = ?")
                .bind([id])
                .first_column("n")
                .unwrap();
            assert_eq!(
                found,
                Some(1.into()),
                "round {round}: acknowledged write {id} lost"
            );
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
        let integrity = db
            .prepare("PRAGMA quick_check")
            .first_column("quick_check")
            .unwrap();
        assert_eq!(integrity, Some("ok".into()));
        // The next round's child starts from scratch ids: clear the table.
        db.prepare("DELETE FROM acks").run().unwrap();
        total_acked += acked.len();
    }
    assert!(total_acked > 0, "the children acknowledged no write at all");
}
