//! The D1 binding's semantics: binding, results, meta, batch, exec and errors.

mod common;

use common::{db, err};
use serde_json::json;
use tristore::d1::D1Value;

#[test]
fn bind_replaces_parameters_and_supports_numbered_placeholders() {
    let (_d, db) = db();
    let stmt = db.prepare("SELECT ?1 AS a, ?2 AS b, ?1 AS c");
    let first = stmt.bind([1, 2]);
    let second = first.bind([3, 4]);
    assert_eq!(
        json!(first.first().unwrap()),
        json!({"a": 1, "b": 2, "c": 1})
    );
    assert_eq!(
        json!(second.first().unwrap()),
        json!({"a": 3, "b": 4, "c": 3})
    );
    let anon = db.prepare("SELECT ? AS x, ? AS y").bind(["p", "q"]);
    assert_eq!(json!(anon.first().unwrap()), json!({"x": "p", "y": "q"}));
}

#[test]
fn numbers_bind_as_production_does() {
    let (_d, db) = db();
    let row = db
        .prepare("SELECT typeof(?1) AS a, typeof(?2) AS b, typeof(?3) AS c, ?3 AS c_value, typeof(?4) AS d")
        .bind_json(&[json!(1.0), json!(1.5), json!(true), json!(null)])
        .unwrap()
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(
        json!(row),
        json!({"a": "integer", "b": "real", "c": "integer", "c_value": 1, "d": "null"})
    );
}

#[test]
fn blobs_round_trip_as_byte_arrays_and_objects_are_refused_at_bind() {
    let (_d, db) = db();
    let row = db
        .prepare("SELECT ? AS b, typeof(?1) AS t")
        .bind_json(&[json!([0, 127, 255])])
        .unwrap()
        .first()
        .unwrap();
    assert_eq!(json!(row), json!({"b": [0, 127, 255], "t": "blob"}));
    let e = err(db.prepare("SELECT ?").bind_json(&[json!({"k": 1})]));
    assert_eq!(
        e,
        "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'"
    );
}

#[test]
fn first_column_semantics() {
    let (_d, db) = db();
    let q = db.prepare("SELECT NULL AS n, 5 AS five");
    assert_eq!(q.first_column("n").unwrap(), Some(serde_json::Value::Null));
    assert_eq!(q.first_column("five").unwrap(), Some(json!(5)));
    assert_eq!(
        err(q.first_column("nope")),
        "D1_COLUMN_NOTFOUND: Column not found (nope)"
    );
    let none = db.prepare("SELECT 1 AS x WHERE 0");
    assert_eq!(none.first_column("nope").unwrap(), None);
    assert_eq!(none.first().unwrap(), None);
}

#[test]
fn raw_keeps_duplicates_and_header_even_without_rows() {
    let (_d, db) = db();
    let raw = db.prepare("SELECT 1 AS a, 2 AS a").raw(true).unwrap();
    assert_eq!(json!(raw), json!([["a", "a"], [1, 2]]));
    let empty = db.prepare("SELECT 1 AS a WHERE 0").raw(true).unwrap();
    assert_eq!(json!(empty), json!([["a"]]));
    // all(): one key per name, last value, first position.
    let all = db.prepare("SELECT 1 AS a, 2 AS b, 3 AS a").all().unwrap();
    assert_eq!(
        serde_json::to_string(&all.results()).unwrap(),
        r#"[{"a":3,"b":2}]"#
    );
    assert_eq!(
        serde_json::to_value(&all).unwrap()["results"],
        json!([{"a": 3, "b": 2}])
    );
}

#[test]
fn meta_changes_count_trigger_changes_and_last_row_id_survives_non_inserts() {
    let (_d, db) = db();
    // `size_after` is the database's page_count × page_size, read here through a second
    // SQLite connection to the same file (WAL included).
    let other = rusqlite::Connection::open(_d.path().join("test.sqlite")).unwrap();
    let size = || -> u64 {
        let pragma = |name: &str| -> u64 {
            other
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        pragma("page_count") * pragma("page_size")
    };
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)\nCREATE TABLE log (msg TEXT)\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES ('x'); END")
        .unwrap();
    let ins = db
        .prepare("INSERT INTO t (v) VALUES (?)")
        .bind(["a"])
        .run()
        .unwrap();
    assert_eq!(ins.meta.changes, 2, "the trigger's insert counts");
    assert_eq!(ins.meta.last_row_id, 1);
    assert!(ins.meta.changed_db);
    let ddl = db.prepare("CREATE TABLE other (x)").run().unwrap();
    assert_eq!(ddl.meta.last_row_id, 1, "not reset by a non-insert");
    let read = db.prepare("SELECT * FROM t").all().unwrap();
    assert_eq!(read.meta.last_row_id, 1);
    assert!(!read.meta.changed_db);
    assert_eq!(ddl.meta.size_after, size());
    assert_eq!(read.meta.size_after, ddl.meta.size_after);
    // A write that adds pages grows it by whole pages, as the file does.
    let page = db.prepare("PRAGMA page_size").first().unwrap().unwrap();
    let page = json!(page)["page_size"].as_u64().unwrap();
    let big = db
        .prepare("INSERT INTO other (x) VALUES (?)")
        .bind(["y".repeat(20_000)])
        .run()
        .unwrap();
    assert_eq!(big.meta.size_after, size());
    assert!(big.meta.size_after >= ddl.meta.size_after + 4 * page);
    assert_eq!(big.meta.size_after % page, 0);
    assert_eq!(read.meta.served_by, "tristore.db");
    assert_eq!(read.meta.timings.sql_duration_ms, read.meta.duration);
}

#[test]
fn rows_read_and_written_on_representative_queries() {
    let (_d, db) = db();
    db.exec("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, team INTEGER)\nCREATE INDEX u_team ON u(team)\nCREATE TABLE p (id INTEGER PRIMARY KEY, uid INTEGER, title TEXT)")
        .unwrap();
    // Insert with two indexes (the UNIQUE one and u_team): the row plus one entry each.
    let ins = db
        .prepare("INSERT INTO u (email, team) VALUES (?, ?)")
        .bind(["a@x", "1"])
        .run()
        .unwrap();
    assert_eq!((ins.meta.rows_read, ins.meta.rows_written), (0, 3));
    let stmts: Vec<_> = (2..=100)
        .map(|i| {
            db.prepare("INSERT INTO u (email, team) VALUES (?, ?)")
                .bind([D1Value::from(format!("{i}@x")), D1Value::from(i % 5)])
        })
        .collect();
    db.batch(&stmts).unwrap();
    let posts: Vec<_> = (1..=300)
        .map(|i| {
            db.prepare("INSERT INTO p (uid, title) VALUES (?, ?)")
                .bind([i % 100 + 1, i])
        })
        .collect();
    db.batch(&posts).unwrap();

    let point = db
        .prepare("SELECT * FROM u WHERE id = ?")
        .bind([7])
        .all()
        .unwrap();
    assert_eq!((point.meta.rows_read, point.meta.rows_written), (1, 0));
    let by_index = db
        .prepare("SELECT * FROM u WHERE email = ?")
        .bind(["7@x"])
        .all()
        .unwrap();
    assert_eq!(by_index.meta.rows_read, 1);
    let scan = db
        .prepare("SELECT count(*) FROM p WHERE title LIKE '%1%'")
        .all()
        .unwrap();
    assert_eq!(scan.meta.rows_read, 300);
    // A bare count(*) is answered by SQLite's Count opcode; workerd's D1 counts the rows
    // counted (libSQL alone would report the b-tree pages visited).
    for sql in ["SELECT count(*) FROM p", "select COUNT(*) AS n from p"] {
        let count = db.prepare(sql).all().unwrap();
        assert_eq!(count.meta.rows_read, 300, "{sql}");
    }
    let in_batch = db.batch(&[db.prepare("SELECT count(*) FROM u")]).unwrap();
    assert_eq!(in_batch[0].meta.rows_read, 100);
    let join = db
        .prepare("SELECT u.team, count(*) FROM u JOIN p ON p.uid = u.id GROUP BY u.team")
        .all()
        .unwrap();
    // Scan of p (300), each user by primary key (300), the GROUP BY sorter (300):
    // the VDBE cursor counts production D1 reports, not rows returned.
    assert_eq!(join.meta.rows_read, 900);
    assert_eq!(join.rows.len(), 5);
}

#[test]
fn batch_is_one_transaction() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    let ins = db.prepare("INSERT INTO t (v) VALUES (?)");
    let e = err(db.batch(&[ins.bind(["a"]), ins.bind([None::<String>]), ins.bind(["c"])]));
    assert_eq!(
        e,
        "D1_ERROR: NOT NULL constraint failed: t.v: SQLITE_CONSTRAINT"
    );
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(0))
    );
    let ok = db
        .batch(&[
            ins.bind(["a"]),
            ins.bind(["b"]),
            db.prepare("SELECT v FROM t ORDER BY id"),
        ])
        .unwrap();
    assert_eq!(ok.len(), 3);
    assert_eq!(ok[1].meta.last_row_id, 2);
    assert_eq!(
        serde_json::to_value(&ok[2]).unwrap()["results"],
        json!([{"v": "a"}, {"v": "b"}])
    );
    assert_eq!(
        err(db.batch(&[])),
        "D1_ERROR: No SQL statements detected.: SQLITE_ERROR"
    );
}

#[test]
fn exec_splits_lines_and_reports_the_failing_line() {
    let (_d, db) = db();
    let started = std::time::Instant::now();
    let r = db
        .exec("CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);")
        .unwrap();
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r.count, 3);
    // The statements' time in milliseconds: some, and no more than the call took.
    assert!(
        r.duration > 0.0 && r.duration <= wall,
        "{} of {wall} ms",
        r.duration
    );
    // A statement that takes a while: the duration is its time, not seconds or µs.
    let started = std::time::Instant::now();
    let slow = db
        .exec("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 400000) SELECT sum(i) FROM c")
        .unwrap();
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    assert!(wall > 5.0, "the query was meant to take a while: {wall} ms");
    assert!(
        slow.duration <= wall && slow.duration >= wall / 2.0,
        "{} of {wall} ms",
        slow.duration
    );
    let e = err(db.exec("INSERT INTO t VALUES (3);\nINSERT INTO nope VALUES (1);"));
    assert_eq!(e, "D1_EXEC_ERROR: Error in line 2: INSERT INTO nope VALUES (1);: no such table: nope: SQLITE_ERROR");
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(2)),
        "exec is all or nothing"
    );
    // Comment-only and blank lines are skipped; input with no statement at all is an error.
    assert_eq!(
        db.exec("-- seed data\n\nINSERT INTO t VALUES (4);")
            .unwrap()
            .count,
        1
    );
    assert_eq!(
        err(db.exec("  -- nothing\n")),
        "D1_EXEC_ERROR: Error in line 1: -- nothing: No SQL statements detected.: SQLITE_ERROR"
    );
    // A statement spread over lines is sent in fragments, as the binding sends it.
    let e = err(db.exec("SELECT\n1"));
    assert!(
        e.starts_with("D1_EXEC_ERROR: Error in line 1: SELECT: incomplete input"),
        "{e}"
    );
}

#[test]
fn sql_errors_carry_sqlite_text_and_code() {
    let (_d, db) = db();
    db.exec("CREATE TABLE users (email TEXT UNIQUE)").unwrap();
    db.prepare("INSERT INTO users VALUES ('a')").run().unwrap();
    assert_eq!(
        err(db.prepare("INSERT INTO users VALUES ('a')").run()),
        "D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT"
    );
    assert_eq!(
        err(db.prepare("SELEC 1").run()),
        "D1_ERROR: near \"SELEC\": syntax error at offset 0: SQLITE_ERROR"
    );
    assert_eq!(
        err(db.prepare("SELECT ?, ?").bind([1]).all()),
        "D1_ERROR: Wrong number of parameter bindings for SQL query.: SQLITE_RANGE"
    );
}

#[test]
fn several_statements_in_one_prepare_return_the_last_rows() {
    let (_d, db) = db();
    let r = db
        .prepare("CREATE TABLE t (x); INSERT INTO t VALUES (?); SELECT x FROM t")
        .bind([9])
        .all()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap()["results"],
        json!([{"x": 9}])
    );
    let script = db
        .execute_script(
            "INSERT INTO t VALUES (1); SELECT count(*) AS n FROM t;",
            &[],
        )
        .unwrap();
    assert_eq!(script.len(), 2);
    assert_eq!(script[1].results()[0]["n"], json!(2));
}

#[test]
fn fts5_and_json_functions_are_available() {
    let (_d, db) = db();
    db.exec("CREATE VIRTUAL TABLE docs USING fts5(title, body)")
        .unwrap();
    db.prepare("INSERT INTO docs VALUES (?, ?)")
        .bind(["hello", "vector search locally"])
        .run()
        .unwrap();
    let hit = db
        .prepare("SELECT title FROM docs WHERE docs MATCH ?")
        .bind(["locally"])
        .first_column("title")
        .unwrap();
    assert_eq!(hit, Some(json!("hello")));
    let j = db
        .prepare("SELECT json_extract(?, '$.a.b') AS v")
        .bind([r#"{"a":{"b":[1,2]}}"#])
        .first_column("v")
        .unwrap();
    assert_eq!(j, Some(json!("[1,2]")));
}

#[test]
fn readers_proceed_while_a_writer_writes() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (x)\nINSERT INTO t VALUES (1)")
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            // A write long enough that a reader blocked behind it would notice.
            db.prepare("INSERT INTO t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3000000) SELECT n FROM c")
                .run()
                .unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    // Wait until the write is visibly under way (its pages spill into the WAL), rather
    // than guessing with a sleep.
    let wal = db.path().with_extension("sqlite-wal");
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 4 << 20 && !writer.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let r = db
        .prepare("SELECT count(*) AS n FROM t")
        .first_column("n")
        .unwrap();
    let finished_before_read = done.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(r, Some(json!(1)), "readers see the last committed state");
    writer.join().unwrap();
    assert!(
        !finished_before_read,
        "the read completed while the write was still running"
    );
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(3000001))
    );
}
