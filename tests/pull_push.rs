//! `tristore pull` and `tristore push` against a second tristore (a real `tristore
//! serve` child with its own data directory, API token and S3 keys) acting as the
//! Cloudflare account: a round trip through it, skip-equal, resume after the remote dies
//! half way, no delete without `--delete`, and the errors of a wrong token or an
//! unreachable remote.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tristore::r2::{HttpMetadata, R2GetOptions, R2PutOptions};
use tristore::vectorize::{IndexConfig, MetadataIndexType, Metric, QueryOptions, VectorizeVector};
use tristore::Store;

const TOKEN: &str = "pull-push-token";
const KEY_ID: &str = "pullpushkey";
const SECRET: &str = "pull-push-secret-access-key";
const DIMENSIONS: usize = 8;
/// Larger than the transfer's 8 MiB part: pushed as a multipart upload of 3 parts.
const LARGE: usize = 20 << 20;

/// A `tristore serve` on `data`, killed on drop.
struct Remote {
    child: Child,
    api: String,
    s3: String,
}

impl Remote {
    fn start(data: &Path) -> Remote {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tristore"))
            .arg("--data-dir")
            .arg(data)
            .args([
                "serve",
                "--port",
                "0",
                "--s3-port",
                "0",
                "--no-metering",
                "--api-token",
                TOKEN,
                "--s3-access-key-id",
                KEY_ID,
                "--s3-secret-access-key",
                SECRET,
            ])
            .env_remove("TRISTORE_API_TOKEN")
            .env_remove("TRISTORE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (mut api, mut s3) = (None, None);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        while api.is_none() || s3.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve printed no addresses"
            );
            let line = lines.next().expect("serve ended early").unwrap();
            let word = |prefix: &str| {
                line.strip_prefix(prefix)
                    .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            };
            api = api.or(word("Cloudflare API: "));
            s3 = s3.or(word("R2 S3 API:"));
        }
        // Keep draining standard output so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Remote {
            child,
            api: api.unwrap(),
            s3: s3.unwrap(),
        }
    }

    /// The remote's arguments for `pull` / `push`.
    fn args(&self) -> Vec<String> {
        [
            "--api-base",
            &self.api,
            "--account-id",
            "acct",
            "--api-token",
            TOKEN,
            "--s3-endpoint",
            &self.s3,
            "--s3-access-key-id",
            KEY_ID,
            "--s3-secret-access-key",
            SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.kill();
    }
}

const SELECTION: [&str; 6] = ["--d1", "app", "--vectorize", "docs", "--r2", "files"];

/// `tristore --data-dir DIR verb remote-args extra`: (success, stdout, stderr).
fn tristore(dir: &Path, verb: &str, remote: &[String], extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tristore"))
        .arg("--data-dir")
        .arg(dir)
        .arg(verb)
        .args(remote)
        .args(extra)
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("CLOUDFLARE_ACCOUNT_ID")
        .env_remove("CLOUDFLARE_API_BASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The counts of a summary line, e.g. `push: vectors: 3 copied, 0 skipped (equal), ...`:
/// (copied, skipped, deleted).
fn counts(stdout: &str, verb: &str, what: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{verb}: {what}: ")))
        .unwrap_or_else(|| panic!("no {what} line in {stdout}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

fn body(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((i * 131 + j * 7 + j / 253) % 256) as u8)
        .collect()
}

fn vector(i: usize) -> VectorizeVector {
    let values = (0..DIMENSIONS)
        .map(|d| ((i * 7 + d * 13) % 29) as f32 / 29.0 + 0.01)
        .collect();
    let mut v = VectorizeVector::new(format!("v{i:05}"), values);
    v.namespace = i.is_multiple_of(4).then(|| "ns".to_owned());
    v.metadata(json!({"docId": format!("d{}", i / 10), "chunk": i % 10}))
}

/// The source store: a database, an index with metadata indexes and namespaces, a
/// bucket with small objects (with metadata) and a large one.
fn make_source(dir: &Path, vectors: usize, objects: usize) {
    let store = Store::open(dir).unwrap();
    store.d1().create("app").unwrap();
    let db = store.d1().database("app").unwrap();
    db.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, blob BLOB); CREATE TABLE tags (item INTEGER REFERENCES items(id), tag TEXT); CREATE INDEX tags_item ON tags(item)")
        .unwrap();
    for i in 0..500 {
        db.prepare("INSERT INTO items (name, blob) VALUES (?, x'00ff')")
            .bind([format!("it's item {i}")])
            .run()
            .unwrap();
    }
    db.exec("INSERT INTO tags SELECT id, 'tag' || (id % 7) FROM items")
        .unwrap();
    store
        .vectorize()
        .create(
            "docs",
            "chunks",
            IndexConfig {
                dimensions: DIMENSIONS,
                metric: Metric::Cosine,
            },
        )
        .unwrap();
    let index = store.vectorize().index("docs").unwrap();
    index
        .create_metadata_index("docId", MetadataIndexType::String)
        .unwrap();
    index
        .create_metadata_index("chunk", MetadataIndexType::Number)
        .unwrap();
    let all: Vec<VectorizeVector> = (0..vectors).map(vector).collect();
    for batch in all.chunks(1000) {
        index.upsert(batch).unwrap();
    }
    store.r2().create_bucket("files").unwrap();
    let bucket = store.r2().bucket("files").unwrap();
    for i in 0..objects {
        let options = R2PutOptions {
            http_metadata: HttpMetadata {
                content_type: Some("application/pdf".into()),
                ..Default::default()
            },
            custom_metadata: vec![("owner".into(), format!("u{i}"))],
            ..Default::default()
        };
        bucket
            .put(
                &format!("docs/{i:03} file.pdf"),
                body(i, 1000 + i * 37),
                &options,
            )
            .unwrap();
    }
    bucket
        .put(
            "large/blob.bin",
            body(9999, LARGE),
            &R2PutOptions::default(),
        )
        .unwrap();
}

/// What a store answers: rows, vectors (by id and by a filtered query), objects.
fn answers(dir: &Path) -> Vec<String> {
    let store = Store::open(dir).unwrap();
    let mut out = Vec::new();
    let db = store.d1().database("app").unwrap();
    for sql in [
        "SELECT * FROM items ORDER BY id",
        "SELECT * FROM tags ORDER BY rowid",
        "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '_cf_%' ORDER BY name",
    ] {
        out.push(format!("{:?}", db.prepare(sql).raw(false).unwrap()));
    }
    let index = store.vectorize().index("docs").unwrap();
    out.push(format!("{:?}", index.list_metadata_indexes()));
    out.push(format!(
        "{:?}",
        store.vectorize().get("docs").unwrap().config
    ));
    let ids = index.list(Some(1000), None).unwrap();
    let ids: Vec<String> = ids.vectors.into_iter().map(|v| v.id).collect();
    out.push(format!("{:?}", index.get_by_ids(&ids).unwrap()));
    let options: QueryOptions = serde_json::from_value(json!({
        "topK": 5,
        "namespace": "ns",
        "filter": {"docId": {"$in": ["d4", "d8", "d12"]}},
        "returnMetadata": "all",
    }))
    .unwrap();
    out.push(format!(
        "{:?}",
        index.query(&vector(3).values, &options).unwrap()
    ));
    let bucket = store.r2().bucket("files").unwrap();
    let listed = bucket.list(&Default::default()).unwrap();
    for o in listed.objects {
        let got = bucket
            .get(&o.key, &R2GetOptions::default())
            .unwrap()
            .unwrap();
        let http = got.object.http_metadata.clone().unwrap_or_default();
        let custom = got.object.custom_metadata.clone();
        let bytes = got.bytes().unwrap();
        out.push(format!(
            "{} {} {:?} {:?} {}",
            o.key,
            o.size,
            http.content_type,
            custom,
            tristore_md5(&bytes)
        ));
    }
    out
}

fn tristore_md5(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let (a, r, c) = (
        root.path().join("source"),
        root.path().join("remote"),
        root.path().join("copy"),
    );
    (root, a, r, c)
}

#[test]
fn push_then_pull_round_trips_skips_what_is_equal_and_deletes_only_when_asked() {
    let (_root, source, remote_dir, copy) = dirs();
    make_source(&source, 900, 12);
    let before = answers(&source);
    let remote = Remote::start(&remote_dir);
    let args = remote.args();

    let (ok, out, err) = tristore(&source, "push", &args, &SELECTION);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "push", "d1 databases"),
        (1, 0, 0),
        "{out}{err}"
    );
    assert_eq!(counts(&out, "push", "vectors"), (900, 0, 0), "{out}{err}");
    assert_eq!(counts(&out, "push", "r2 objects"), (13, 0, 0), "{out}{err}");
    assert!(err.contains("r2 files/large/blob.bin: pushed"), "{err}");

    // A second push transfers nothing.
    let (ok, out, err) = tristore(&source, "push", &args, &SELECTION);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "push", "d1 databases"),
        (0, 1, 0),
        "{out}{err}"
    );
    assert_eq!(counts(&out, "push", "vectors"), (0, 900, 0), "{out}{err}");
    assert_eq!(counts(&out, "push", "r2 objects"), (0, 13, 0), "{out}{err}");

    // Pulled back into an empty directory, the store answers as the source did.
    let (ok, out, err) = tristore(&copy, "pull", &args, &SELECTION);
    assert!(ok, "{out}{err}");
    assert_eq!(counts(&out, "pull", "vectors"), (900, 0, 0), "{out}{err}");
    assert_eq!(counts(&out, "pull", "r2 objects"), (13, 0, 0), "{out}{err}");
    assert_eq!(answers(&copy), before);
    // ... and a second pull transfers nothing, the large object's multipart ETag on the
    // remote included.
    let (ok, out, err) = tristore(&copy, "pull", &args, &SELECTION);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "pull", "d1 databases"),
        (0, 1, 0),
        "{out}{err}"
    );
    assert_eq!(counts(&out, "pull", "vectors"), (0, 900, 0), "{out}{err}");
    assert_eq!(counts(&out, "pull", "r2 objects"), (0, 13, 0), "{out}{err}");
    // The source was only read.
    assert_eq!(answers(&source), before);

    // What the source no longer has stays on the destination unless --delete.
    {
        let store = Store::open(&source).unwrap();
        store
            .r2()
            .bucket("files")
            .unwrap()
            .delete(&["docs/000 file.pdf"])
            .unwrap();
        store
            .vectorize()
            .index("docs")
            .unwrap()
            .delete_by_ids(&["v00001", "v00002"])
            .unwrap();
    }
    let (ok, out, err) = tristore(
        &source,
        "push",
        &args,
        &["--vectorize", "docs", "--r2", "files"],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(counts(&out, "push", "vectors"), (0, 898, 0), "{out}{err}");
    assert_eq!(counts(&out, "push", "r2 objects"), (0, 12, 0), "{out}{err}");
    assert!(err.contains("1 only on the destination (kept"), "{err}");
    let (ok, out, err) = tristore(&copy, "pull", &args, &["--r2", "files"]);
    assert!(ok, "{out}{err}");
    assert_eq!(counts(&out, "pull", "r2 objects"), (0, 13, 0), "{out}{err}");
    let (ok, out, err) = tristore(
        &source,
        "push",
        &args,
        &["--vectorize", "docs", "--r2", "files", "--delete"],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(counts(&out, "push", "vectors"), (0, 898, 2), "{out}{err}");
    assert_eq!(counts(&out, "push", "r2 objects"), (0, 12, 1), "{out}{err}");
    let (ok, out, err) = tristore(
        &copy,
        "pull",
        &args,
        &["--vectorize", "docs", "--r2", "files", "--delete"],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(counts(&out, "pull", "vectors"), (0, 898, 2), "{out}{err}");
    assert_eq!(counts(&out, "pull", "r2 objects"), (0, 12, 1), "{out}{err}");

    // A database whose contents differ is not overwritten without --delete.
    {
        let store = Store::open(&source).unwrap();
        let db = store.d1().database("app").unwrap();
        db.exec("INSERT INTO items (name) VALUES ('new')").unwrap();
    }
    let (ok, out, err) = tristore(&source, "push", &args, &["--d1", "app"]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("Pass --delete to replace its contents"),
        "{err}"
    );
    let (ok, out, err) = tristore(&source, "push", &args, &["--d1", "app", "--delete"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "push", "d1 databases"),
        (1, 0, 1),
        "{out}{err}"
    );
    let (ok, out, err) = tristore(&copy, "pull", &args, &["--d1", "app", "--delete"]);
    assert!(ok, "{out}{err}");
    assert_eq!(answers(&copy), answers(&source));
}

#[test]
fn a_push_cut_off_by_the_remote_dying_resumes_and_skips_what_was_done() {
    let (_root, source, remote_dir, _copy) = dirs();
    make_source(&source, 6000, 150);
    let before = answers(&source);
    let mut remote = Remote::start(&remote_dir);
    let mut push = Command::new(env!("CARGO_BIN_EXE_tristore"))
        .arg("--data-dir")
        .arg(&source)
        .arg("push")
        .args(remote.args())
        .args(SELECTION)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the remote once some objects are across.
    let mut lines = BufReader::new(push.stderr.take().unwrap()).lines();
    let mut pushed = 0;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains(": pushed") && line.starts_with("r2 files/") {
            pushed += 1;
        }
        seen.push(line);
        if pushed == 20 {
            remote.kill();
            break;
        }
    }
    assert_eq!(pushed, 20, "{seen:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = push.wait().unwrap();
    assert!(!status.success(), "{rest:?}");
    let last = rest.last().cloned().unwrap_or_default();
    assert!(
        last.contains("push stopped") && last.contains("cannot reach the remote S3 API"),
        "{rest:?}"
    );
    assert!(last.contains("run the command again to continue"), "{last}");
    assert_eq!(answers(&source), before, "a failed push changed the source");

    // The same data directory served again (on new ports): the rerun finishes, skipping
    // what the first run copied.
    let remote = Remote::start(&remote_dir);
    let (ok, out, err) = tristore(&source, "push", &remote.args(), &SELECTION);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "push", "d1 databases"),
        (0, 1, 0),
        "{out}{err}"
    );
    assert_eq!(counts(&out, "push", "vectors"), (0, 6000, 0), "{out}{err}");
    let (copied, skipped, _) = counts(&out, "push", "r2 objects");
    assert_eq!(copied + skipped, 151, "{out}");
    assert!(skipped >= 20, "{out}");
    let (ok, out, err) = tristore(&source, "push", &remote.args(), &SELECTION);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "push", "r2 objects"),
        (0, 151, 0),
        "{out}{err}"
    );
}

#[test]
fn a_wrong_token_or_an_unreachable_remote_is_a_clear_error() {
    let (_root, source, remote_dir, copy) = dirs();
    make_source(&source, 10, 1);
    let remote = Remote::start(&remote_dir);
    let mut args = remote.args();
    let token = args.iter().position(|a| a == TOKEN).unwrap();
    args[token] = "wrong".into();
    let (ok, out, err) = tristore(&copy, "pull", &args, &["--d1", "app"]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("answered 403") || err.contains("answered 401"),
        "{err}"
    );
    assert!(err.contains("check --api-token"), "{err}");

    let mut args = remote.args();
    let secret = args.iter().position(|a| a == SECRET).unwrap();
    args[secret] = "wrong-secret".into();
    let (ok, out, err) = tristore(&source, "push", &args, &["--r2", "files"]);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("check --s3-access-key-id"), "{err}");

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut args = remote.args();
    let base = args.iter().position(|a| a == &remote.api).unwrap();
    args[base] = format!("http://127.0.0.1:{port}/client/v4");
    let (ok, out, err) = tristore(&source, "push", &args, &["--d1", "app"]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("cannot reach the remote API at http://127.0.0.1"),
        "{err}"
    );
    assert!(err.contains("check --api-base"), "{err}");
    // Nothing was made locally by the failed pull.
    let store = Store::open(&copy).unwrap();
    assert!(store.d1().list().unwrap().is_empty());
}

#[test]
fn pulling_everything_copies_every_database_index_and_bucket_once() {
    let (_root, source, remote_dir, copy) = dirs();
    make_source(&source, 50, 3);
    // The remote serves the embedded default (Metacogna's database, index and bucket)
    // besides what is pushed.
    let remote = Remote::start(&remote_dir);
    let (ok, out, err) = tristore(&source, "push", &remote.args(), &[]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = tristore(&copy, "pull", &remote.args(), &[]);
    assert!(ok, "{out}{err}");
    let store = Store::open(&copy).unwrap();
    let mut databases: Vec<String> = store
        .d1()
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    databases.sort();
    assert_eq!(databases, ["app", "metacogna"]);
    assert!(store.vectorize().get("docs").is_ok());
    assert_eq!(store.r2().list_buckets().unwrap().len(), 2);
    drop(store);
    let (ok, out, err) = tristore(&copy, "pull", &remote.args(), &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        counts(&out, "pull", "d1 databases"),
        (0, 2, 0),
        "{out}{err}"
    );
    assert_eq!(counts(&out, "pull", "vectors").0, 0, "{out}{err}");
    assert_eq!(counts(&out, "pull", "r2 objects").0, 0, "{out}{err}");
}
