//! tristore's D1 next to raw rusqlite (the same libSQL build of SQLite 3.45) on the same
//! kind of file: WAL, synchronous=FULL, foreign keys on, statements cached.
//!
//! The raw side does the least work that gives the caller the same information: it
//! collects rows as owned values with their column names, as tristore does.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rusqlite::types::Value;
use tristore::d1::{D1Database, D1Limits, D1Value};

const SCHEMA: &str = include_str!("../db/migrations/0001_initial.sql");

fn raw_open(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

fn raw_all(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> (Vec<String>, Vec<Vec<Value>>) {
    let mut stmt = conn.prepare_cached(sql).unwrap();
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        out.push(
            (0..width)
                .map(|i| row.get::<_, Value>(i).unwrap())
                .collect(),
        );
    }
    (columns, out)
}

/// Sessions and messages for the read benchmarks: 200 sessions of 25 messages.
fn seed_sql() -> Vec<String> {
    let mut out = Vec::new();
    for s in 0..200 {
        out.push(format!(
            "INSERT INTO chat_sessions VALUES ('s{s}', 'title {s}', {s}, {s})"
        ));
        for m in 0..25 {
            let role = if m % 2 == 0 { "user" } else { "assistant" };
            out.push(format!(
                "INSERT INTO chat_messages VALUES ('m{s}-{m}', 's{s}', '{role}', 'message body {m}', 'p', 'model-{}', {m})",
                m % 3
            ));
        }
    }
    out
}

const JOIN: &str = "SELECT s.id, count(*) AS n, max(m.createdAt) AS last, m.model FROM chat_sessions s \
                    JOIN chat_messages m ON m.sessionId = s.id WHERE s.createdAt < ? GROUP BY s.id, m.model";
const POINT: &str = "SELECT * FROM chat_messages WHERE id = ?";
const INSERT: &str = "INSERT INTO memory_streams VALUES (?, 'stream', 'goal', 'active', 1)";

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = D1Database::open(dir.path().join("tristore.sqlite"), D1Limits::default()).unwrap();
    db.execute_script(SCHEMA, &[]).unwrap();
    db.batch(
        &seed_sql()
            .into_iter()
            .map(|s| db.prepare(s))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let raw = raw_open(&dir.path().join("raw.sqlite"));
    raw.execute_batch(SCHEMA).unwrap();
    raw.execute_batch(&format!("BEGIN; {}; COMMIT;", seed_sql().join(";")))
        .unwrap();

    let mut group = c.benchmark_group("d1");
    group.sample_size(30);
    group.measurement_time(std::time::Duration::from_secs(4));
    group.warm_up_time(std::time::Duration::from_secs(1));

    let mut n = 0u64;
    group.bench_function(BenchmarkId::new("insert_autocommit", "tristore"), |b| {
        let stmt = db.prepare(INSERT);
        b.iter(|| {
            n += 1;
            stmt.bind([format!("t{n}")]).run().unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("insert_autocommit", "rusqlite"), |b| {
        b.iter(|| {
            n += 1;
            raw.prepare_cached(INSERT)
                .unwrap()
                .execute([format!("r{n}")])
                .unwrap()
        })
    });

    group.bench_function(BenchmarkId::new("batch_1000_inserts", "tristore"), |b| {
        let stmt = db.prepare(INSERT);
        b.iter(|| {
            let batch: Vec<_> = (0..1000)
                .map(|_| {
                    n += 1;
                    stmt.bind([format!("b{n}")])
                })
                .collect();
            db.batch(&batch).unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("batch_1000_inserts", "rusqlite"), |b| {
        b.iter(|| {
            let txn = raw.unchecked_transaction().unwrap();
            {
                let mut stmt = txn.prepare_cached(INSERT).unwrap();
                for _ in 0..1000 {
                    n += 1;
                    stmt.execute([format!("b{n}")]).unwrap();
                }
            }
            txn.commit().unwrap()
        })
    });

    group.bench_function(BenchmarkId::new("point_select", "tristore"), |b| {
        let stmt = db.prepare(POINT);
        b.iter(|| stmt.bind(["m42-7"]).all().unwrap())
    });
    group.bench_function(BenchmarkId::new("point_select", "rusqlite"), |b| {
        b.iter(|| raw_all(&raw, POINT, &[Value::Text("m42-7".into())]))
    });

    group.bench_function(BenchmarkId::new("join_group_by", "tristore"), |b| {
        let stmt = db.prepare(JOIN).bind([D1Value::Integer(100)]);
        b.iter(|| stmt.all().unwrap())
    });
    group.bench_function(BenchmarkId::new("join_group_by", "rusqlite"), |b| {
        b.iter(|| raw_all(&raw, JOIN, &[Value::Integer(100)]))
    });
    group.finish();
}

/// Copying a live database for a backup: SQLite's online backup API from a connection
/// inside a read transaction (what `tristore backup` does: the transaction pins the
/// backup's instant) against `VACUUM INTO` (which cannot run inside a transaction, so
/// pinning the instant would mean holding writers for the whole copy). 200,000 rows of
/// 300 hex characters and an index on them, about 130 MB; each copy is fsynced.
fn copies(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.sqlite");
    let raw = raw_open(&source);
    raw.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT); CREATE INDEX t_body ON t (body);",
    )
    .unwrap();
    raw.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) \
         INSERT INTO t SELECT i, hex(randomblob(150)) FROM n",
    )
    .unwrap();
    raw.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let bytes = std::fs::metadata(&source).unwrap().len();
    let target = dir.path().join("copy.sqlite");
    let fresh = || {
        let _ = std::fs::remove_file(&target);
    };
    let sync = |path: &std::path::Path| std::fs::File::open(path).unwrap().sync_all().unwrap();
    let mut group = c.benchmark_group(format!("d1_copy_{}MB", bytes >> 20));
    group.sample_size(10);
    group.bench_function("backup_api_in_read_txn", |b| {
        b.iter(|| {
            fresh();
            let from = rusqlite::Connection::open_with_flags(
                &source,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            from.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
                .unwrap();
            let mut to = rusqlite::Connection::open(&target).unwrap();
            // As `tristore backup` copies: one fsync of the finished file.
            to.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
                .unwrap();
            rusqlite::backup::Backup::new(&from, &mut to)
                .unwrap()
                .step(-1)
                .unwrap();
            drop(to);
            sync(&target);
        })
    });
    group.bench_function("vacuum_into", |b| {
        b.iter(|| {
            fresh();
            raw.execute("VACUUM INTO ?1", [target.to_str().unwrap()])
                .unwrap();
            sync(&target);
        })
    });
    group.finish();
}

criterion_group!(d1, benches, copies);
criterion_main!(d1);
