//! Runs one D1 operation many times, through tristore or through raw rusqlite on the same
//! schema, so that valgrind can count the instructions each costs. On a shared machine
//! where the same criterion case moves by 2x between rounds (`benches/d1.rs`), the count
//! is deterministic: it prices CPU overhead exactly and leaves flushes out.
//!
//! ```text
//! cargo build --release --example d1_instructions
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/d1_instructions tristore-batch 12
//! ```
//!
//! Operations: `tristore-batch` / `rusqlite-batch` (100 single-row inserts in one
//! transaction, new ids each time) and `tristore-point` / `rusqlite-point` (100 point
//! selects by primary key, rows collected with their column names). The setup (schema,
//! 50 sessions of 25 messages) counts too: subtract a run with a smaller N and divide
//! the difference by 100 times the difference in N to get instructions per statement.

use rusqlite::types::Value;
use tristore::d1::{D1Database, D1Limits};

const SCHEMA: &str = include_str!("../db/migrations/0001_initial.sql");
const POINT: &str = "SELECT * FROM chat_messages WHERE id = ?";
const INSERT: &str = "INSERT INTO memory_streams VALUES (?, 'stream', 'goal', 'active', 1)";
const PER_ROUND: u64 = 100;

fn seed() -> Vec<String> {
    let mut out = Vec::new();
    for s in 0..50 {
        out.push(format!(
            "INSERT INTO chat_sessions VALUES ('s{s}', 'title {s}', {s}, {s})"
        ));
        for m in 0..25 {
            out.push(format!(
                "INSERT INTO chat_messages VALUES ('m{s}-{m}', 's{s}', 'user', 'message body {m}', 'p', 'model', {m})"
            ));
        }
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args
        .next()
        .expect("operation: tristore-batch | rusqlite-batch | tristore-point | rusqlite-point");
    let rounds: u64 = args.next().map_or(10, |s| s.parse().expect("rounds"));
    let dir = tempfile::tempdir().unwrap();
    let (side, case) = op.split_once('-').expect("side-case");
    let mut id = 0u64;
    let mut next_id = || {
        id += 1;
        format!("b{id}")
    };
    match side {
        "tristore" => {
            let db = D1Database::open(dir.path().join("d1.sqlite"), D1Limits::default()).unwrap();
            db.execute_script(SCHEMA, &[]).unwrap();
            db.batch(
                &seed()
                    .into_iter()
                    .map(|s| db.prepare(s))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            for _ in 0..rounds {
                if case == "batch" {
                    let stmt = db.prepare(INSERT);
                    let batch: Vec<_> = (0..PER_ROUND).map(|_| stmt.bind([next_id()])).collect();
                    db.batch(&batch).unwrap();
                } else {
                    let stmt = db.prepare(POINT);
                    for _ in 0..PER_ROUND {
                        std::hint::black_box(stmt.bind(["m42-7"]).all().unwrap());
                    }
                }
            }
        }
        "rusqlite" => {
            let raw = rusqlite::Connection::open(dir.path().join("raw.sqlite")).unwrap();
            raw.pragma_update(None, "journal_mode", "WAL").unwrap();
            raw.pragma_update(None, "synchronous", "FULL").unwrap();
            raw.pragma_update(None, "foreign_keys", "ON").unwrap();
            raw.execute_batch(SCHEMA).unwrap();
            raw.execute_batch(&format!("BEGIN; {}; COMMIT;", seed().join(";")))
                .unwrap();
            for _ in 0..rounds {
                if case == "batch" {
                    let txn = raw.unchecked_transaction().unwrap();
                    {
                        let mut stmt = txn.prepare_cached(INSERT).unwrap();
                        for _ in 0..PER_ROUND {
                            stmt.execute([next_id()]).unwrap();
                        }
                    }
                    txn.commit().unwrap();
                } else {
                    for _ in 0..PER_ROUND {
                        let mut stmt = raw.prepare_cached(POINT).unwrap();
                        let columns: Vec<String> =
                            stmt.column_names().into_iter().map(String::from).collect();
                        let mut rows = stmt.query([Value::Text("m42-7".into())]).unwrap();
                        let mut out = Vec::new();
                        while let Some(row) = rows.next().unwrap() {
                            out.push(
                                (0..columns.len())
                                    .map(|i| row.get::<_, Value>(i).unwrap())
                                    .collect::<Vec<_>>(),
                            );
                        }
                        std::hint::black_box((columns, out));
                    }
                }
            }
        }
        _ => panic!("side: tristore or rusqlite"),
    }
}
