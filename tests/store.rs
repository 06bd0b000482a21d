//! The data directory: D1 databases in the catalog, migrations, export and import.

use serde_json::json;
use tristore::d1::dump::DumpOptions;
use tristore::d1::migrations::{self, Migration};
use tristore::{defaults, Error, Store};

#[test]
fn create_list_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.d1().create("alpha").unwrap();
    assert_eq!(a.version, "production");
    assert_eq!(a.num_tables, 0);
    assert!(uuid::Uuid::parse_str(&a.uuid).is_ok());
    assert!(time::OffsetDateTime::parse(
        &a.created_at,
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    assert!(matches!(
        store.d1().create("alpha"),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.d1().create("bad name!"),
        Err(Error::InvalidName { .. })
    ));
    store.d1().create("beta").unwrap();
    store
        .d1()
        .database("beta")
        .unwrap()
        .exec("CREATE TABLE t (x)\nINSERT INTO t VALUES (1)")
        .unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let names: Vec<_> = store
        .d1()
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    let beta = store.d1().get("beta").unwrap();
    assert_eq!(beta.num_tables, 1);
    assert!(beta.file_size > 0);
    assert_eq!(
        store.d1().get(&beta.uuid).unwrap(),
        beta,
        "found by uuid too"
    );
    let n = store
        .d1()
        .database("beta")
        .unwrap()
        .prepare("SELECT x FROM t")
        .first_column("x")
        .unwrap();
    assert_eq!(n, Some(json!(1)));

    store.d1().delete("beta").unwrap();
    assert!(matches!(
        store.d1().get("beta"),
        Err(Error::NotFound { .. })
    ));
    assert!(!dir
        .path()
        .join("d1")
        .join(format!("{}.sqlite", beta.uuid))
        .exists());
}

/// A catalog written before UUID-shaped names were refused may hold one; a lookup by
/// an id still finds the database that has it.
#[test]
fn ids_win_over_names_in_an_older_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let real = store.d1().create("real").unwrap();
    let impostor = store.d1().create("impostor").unwrap();
    drop(store);
    {
        let names: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("d1_names");
        let catalog = redb::Database::create(dir.path().join("catalog.redb")).unwrap();
        let txn = catalog.begin_write().unwrap();
        txn.open_table(names)
            .unwrap()
            .insert(real.uuid.as_str(), impostor.uuid.as_str())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.d1().get(&real.uuid).unwrap().name, "real");
    assert_eq!(
        store.d1().get(&real.uuid.to_uppercase()).unwrap().name,
        "real"
    );
    assert!(matches!(
        store.d1().create(&impostor.uuid),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn orphan_files_are_swept_on_open() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap();
    let orphan = dir
        .path()
        .join("d1")
        .join(format!("{}.sqlite", uuid::Uuid::new_v4()));
    std::fs::write(&orphan, b"left by a crash").unwrap();
    let keep = dir.path().join("d1").join("notes.txt");
    std::fs::write(&keep, b"not ours").unwrap();
    Store::open(dir.path()).unwrap();
    assert!(!orphan.exists());
    assert!(keep.exists());
}

#[test]
fn embedded_migrations_match_the_directory() {
    let from_disk = migrations::load_dir(std::path::Path::new("db/migrations"), None).unwrap();
    assert_eq!(from_disk, defaults::metacogna_migrations());
}

#[test]
fn metacogna_is_provisioned_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let created = |done: &[tristore::provision::Done]| {
        done.iter()
            .map(|d| (d.name.clone(), d.created, d.applied.clone()))
            .collect::<Vec<_>>()
    };
    let first = defaults::provision_metacogna(&store).unwrap();
    assert_eq!(
        created(&first.databases),
        vec![("metacogna".into(), true, vec!["0001_initial.sql".into()])]
    );
    assert_eq!(
        created(&first.indexes),
        vec![("metacogna-index".into(), true, vec![])]
    );
    assert_eq!(
        created(&first.buckets),
        vec![("metacogna-vault".into(), true, vec![])]
    );
    let again = defaults::provision_metacogna(&store).unwrap();
    assert!(again
        .databases
        .iter()
        .chain(&again.indexes)
        .chain(&again.buckets)
        .all(|d| !d.created && d.applied.is_empty()));
    store.r2().bucket("metacogna-vault").unwrap();
    let db = store.d1().database("metacogna").unwrap();
    let tables = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .raw(false)
        .unwrap();
    assert_eq!(
        json!(tables),
        json!([
            ["chat_messages"],
            ["chat_sessions"],
            ["d1_migrations"],
            ["documents"],
            ["memory_streams"],
            ["training_examples"],
            ["users"]
        ])
    );
    let indexes = db
        .prepare(
            "SELECT count(*) AS n FROM sqlite_schema WHERE type = 'index' AND name LIKE 'idx_%'",
        )
        .first_column("n")
        .unwrap();
    assert_eq!(indexes, Some(json!(3)));
}

#[test]
fn migrations_follow_wrangler() {
    let dir = tempfile::tempdir().unwrap();
    let mdir = dir.path().join("migrations");
    let store = Store::open(dir.path().join("data")).unwrap();
    store.d1().create("app").unwrap();
    let db = store.d1().database("app").unwrap();

    let first = migrations::create(&mdir, "create users").unwrap();
    assert_eq!(first.file_name().unwrap(), "0001_create_users.sql");
    std::fs::write(
        &first,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n-- trailing comment",
    )
    .unwrap();
    let second = migrations::create(&mdir, "add posts").unwrap();
    assert_eq!(second.file_name().unwrap(), "0002_add_posts.sql");
    std::fs::write(
        &second,
        "CREATE TABLE posts (uid INTEGER REFERENCES users(id));\nINSERT INTO nope VALUES (1);",
    )
    .unwrap();
    let third = migrations::create(&mdir, "later").unwrap();
    std::fs::write(&third, "CREATE TABLE later (x);").unwrap();

    let all = migrations::load_dir(&mdir, None).unwrap();
    assert_eq!(
        migrations::pending(&db, &all, "d1_migrations")
            .unwrap()
            .len(),
        3
    );
    let e = migrations::apply(&db, &all, "d1_migrations")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("migration 0002_add_posts.sql: D1_ERROR: no such table: nope"),
        "{e}"
    );
    let applied = migrations::applied(&db, "d1_migrations").unwrap();
    assert_eq!(
        applied.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        vec!["0001_create_users.sql"]
    );
    let posts = db
        .prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'posts'")
        .first_column("n")
        .unwrap();
    assert_eq!(posts, Some(json!(0)), "the failed file left nothing behind");

    std::fs::write(
        &second,
        "CREATE TABLE posts (uid INTEGER REFERENCES users(id));",
    )
    .unwrap();
    let all = migrations::load_dir(&mdir, None).unwrap();
    assert_eq!(
        migrations::apply(&db, &all, "d1_migrations").unwrap(),
        vec!["0002_add_posts.sql", "0003_later.sql"]
    );
    assert!(migrations::pending(&db, &all, "d1_migrations")
        .unwrap()
        .is_empty());

    // The bookkeeping table is wrangler's, column for column.
    let ddl = db
        .prepare("SELECT sql FROM sqlite_schema WHERE name = 'd1_migrations'")
        .first_column("sql")
        .unwrap();
    assert_eq!(
        ddl,
        Some(json!("CREATE TABLE \"d1_migrations\"(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)"))
    );
    let at = &migrations::applied(&db, "d1_migrations").unwrap()[0].applied_at;
    assert_eq!(at.len(), "2026-01-01 00:00:00".len(), "{at}");
}

#[test]
fn migrations_made_by_wrangler_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.d1().create("app").unwrap();
    let db = store.d1().database("app").unwrap();
    // What `wrangler d1 migrations apply` leaves behind after applying 0001.
    db.exec("CREATE TABLE IF NOT EXISTS d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)\nCREATE TABLE a (x)\nINSERT INTO d1_migrations (name) values ('0001_a.sql');")
        .unwrap();
    let all = vec![
        Migration {
            name: "0001_a.sql".into(),
            sql: "CREATE TABLE a (x);".into(),
        },
        Migration {
            name: "0002_b.sql".into(),
            sql: "CREATE TABLE b (x);".into(),
        },
    ];
    assert_eq!(
        migrations::apply(&db, &all, "d1_migrations").unwrap(),
        vec!["0002_b.sql"]
    );
}

fn fill_metacogna(store: &Store) -> tristore::d1::D1Database {
    defaults::provision_metacogna(store).unwrap();
    let db = store.d1().database("metacogna").unwrap();
    let mut stmts = Vec::new();
    for u in 0..20 {
        stmts.push(db.prepare("INSERT INTO users VALUES (?, ?, ?, ?)").bind([
            format!("user-{u}"),
            format!("name '{u}'\nwith newline"),
            "hash".into(),
            (1_700_000_000_000i64 + u).to_string(),
        ]));
        stmts.push(
            db.prepare("INSERT INTO chat_sessions VALUES (?, ?, ?, ?)")
                .bind_json(&[json!(format!("s{u}")), json!("t"), json!(1), json!(2.5)])
                .unwrap(),
        );
        for m in 0..5 {
            stmts.push(
                db.prepare("INSERT INTO chat_messages VALUES (?, ?, ?, ?, ?, ?, ?)")
                    .bind_json(&[
                        json!(format!("m{u}-{m}")),
                        json!(format!("s{u}")),
                        json!("user"),
                        json!("hi; -- not a comment"),
                        json!(null),
                        json!("m"),
                        json!(m),
                    ])
                    .unwrap(),
            );
        }
        stmts.push(
            db.prepare("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)")
                .bind_json(&[
                    json!(format!("d{u}")),
                    json!("doc"),
                    json!("x"),
                    json!(json!({"k": u}).to_string()),
                    json!(format!("user-{u}/d{u}/f.pdf")),
                    json!(0.1),
                ])
                .unwrap(),
        );
    }
    db.batch(&stmts).unwrap();
    db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, r REAL)")
        .unwrap();
    db.prepare("INSERT INTO blobs (b, r) VALUES (?, ?)")
        .bind([
            tristore::d1::D1Value::Blob(vec![0, 1, 255]),
            tristore::d1::D1Value::Real(0.1),
        ])
        .run()
        .unwrap();
    db.prepare("INSERT INTO blobs (b, r) VALUES (NULL, 1e300)")
        .run()
        .unwrap();
    db.prepare("DELETE FROM blobs WHERE id = 2").run().unwrap();
    db.exec("CREATE VIRTUAL TABLE notes USING fts5(body)\nINSERT INTO notes VALUES ('local vector search')\nCREATE VIEW recent AS SELECT id FROM users").unwrap();
    db
}

fn snapshot(db: &tristore::d1::D1Database) -> serde_json::Value {
    let tables = [
        "users",
        "chat_sessions",
        "chat_messages",
        "documents",
        "blobs",
        "d1_migrations",
        "sqlite_sequence",
    ];
    let mut out = serde_json::Map::new();
    for t in tables {
        let rows = db
            .prepare(format!("SELECT * FROM {t} ORDER BY 1"))
            .raw(true)
            .unwrap();
        out.insert(t.into(), json!(rows));
    }
    let schema = db
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY name")
        .raw(false)
        .unwrap();
    out.insert("schema".into(), json!(schema));
    let fts = db
        .prepare("SELECT rowid, body FROM notes WHERE notes MATCH 'vector'")
        .raw(false)
        .unwrap();
    out.insert("fts".into(), json!(fts));
    serde_json::Value::Object(out)
}

#[test]
fn export_import_round_trip_on_metacogna() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let db = fill_metacogna(&store);
    let dump = db.export(&DumpOptions::default()).unwrap();
    assert!(dump.starts_with("PRAGMA defer_foreign_keys=TRUE;\n"));
    assert!(!dump.contains("notes_data"), "shadow tables are not dumped");

    store.d1().create("copy").unwrap();
    let copy = store.d1().database("copy").unwrap();
    let summary = copy.import(&dump).unwrap();
    assert!(summary.num_queries > 100);
    assert_eq!(snapshot(&copy), snapshot(&db));
    // AUTOINCREMENT continues where the original would.
    let next = copy
        .prepare("INSERT INTO blobs (r) VALUES (1)")
        .run()
        .unwrap()
        .meta
        .last_row_id;
    assert_eq!(next, 3);
}

#[test]
fn export_options() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let db = fill_metacogna(&store);
    let schema_only = db
        .export(&DumpOptions {
            no_data: true,
            ..Default::default()
        })
        .unwrap();
    assert!(
        schema_only.contains("CREATE TABLE users")
            && !schema_only.contains("INSERT INTO \"users\"")
    );
    let data_only = db
        .export(&DumpOptions {
            no_schema: true,
            ..Default::default()
        })
        .unwrap();
    assert!(!data_only.contains("CREATE TABLE") && data_only.contains("INSERT INTO \"users\""));
    let one = db
        .export(&DumpOptions {
            tables: vec!["chat_messages".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(
        one.contains("CREATE TABLE chat_messages") && one.contains("idx_chat_messages_session")
    );
    assert!(!one.contains("users"));
}

#[test]
fn a_failed_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let db = fill_metacogna(&store);
    let before = snapshot(&db);
    let bad = "INSERT INTO users VALUES ('new', 'new', 'h', 1);\nCREATE TABLE extra (x);\nINSERT INTO users VALUES ('user-1', 'dup', 'h', 1);";
    let e = db.import(bad).unwrap_err().to_string();
    assert!(
        e.contains("UNIQUE constraint failed: users.id") && e.contains("statement 3 of the import"),
        "{e}"
    );
    assert_eq!(snapshot(&db), before);
    let e = db
        .import("BEGIN TRANSACTION;\nCREATE TABLE x (y);\nCOMMIT;")
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch()"), "{e}");
}

/// A temporary directory on tmpfs where there is one: these tests create thousands of
/// databases, and each creation syncs files and the catalog (~30 ms on a disk).
fn tmpfs_tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// File descriptors this process holds.
#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Run by `ten_thousand_databases_work_under_a_1024_file_limit` in a child process
/// whose file limit is 1,024; the audit saw create #332 fail there.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run in a child process with a lowered file limit"]
fn child_ten_thousand_databases_under_a_file_limit() {
    const N: usize = 10_000;
    let dir = tmpfs_tempdir();
    let store = Store::open(dir.path()).unwrap();
    let mut most_fds = 0;
    for i in 0..N {
        if let Err(e) = store.d1().create(&format!("db{i}")) {
            panic!("creating database {i} with {} files open: {e}", open_fds());
        }
        if i % 500 == 0 {
            most_fds = most_fds.max(open_fds());
        }
    }
    for i in (0..N).step_by(97) {
        let db = store.d1().database(&format!("db{i}")).unwrap();
        db.exec(&format!("CREATE TABLE t (x)\nINSERT INTO t VALUES ({i})"))
            .unwrap();
        db.prepare("SELECT x FROM t").all().unwrap();
        most_fds = most_fds.max(open_fds());
    }
    let listed = store.d1().list().unwrap();
    most_fds = most_fds.max(open_fds());
    assert_eq!(listed.len(), N);
    assert_eq!(listed[97].num_tables, 1);
    drop(store);

    // As a restart would: open the store again and read back what was written.
    let store = Store::open(dir.path()).unwrap();
    for i in (0..N).step_by(97) {
        let x = store
            .d1()
            .database(&format!("db{i}"))
            .unwrap()
            .prepare("SELECT x FROM t")
            .first_column("x")
            .unwrap();
        assert_eq!(x, Some(json!(i)));
    }
    most_fds = most_fds.max(open_fds());
    println!("at most {most_fds} files open");
    assert!(most_fds < 400, "{most_fds} files open");
}

#[cfg(target_os = "linux")]
#[test]
fn ten_thousand_databases_work_under_a_1024_file_limit() {
    use std::os::unix::process::CommandExt;

    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([
        "child_ten_thousand_databases_under_a_file_limit",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = limit.rlim_max.min(1024);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}
