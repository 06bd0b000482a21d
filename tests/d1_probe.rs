//! The statements of `shared/bench/miniflare_probe.mjs`, whose outputs workerd (which
//! counts rows with the same VDBE counters as production D1) recorded in
//! `shared/spec/wire-captures/miniflare_probe.json`. Our results must match them.

use serde_json::{json, Value};
use tristore::d1::{D1Database, D1Limits};

fn probe_capture() -> Value {
    let text = include_str!("fixtures/miniflare_probe.json");
    serde_json::from_str::<Value>(text).unwrap()["d1"].clone()
}

#[test]
fn matches_workerd_on_the_probe_statements() {
    let dir = tempfile::tempdir().unwrap();
    let db = D1Database::open(dir.path().join("probe.sqlite"), D1Limits::default()).unwrap();
    let want = probe_capture();

    let created = db
        .exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER); CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER REFERENCES users(id), title TEXT, score REAL)")
        .unwrap();
    assert_eq!(
        created.count,
        want["create"]["count"].as_u64().unwrap() as usize
    );

    let ins = db.prepare("INSERT INTO posts (user_id, title, score) VALUES (?, ?, ?)");
    let mut stmts = vec![db
        .prepare("INSERT INTO users VALUES (?1, ?2, ?3), (?4, ?5, ?6)")
        .bind_json(&[
            json!(1),
            json!("ann"),
            json!(30),
            json!(2),
            json!("bob"),
            json!(null),
        ])
        .unwrap()];
    for i in 0..1000 {
        stmts.push(
            ins.bind_json(&[
                json!(1 + (i % 2)),
                json!(format!("post {i}")),
                json!(i as f64 / 10.0),
            ])
            .unwrap(),
        );
    }
    let batch = db.batch(&stmts).unwrap();
    assert_eq!(batch.len(), want["batch_len"].as_u64().unwrap() as usize);
    let counters = |m: &tristore::d1::D1Meta| {
        json!({
            "changes": m.changes, "last_row_id": m.last_row_id, "changed_db": m.changed_db,
            "rows_read": m.rows_read, "rows_written": m.rows_written,
        })
    };
    let want_counters = |v: &Value| {
        let m = &v["meta"];
        json!({
            "changes": m["changes"], "last_row_id": m["last_row_id"], "changed_db": m["changed_db"],
            "rows_read": m["rows_read"], "rows_written": m["rows_written"],
        })
    };
    assert_eq!(
        counters(&batch[0].meta),
        want_counters(&want["batch_first"])
    );
    assert_eq!(
        counters(&batch[1000].meta),
        want_counters(&want["batch_last"])
    );

    let join = db
        .prepare("SELECT u.name, u.age, count(*) AS n, sum(p.score) AS total, max(p.title) AS last FROM users u JOIN posts p ON p.user_id = u.id GROUP BY u.id ORDER BY u.id")
        .all()
        .unwrap();
    assert_eq!(counters(&join.meta), want_counters(&want["join"]));
    assert_eq!(
        serde_json::to_value(&join).unwrap()["results"],
        want["join"]["results"]
    );

    let first = db
        .prepare("SELECT * FROM posts WHERE id = ?")
        .bind([7])
        .first()
        .unwrap();
    assert_eq!(Value::Object(first.unwrap()), want["first"]);

    let raw = db
        .prepare("SELECT id, title FROM posts ORDER BY id LIMIT 2")
        .raw(true)
        .unwrap();
    assert_eq!(json!(raw), want["raw"]);

    let update = db
        .prepare("UPDATE posts SET score = score + 1 WHERE user_id = ?")
        .bind([2])
        .run()
        .unwrap();
    assert_eq!(counters(&update.meta), want_counters(&want["run_update"]));

    let err = db.prepare("SELECT * FROM nope").all().unwrap_err();
    assert_eq!(err.to_string(), want["error"]["message"].as_str().unwrap());
}
