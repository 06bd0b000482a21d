//! Durability: a `run` or `batch` that returned survives kill -9.
//!
//! The test re-runs its own binary as a child that writes continuously and prints each
//! acknowledged write; the parent kills it with SIGKILL at a random moment, reopens the
//! store and checks that every acknowledged write is there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let mut seed = std::process::id() as u64 ^ Instant::now().elapsed().subsec_nanos() as u64;
    let mut total_acked = 0;
    for round in 0..4 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(150 + (seed >> 33) % 400);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.trim().parse::<i64>().ok())
                .collect::<Vec<i64>>()
        });
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acked = reader.join().unwrap();

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
