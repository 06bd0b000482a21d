//! Group commit against a serial model.
//!
//! Many threads send random write requests (single statements and batches) to one
//! database at once, so that they share transactions; some fail on purpose (duplicate
//! keys, CHECK and deferred foreign key violations, bad SQL, `INSERT OR ROLLBACK`
//! conflicts, which roll back the whole shared transaction). Every successful request
//! first appends a marker row to an AUTOINCREMENT log, whose ids give the order the
//! requests took effect in. The model then replays the successful requests alone, one
//! at a time and in that order, on a fresh database: each must succeed with the same
//! rows and the same `meta` (changes, last_row_id, rows read and written, size_after,
//! changed_db) it was answered with, and both databases must end equal. A failed
//! request must have left nothing behind.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tristore::d1::{D1Database, D1Limits, D1Result, D1Value};

const SCHEMA: &str = "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT NOT NULL)\n\
    CREATE TABLE kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0), pad TEXT)\n\
    CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES kv(k) DEFERRABLE INITIALLY DEFERRED)";

const THREADS: usize = 8;
const REQUESTS_PER_THREAD: usize = 80;
const KEYS: i64 = 40;

/// One statement of a request: SQL and its parameters.
type Statement = (&'static str, Vec<D1Value>);

/// A request's tag, its statements and what the database answered.
type Answer = (String, Vec<Statement>, Result<Vec<D1Result>, String>);

/// A random statement on the shared keys; whether it fails depends on the state.
fn statement(rng: &mut StdRng) -> Statement {
    let k = D1Value::Integer(rng.gen_range(0..KEYS));
    let n = D1Value::Integer(rng.gen_range(-3..10));
    match rng.gen_range(0..100) {
        // Fails when the key exists.
        0..=29 => (
            "INSERT INTO kv (k, v, pad) VALUES (?, ?, ?)",
            vec![k, n, D1Value::Text("p".repeat(rng.gen_range(0..600)))],
        ),
        // Fails when v would go below zero.
        30..=54 => ("UPDATE kv SET v = v + ? WHERE k = ?", vec![n, k]),
        55..=64 => ("DELETE FROM kv WHERE k = ? AND v < 3", vec![k]),
        // Fails at the end of the request when the parent does not exist.
        65..=74 => (
            "INSERT INTO child (parent) VALUES (?)",
            vec![D1Value::Integer(rng.gen_range(0..KEYS * 2))],
        ),
        // Fails always.
        75..=79 => ("INSERT INTO nope VALUES (?)", vec![k]),
        // On a conflict SQLite rolls back the whole (shared) transaction.
        80..=84 => ("INSERT OR ROLLBACK INTO kv (k, v) VALUES (?, 1)", vec![k]),
        85..=89 => ("SELECT count(*) AS n, sum(v) AS s FROM kv", vec![]),
        _ => (
            "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
            vec![k, D1Value::Integer(5)],
        ),
    }
}

/// A request: the marker insert, then one to three random statements.
fn request(rng: &mut StdRng, who: &str) -> Vec<Statement> {
    let mut out = vec![(
        "INSERT INTO log (who) VALUES (?)",
        vec![D1Value::Text(who.to_owned())],
    )];
    for _ in 0..rng.gen_range(1..=3) {
        out.push(statement(rng));
    }
    out
}

/// Sends a request as one `batch()`: all its statements or none.
fn send(db: &D1Database, request: &[Statement]) -> Result<Vec<D1Result>, String> {
    let statements: Vec<_> = request
        .iter()
        .map(|(sql, params)| db.prepare(*sql).bind(params.clone()))
        .collect();
    db.batch(&statements).map_err(|e| e.to_string())
}

/// The parts of a result that must not depend on what ran beside it.
fn comparable(results: &[D1Result]) -> Vec<String> {
    results
        .iter()
        .map(|r| {
            let m = &r.meta;
            format!(
                "rows={:?} changes={} last_row_id={} changed_db={} size_after={} read={} written={}",
                r.rows, m.changes, m.last_row_id, m.changed_db, m.size_after, m.rows_read, m.rows_written
            )
        })
        .collect()
}

fn table(db: &D1Database, sql: &str) -> Vec<Vec<serde_json::Value>> {
    db.prepare(sql).raw(false).unwrap()
}

#[test]
fn concurrent_requests_match_a_serial_model() {
    for seed in [1u64, 2, 3] {
        check_seed(seed);
    }
}

fn check_seed(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = D1Database::open(dir.path().join("shared.sqlite"), D1Limits::default()).unwrap();
    db.exec(SCHEMA).unwrap();
    let requests: Vec<Vec<(String, Vec<Statement>)>> = (0..THREADS)
        .map(|t| {
            let mut rng = StdRng::seed_from_u64(seed * 1000 + t as u64);
            (0..REQUESTS_PER_THREAD)
                .map(|i| {
                    let who = format!("t{t}-{i}");
                    let req = request(&mut rng, &who);
                    (who, req)
                })
                .collect()
        })
        .collect();
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|mine| {
                let db = db.clone();
                scope.spawn(move || {
                    mine.iter()
                        .map(|(who, req)| (who.clone(), req.clone(), send(&db, req)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    // The order the successful requests took effect in.
    let log: BTreeMap<i64, String> = table(&db, "SELECT id, who FROM log")
        .into_iter()
        .map(|row| {
            (
                row[0].as_i64().unwrap(),
                row[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by_who: BTreeMap<&str, _> = answers
        .iter()
        .map(|(who, req, answer)| (who.as_str(), (req, answer)))
        .collect();
    let succeeded = answers.iter().filter(|a| a.2.is_ok()).count();
    let failed = answers.len() - succeeded;
    assert_eq!(
        log.len(),
        succeeded,
        "seed {seed}: the log holds {} markers for {succeeded} successful requests",
        log.len()
    );
    assert!(
        succeeded > 50 && failed > 50,
        "seed {seed}: {succeeded} succeeded and {failed} failed; the mix tests too little"
    );

    let model = D1Database::open(dir.path().join("model.sqlite"), D1Limits::default()).unwrap();
    model.exec(SCHEMA).unwrap();
    for (id, who) in &log {
        let (req, answer) = by_who[who.as_str()];
        let answer = answer.as_ref().unwrap_or_else(|e| {
            panic!("seed {seed}: {who} failed ({e}) yet its marker {id} is kept")
        });
        let alone = send(&model, req).unwrap_or_else(|e| {
            panic!("seed {seed}: {who} succeeded together but fails alone: {e}")
        });
        assert_eq!(
            comparable(answer),
            comparable(&alone),
            "seed {seed}: {who} answered differently than it runs alone"
        );
    }
    for sql in [
        "SELECT * FROM log",
        "SELECT * FROM kv",
        "SELECT * FROM child",
    ] {
        assert_eq!(table(&db, sql), table(&model, sql), "seed {seed}: {sql}");
    }
    for (who, _, answer) in &answers {
        if let Err(e) = answer {
            assert!(
                e.starts_with("D1_ERROR: "),
                "seed {seed}: {who} failed in an unexpected way: {e}"
            );
        }
    }
    assert_eq!(
        db.prepare("PRAGMA foreign_key_check")
            .all()
            .unwrap()
            .rows
            .len(),
        0,
        "seed {seed}: a deferred foreign key violation was committed"
    );
}
