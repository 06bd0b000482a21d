//! `tristore serve --config wrangler.jsonc`: the binary provisions what the
//! configuration binds (migrating the database, creating metadata indexes), prints it
//! with the S3 credentials and the remote-bindings URL, serves, and on SIGTERM
//! finishes and exits 0. `--ephemeral` serves a temporary directory that is gone after.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn serve_provisions_a_wrangler_config_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("db/migrations")).unwrap();
    std::fs::write(
        app.join("db/migrations/0001_notes.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);",
    )
    .unwrap();
    std::fs::write(
        app.join("wrangler.jsonc"),
        r#"{
  // as wrangler reads it, plus tristore's dimensions/metric
  "name": "app",
  "d1_databases": [{"binding": "DB", "database_name": "notes-db", "database_id": "x", "migrations_dir": "db/migrations"}],
  "vectorize": [{"binding": "VEC", "index_name": "notes-index", "dimensions": 32, "metric": "dot-product",
                 "metadata_indexes": [{"propertyName": "noteId", "indexType": "string"}]}],
  "r2_buckets": [{"binding": "FILES", "bucket_name": "notes-files"}],
}"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tristore"))
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--port", "0", "--s3-port", "0", "--config"])
        .arg(app.join("wrangler.jsonc"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = read_banner(&mut child);
    assert!(banner.contains("notes-db"), "{banner}");
    assert!(
        banner.contains("applied migration 0001_notes.sql"),
        "{banner}"
    );
    assert!(banner.contains("notes-index (32 dimensions"), "{banner}");
    assert!(banner.contains("notes-files"), "{banner}");
    assert!(banner.contains("access key id tristore"), "{banner}");
    assert!(
        banner.contains("Remote bindings: http://127.0.0.1:"),
        "{banner}"
    );
    assert!(
        banner
            .contains("VEC: { index_name: \"notes-index\", remoteProxyConnectionString: new URL("),
        "the vitest snippet maps the config's bindings: {banner}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");

    let store = tristore::Store::open(&data).unwrap();
    let db = store.d1().database("notes-db").unwrap();
    db.prepare("INSERT INTO notes (body) VALUES ('x')")
        .run()
        .unwrap();
    assert_eq!(
        store
            .vectorize()
            .get("notes-index")
            .unwrap()
            .config
            .dimensions,
        32
    );
    store.r2().bucket("notes-files").unwrap();
    let index = store.vectorize().index("notes-index").unwrap();
    assert_eq!(index.list_metadata_indexes()[0].property_name, "noteId");
}

/// The banner up to its last line.
fn read_banner(child: &mut std::process::Child) -> String {
    let mut banner = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Ctrl-C") {
            break;
        }
    }
    banner
}

#[test]
fn ephemeral_serves_a_temporary_directory_removed_on_exit() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tristore"))
        .args(["serve", "--ephemeral", "--port", "0", "--s3-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = read_banner(&mut child);
    let first = banner.lines().next().unwrap();
    let dir = first
        .split("serving ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" (temporary: removed on exit)"))
        .unwrap_or_else(|| panic!("{banner}"));
    assert!(
        std::path::Path::new(dir).join("catalog.redb").exists(),
        "{dir}"
    );
    assert!(banner.contains("metacogna-index"), "{banner}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}
