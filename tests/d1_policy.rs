//! D1's SQL policy and limits.

mod common;

use std::time::Duration;

use common::{db, err, fresh_db};
use serde_json::json;
use tristore::d1::D1Limits;

#[test]
fn transactions_are_refused_with_a_pointer_to_batch() {
    let (_d, db) = db();
    for sql in [
        "BEGIN",
        "BEGIN TRANSACTION",
        "COMMIT",
        "SAVEPOINT a",
        "RELEASE a",
        "ROLLBACK",
    ] {
        let e = err(db.prepare(sql).run());
        assert!(
            e.starts_with("D1_ERROR: To execute a transaction, use the batch() method"),
            "{sql}: {e}"
        );
        assert!(e.ends_with(": SQLITE_AUTH"), "{e}");
    }
}

/// tristore runs BEGIN, COMMIT and ROLLBACK itself around every write; a user statement
/// with the same text must still meet the policy, not reuse tristore's statement.
#[test]
fn transaction_statements_are_refused_after_tristore_ran_the_same_text() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (x)").unwrap();
    // A failed write makes tristore run its ROLLBACK too.
    assert!(db.prepare("INSERT INTO nosuch VALUES (1)").run().is_err());
    for sql in [
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "commit",
        "END",
        "COMMIT TRANSACTION",
    ] {
        // A batch and a script go straight to the writer, where tristore's own run.
        for e in [
            err(db.batch(&[db.prepare(sql)])),
            err(db.execute_script(sql, &[])),
            err(db.prepare(sql).run()),
        ] {
            assert!(e.contains("use the batch() method"), "{sql}: {e}");
        }
    }
}

#[test]
fn a_batch_stays_atomic_when_it_holds_a_commit_or_rollback() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (x)").unwrap();
    let e = err(db.batch(&[
        db.prepare("INSERT INTO t VALUES (1)"),
        db.prepare("COMMIT"),
        db.prepare("INSERT INTO nosuch VALUES (1)"),
    ]));
    assert!(e.contains("use the batch() method"), "{e}");
    assert!(db.prepare("INSERT INTO nosuch VALUES (1)").run().is_err());
    assert!(db
        .batch(&[
            db.prepare("INSERT INTO t VALUES (1)"),
            db.prepare("ROLLBACK"),
            db.prepare("INSERT INTO t VALUES (2)"),
        ])
        .is_err());
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(0)),
        "nothing of a failed batch is kept"
    );
}

#[test]
fn foreign_keys_stay_enforced_when_a_batch_tries_to_commit_early() {
    let (_d, db) = db();
    db.exec("CREATE TABLE parent (id INTEGER PRIMARY KEY)\nCREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES parent(id))").unwrap();
    assert!(db
        .batch(&[
            db.prepare("COMMIT"),
            db.prepare("PRAGMA foreign_keys = OFF"),
            db.prepare("INSERT INTO child VALUES (1, 999)"),
        ])
        .is_err());
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM child")
            .first_column("n")
            .unwrap(),
        Some(json!(0)),
        "no orphan row"
    );
}

#[test]
fn pragma_allowlist() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    for ok in [
        "PRAGMA table_list",
        "PRAGMA table_info(t)",
        "PRAGMA table_xinfo(t)",
        "PRAGMA index_list(t)",
        "PRAGMA quick_check",
        "PRAGMA foreign_key_check",
        "PRAGMA foreign_key_list(t)",
        "PRAGMA page_size",
        "PRAGMA data_version",
        "PRAGMA optimize",
        "PRAGMA case_sensitive_like = on",
        "PRAGMA defer_foreign_keys = on",
    ] {
        db.prepare(ok).all().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for denied in [
        "PRAGMA journal_mode = DELETE",
        "PRAGMA page_size = 8192",
        "PRAGMA writable_schema = 1",
        "PRAGMA synchronous = OFF",
    ] {
        assert_eq!(
            err(db.prepare(denied).all()),
            "D1_ERROR: not authorized: SQLITE_AUTH",
            "{denied}"
        );
    }
}

#[test]
fn attach_is_refused() {
    let (dir, db) = db();
    let other = dir.path().join("other.sqlite");
    let e = err(db
        .prepare(format!("ATTACH DATABASE '{}' AS o", other.display()))
        .run());
    assert!(
        e.ends_with("SQLITE_AUTH") || e.contains("too many attached databases"),
        "{e}"
    );
    assert!(!other.exists());
}

#[test]
fn cf_names_are_reserved() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (x)").unwrap();
    for sql in [
        "CREATE TABLE _cf_mine (x)",
        "CREATE TABLE _CF_KV2 (x)",
        "CREATE INDEX _cf_i ON t(x)",
    ] {
        let e = err(db.prepare(sql).run());
        assert!(e.contains("reserved by D1"), "{sql}: {e}");
    }
}

#[test]
fn foreign_keys_are_always_enforced_but_can_be_deferred() {
    let (_d, db) = db();
    db.exec("CREATE TABLE parent (id INTEGER PRIMARY KEY)\nCREATE TABLE child (pid INTEGER REFERENCES parent(id))").unwrap();
    assert_eq!(
        err(db.prepare("INSERT INTO child VALUES (1)").run()),
        "D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"
    );
    // Turning them off has no effect: a PRAGMA only lasts for its own transaction.
    db.prepare("PRAGMA foreign_keys = off").run().unwrap();
    assert!(db.prepare("INSERT INTO child VALUES (1)").run().is_err());
    // Deferred checks let a batch insert the child first.
    db.batch(&[
        db.prepare("PRAGMA defer_foreign_keys = on"),
        db.prepare("INSERT INTO child VALUES (2)"),
        db.prepare("INSERT INTO parent VALUES (2)"),
    ])
    .unwrap();
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM child")
            .first_column("n")
            .unwrap(),
        Some(json!(1))
    );
}

#[test]
fn pragma_toggles_last_for_one_request() {
    let (_d, db) = db();
    db.prepare("PRAGMA case_sensitive_like = on").run().unwrap();
    let like = db
        .prepare("SELECT 'ABC' LIKE 'abc' AS m")
        .first_column("m")
        .unwrap();
    assert_eq!(
        like,
        Some(json!(1)),
        "case-insensitive again after the PRAGMA's request"
    );
}

#[test]
fn bound_parameter_limit() {
    let (_d, db) = db();
    let sql = |n: usize| format!("SELECT {}", vec!["?"; n].join(","));
    db.prepare(sql(100)).bind(vec![1; 100]).all().unwrap();
    let e = err(db.prepare(sql(101)).bind(vec![1; 101]).all());
    assert!(e.starts_with("D1_ERROR: too many SQL variables"), "{e}");
    assert!(e.ends_with(": SQLITE_ERROR"), "{e}");
}

#[test]
fn statement_value_column_argument_and_pattern_limits() {
    let (_d, db) = db();
    let long = format!("SELECT 1 -- {}", "x".repeat(100_000));
    assert_eq!(
        err(db.prepare(long).all()),
        "D1_ERROR: statement too long: SQLITE_TOOBIG"
    );
    db.prepare("SELECT length(?) AS n")
        .bind(["x".repeat(2_000_000)])
        .all()
        .unwrap();
    assert_eq!(
        err(db.prepare("SELECT ?").bind(["x".repeat(2_000_001)]).all()),
        "D1_ERROR: string or blob too big: SQLITE_TOOBIG"
    );
    assert_eq!(
        err(db.prepare("SELECT zeroblob(2000001)").all()),
        "D1_ERROR: string or blob too big: SQLITE_TOOBIG"
    );
    let cols = |n: usize| {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    db.prepare(format!("CREATE TABLE wide ({})", cols(100)))
        .run()
        .unwrap();
    assert_eq!(
        err(db
            .prepare(format!("CREATE TABLE wider ({})", cols(101)))
            .run()),
        "D1_ERROR: too many columns on wider: SQLITE_ERROR"
    );
    let args = |n: usize| vec!["1"; n].join(",");
    db.prepare(format!("SELECT max({})", args(32)))
        .all()
        .unwrap();
    assert!(err(db.prepare(format!("SELECT max({})", args(33))).all())
        .contains("too many arguments on function max"));
    db.prepare(format!("SELECT 'a' LIKE '{}'", "a".repeat(50)))
        .all()
        .unwrap();
    assert_eq!(
        err(db
            .prepare(format!("SELECT 'a' LIKE '{}'", "a".repeat(51)))
            .all()),
        "D1_ERROR: LIKE or GLOB pattern too complex: SQLITE_ERROR"
    );
}

#[test]
fn queries_past_the_time_limit_are_interrupted() {
    let limits = D1Limits {
        query_timeout: Duration::from_millis(200),
        ..D1Limits::default()
    };
    let (_d, db) = fresh_db(limits);
    let forever =
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c";
    assert_eq!(
        err(db.prepare(forever).all()),
        "D1_ERROR: D1 DB storage operation exceeded timeout which caused object to be reset.: SQLITE_INTERRUPT"
    );
    db.exec("CREATE TABLE t (x)").unwrap();
    let write = format!("INSERT INTO t {forever}");
    assert!(err(db.prepare(write).run()).contains("exceeded timeout"));
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(0))
    );
}

/// The limit covers a whole request, not each statement: a script or an import of
/// many quick statements stops at it too, and keeps nothing.
#[test]
fn scripts_and_imports_stop_at_the_time_limit_however_quick_each_statement_is() {
    let limits = D1Limits {
        query_timeout: Duration::from_millis(100),
        ..D1Limits::default()
    };
    let (_d, db) = fresh_db(limits);
    db.exec("CREATE TABLE t (x)").unwrap();
    // About a second of work without the limit.
    let script = "INSERT INTO t VALUES (1);\n".repeat(400_000);
    for e in [
        err(db.execute_script(&script, &[])),
        err(db.import(&script)),
    ] {
        // An import's error also names the statement it stopped at.
        assert!(
            e.starts_with("D1_ERROR: D1 DB storage operation exceeded timeout which caused object to be reset.")
                && e.ends_with(": SQLITE_INTERRUPT"),
            "{e}"
        );
    }
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(0))
    );
}

#[test]
fn an_interrupted_request_stops_and_keeps_nothing() {
    let (_d, db) = db();
    db.exec("CREATE TABLE t (x)").unwrap();
    let interrupt = tristore::d1::Interrupt::new();
    let handle = db.interruptible(&interrupt);
    let stopper = {
        let interrupt = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            interrupt.interrupt();
        })
    };
    let forever =
        "INSERT INTO t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n FROM c";
    let e = err(handle.prepare(forever).run());
    stopper.join().unwrap();
    assert_eq!(e, "D1_ERROR: The request was interrupted before it finished (its client went away); nothing it wrote was kept: SQLITE_INTERRUPT");
    assert!(err(handle.prepare("SELECT 1").all()).contains("interrupted"));
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM t")
            .first_column("n")
            .unwrap(),
        Some(json!(0)),
        "other handles are not interrupted, and nothing was kept"
    );
}

#[test]
fn database_size_limit() {
    let limits = D1Limits {
        max_database_size: 64 * 1024,
        ..D1Limits::default()
    };
    let (_d, db) = fresh_db(limits);
    db.exec("CREATE TABLE t (x)").unwrap();
    let e = err(db.prepare("INSERT INTO t VALUES (zeroblob(100000))").run());
    assert_eq!(e, "D1_ERROR: database or disk is full: SQLITE_FULL");
    db.prepare("INSERT INTO t VALUES (zeroblob(1000))")
        .run()
        .unwrap();
}
