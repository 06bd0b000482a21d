//! Power loss, simulated: a kill -9 leaves the page cache, so it cannot tell whether an
//! fsync is missing; a power cut can. Each workload (R2, Vectorize, D1) runs while
//! `tristore::power_loss` records every fsync under the data directory; then, for a cut
//! after each acknowledged write and at random points between, the directory a power
//! cut would leave is built (unsynced data, creations and renames gone) and opened by
//! a new store, which must hold every acknowledged write exactly, with the write in
//! flight either whole or absent, and nothing referring to missing data.
//!
//! The same run with each fsync site left out, one at a time, must fail: that shows
//! each fsync the workload reaches is needed and that the test notices its absence.
//! The sites that cannot fail are listed, with why, in `UNNEEDED`.
//!
//! `TRISTORE_POWER_LOSS_LOG=1` prints the recorded fsyncs of a failing run;
//! `TRISTORE_LONG_TESTS=1` cuts after every fsync, not only at and between acks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use serde_json::json;
use tristore::power_loss::Recording;
use tristore::r2::{R2ListOptions, R2MultipartOptions, R2PutOptions};
use tristore::vectorize::{IndexConfig, MetadataIndexType, Metric, QueryOptions, VectorizeVector};
use tristore::{Store, StoreOptions};

/// One recording per process: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Fsyncs whose absence no power cut in these sequential workloads can show, and why.
/// Sites are `file:line what`, so a change that moves one of these fails the test
/// until the entry is looked at again.
const UNNEEDED: &[(&str, &str)] = &[
    (
        "src/r2/blobs.rs:397 directory",
        "a put whose content is already stored syncs the blob's directory again, for \
         the case where the write that placed the blob runs beside it or failed after \
         its rename; one writer at a time never meets either",
    ),
    (
        "src/vectorize/index.rs:683 directory",
        "a checkpoint makes its new vector files' names durable before the segment that \
         names them; the simulator drops every unsynced entry together, so it cannot \
         leave the segment without its vector files, which a file system that persists \
         entries out of order can",
    ),
    (
        "src/vectorize/index.rs:693 directory",
        "a checkpoint makes the new segment's name durable before it creates the new \
         log; the simulator drops every unsynced entry together, so it cannot leave the \
         new log without its segment, which a file system that persists entries out \
         of order can",
    ),
    (
        "src/vectorize/store.rs:110 directory",
        "a new index's description is written with the usual temp-file-and-rename, \
         which syncs its directory; that directory is synced again once the log is in \
         it (line 112), before the rename that makes the index visible",
    ),
    (
        "src/vectorize/wal.rs:97 file",
        "a new log's header: a log whose header was cut short opens as an empty log \
         (what a kill inside its creation leaves), and the first append's fdatasync \
         makes the header durable with the record",
    ),
    (
        "src/store.rs:262 directory",
        "a new database's name is made durable before the catalog names it; SQLite \
         happens to do the same when it first syncs the journal it writes to switch \
         the new file to WAL (the unix VFS syncs a new journal's directory), and D1 \
         does not rely on that detail of SQLite",
    ),
    (
        "sqlite journal",
        "SQLite's own: the rollback journal of the switch to WAL when a database is \
         created; the simulator writes a synced page whole or not at all, so the \
         journal is never needed to undo a torn one",
    ),
];

/// A workload: its state after each acknowledged write is known in advance.
trait Workload {
    type State: PartialEq + std::fmt::Debug;
    /// Sets up, before the recording, what the workload starts from.
    fn prepare(&self, dir: &Path);
    /// Opens the store and does the writes, calling `ack` after the store is open
    /// and after each write returns.
    fn run(&self, dir: &Path, ack: &mut dyn FnMut());
    /// The state after the first `n` writes.
    fn expected(&self, n: usize) -> Self::State;
    /// Opens the store at `dir` and reads its state, or says what is wrong with it.
    fn observe(&self, dir: &Path) -> Result<Self::State, String>;
    /// How many writes `run` does.
    fn writes(&self) -> usize;
    /// Fsyncs this workload does without needing them, besides [`UNNEEDED`], and why.
    fn unneeded_here(&self) -> &[(&str, &str)] {
        &[]
    }
}

/// Runs `w` under a recording that leaves out `skip`; returns the first cut whose state
/// is wrong (with why), and the sites that fsynced during the writes.
fn trial<W: Workload>(w: &W, skip: Option<&str>) -> (Option<String>, BTreeSet<String>) {
    let dir = scratch();
    w.prepare(dir.path());
    let recording = Recording::start_without(dir.path(), skip).unwrap();
    let mut marks = Vec::new();
    w.run(dir.path(), &mut || marks.push(recording.mark()));
    assert_eq!(
        marks.len(),
        w.writes() + 1,
        "one ack per write, and the open"
    );
    // The fsyncs of the writes themselves, not those of opening or closing the store.
    let sites = recording.sites_between(marks[0], *marks.last().unwrap());
    let end = recording.mark();
    // A cut at each acknowledgement, and one at a pseudo-random point after it; with
    // TRISTORE_LONG_TESTS, a cut after every fsync.
    let mut cuts: BTreeSet<usize> = marks.iter().copied().collect();
    if std::env::var_os("TRISTORE_LONG_TESTS").is_some() {
        cuts.extend(marks[0]..=end);
    }
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for w in marks
        .windows(2)
        .chain(std::iter::once(&[*marks.last().unwrap(), end][..]))
    {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if w[1] > w[0] {
            cuts.insert(w[0] + (x % (w[1] - w[0]) as u64) as usize);
        }
    }
    for cut in cuts {
        let done = marks.iter().rposition(|&m| m <= cut);
        let Some(done) = done else { continue };
        let into = scratch();
        recording.materialize(cut, into.path()).unwrap();
        let verdict = match w.observe(into.path()) {
            Err(why) => Some(why),
            Ok(state) if state == w.expected(done) => None,
            Ok(state) if done < w.writes() && state == w.expected(done + 1) => None,
            Ok(state) => Some(format!(
                "{}, where the acknowledged state is {}",
                brief(&state),
                brief(&w.expected(done))
            )),
        };
        if let Some(why) = verdict {
            if std::env::var_os("TRISTORE_POWER_LOSS_LOG").is_some() {
                eprintln!("{}", recording.log());
            }
            return (
                Some(format!(
                    "cut after {cut} fsyncs ({done} writes acknowledged): {why}"
                )),
                sites,
            );
        }
    }
    (None, sites)
}

/// A temporary directory in memory where there is one: the simulator decides what is
/// durable, so real fsyncs only cost time here.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// A state's debug form, cut short: enough to see what differs.
fn brief(state: &impl std::fmt::Debug) -> String {
    let full = format!("{state:?}");
    match full.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &full[..at]),
        None => full,
    }
}

fn unneeded(site: &str) -> Option<&'static str> {
    UNNEEDED
        .iter()
        .find(|(s, _)| *s == site)
        .map(|(_, why)| *why)
}

/// The workload survives every cut, and fails some cut without any one of its fsyncs.
fn prove<W: Workload>(w: &W) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (failure, sites) = trial(w, None);
    assert_eq!(failure, None, "with every fsync in place");
    assert!(!sites.is_empty());
    let mut report = Vec::new();
    let mut unnoticed = Vec::new();
    for site in &sites {
        let (failure, _) = trial(w, Some(site));
        report.push(format!(
            "without {site}: {}",
            failure.as_deref().unwrap_or("no cut fails")
        ));
        let here = w.unneeded_here().iter().any(|(s, _)| s == site);
        if failure.is_none() && unneeded(site).is_none() && !here {
            unnoticed.push(site.as_str());
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        unnoticed.is_empty(),
        "leaving out the fsyncs at {unnoticed:?} loses nothing this test can see"
    );
}

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed * 7919) % 251) as u8)
        .collect()
}

fn r2_options() -> StoreOptions {
    let mut o = StoreOptions::default();
    o.r2_limits.min_part_bytes = 1024;
    o
}

/// Puts of 100 bytes to 300 KB over five keys, deletes, multipart uploads, and copies
/// of content already stored (the dedup path).
struct R2;

enum R2Op {
    Put(String, Vec<u8>),
    Delete(String),
    Multipart(String, Vec<u8>, Vec<u8>),
}

impl R2 {
    fn ops(&self) -> Vec<R2Op> {
        (0..18)
            .map(|i| match i % 6 {
                0..=2 => R2Op::Put(
                    format!("k{}", i % 5),
                    content(i, [100, 5000, 70_000, 300_000][i % 4]),
                ),
                3 => R2Op::Delete(format!("k{}", (i + 1) % 5)),
                4 => R2Op::Multipart(format!("m{i}"), content(i, 2000), content(i + 1, 500)),
                _ => R2Op::Put(
                    format!("copy{i}"),
                    content(i - 5, [100, 5000, 70_000, 300_000][(i - 5) % 4]),
                ),
            })
            .collect()
    }
}

impl Workload for R2 {
    type State = BTreeMap<String, Vec<u8>>;

    fn prepare(&self, dir: &Path) {
        Store::open_with(dir, r2_options())
            .unwrap()
            .r2()
            .create_bucket("bkt")
            .unwrap();
    }

    fn run(&self, dir: &Path, ack: &mut dyn FnMut()) {
        let store = Store::open_with(dir, r2_options()).unwrap();
        let b = store.r2().bucket("bkt").unwrap();
        ack();
        for op in self.ops() {
            match op {
                R2Op::Put(key, body) => {
                    b.put(&key, body, &R2PutOptions::default()).unwrap();
                }
                R2Op::Delete(key) => b.delete(&[key.as_str()]).unwrap(),
                R2Op::Multipart(key, one, two) => {
                    let up = b
                        .create_multipart_upload(&key, &R2MultipartOptions::default())
                        .unwrap();
                    let parts = [
                        up.upload_part(1, one).unwrap(),
                        up.upload_part(2, two).unwrap(),
                    ];
                    up.complete(&parts).unwrap();
                }
            }
            ack();
        }
    }

    fn expected(&self, n: usize) -> Self::State {
        let mut state = BTreeMap::new();
        for op in self.ops().into_iter().take(n) {
            match op {
                R2Op::Put(key, body) => {
                    state.insert(key, body);
                }
                R2Op::Delete(key) => {
                    state.remove(&key);
                }
                R2Op::Multipart(key, mut one, two) => {
                    one.extend(two);
                    state.insert(key, one);
                }
            }
        }
        state
    }

    fn observe(&self, dir: &Path) -> Result<Self::State, String> {
        let store = Store::open_with(dir, r2_options()).map_err(|e| e.to_string())?;
        let problems = store.r2().fsck().map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            return Err(format!("fsck: {problems:?}"));
        }
        let b = store.r2().bucket("bkt").map_err(|e| e.to_string())?;
        let listed = b
            .list(&R2ListOptions::default())
            .map_err(|e| e.to_string())?;
        let mut state = BTreeMap::new();
        for o in listed.objects {
            let body = b
                .get(&o.key, &Default::default())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{} is listed but cannot be read", o.key))?;
            state.insert(o.key, body.bytes().map_err(|e| e.to_string())?.to_vec());
        }
        Ok(state)
    }

    fn writes(&self) -> usize {
        self.ops().len()
    }
}

#[test]
fn r2_keeps_every_acknowledged_write_through_a_power_cut() {
    prove(&R2);
}

fn vectorize_options() -> StoreOptions {
    let mut o = StoreOptions::default();
    // Checkpoints (segment writes, log switches) happen inside the workload, and so do
    // vector files: runs of two 8-dimension rows.
    o.vectorize_options.checkpoint_bytes = 2048;
    o.vectorize_options.vector_file_bytes = 64;
    o
}

/// An index created with a metadata index, then upserts of three vectors at a time
/// over twelve ids, in two namespaces, with metadata the index covers; deletes;
/// checkpoints every few writes.
struct Vectors;

type Record = (Vec<f32>, Option<String>, serde_json::Value);

impl Vectors {
    fn batch(i: usize) -> Vec<VectorizeVector> {
        (0..3)
            .map(|k| {
                let id = (i * 3 + k) % 12;
                VectorizeVector::new(
                    format!("v{id}"),
                    (0..8)
                        .map(|d| ((i * 8 + d + k) % 13) as f32 - 6.0)
                        .collect(),
                )
                .namespace(format!("ns{}", i % 2))
                .metadata(
                    json!({"colour": if i.is_multiple_of(2) { "red" } else { "blue" }, "write": i}),
                )
            })
            .collect()
    }

    fn deleted(i: usize) -> Vec<String> {
        vec![format!("v{}", i % 12), format!("v{}", (i + 5) % 12)]
    }
}

impl Vectors {
    const BATCHES: usize = 16;
}

/// `None`: no index yet.
type VectorState = Option<BTreeMap<String, Record>>;

impl Workload for Vectors {
    type State = VectorState;

    fn prepare(&self, dir: &Path) {
        Store::open_with(dir, vectorize_options()).unwrap();
    }

    fn run(&self, dir: &Path, ack: &mut dyn FnMut()) {
        let store = Store::open_with(dir, vectorize_options()).unwrap();
        ack();
        let config = IndexConfig {
            dimensions: 8,
            metric: Metric::Cosine,
        };
        store.vectorize().create("v", "", config).unwrap();
        ack();
        let idx = store.vectorize().index("v").unwrap();
        idx.create_metadata_index("colour", MetadataIndexType::String)
            .unwrap();
        ack();
        for i in 0..Vectors::BATCHES {
            if i % 4 == 3 {
                idx.delete_by_ids(&Vectors::deleted(i)).unwrap();
            } else {
                idx.upsert(&Vectors::batch(i)).unwrap();
            }
            ack();
        }
    }

    fn expected(&self, n: usize) -> Self::State {
        if n == 0 {
            return None;
        }
        let mut state = BTreeMap::new();
        for i in 0..n.saturating_sub(2) {
            if i % 4 == 3 {
                for id in Vectors::deleted(i) {
                    state.remove(&id);
                }
            } else {
                for v in Vectors::batch(i) {
                    let metadata = serde_json::Value::Object(v.metadata.unwrap());
                    state.insert(v.id, (v.values, v.namespace, metadata));
                }
            }
        }
        Some(state)
    }

    /// Whole records, and each one found again through its namespace and through the
    /// metadata index.
    fn observe(&self, dir: &Path) -> Result<Self::State, String> {
        let store = Store::open_with(dir, vectorize_options()).map_err(|e| e.to_string())?;
        if store
            .vectorize()
            .list()
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Ok(None);
        }
        let idx = store.vectorize().index("v").map_err(|e| e.to_string())?;
        let ids: Vec<String> = (0..12).map(|i| format!("v{i}")).collect();
        let mut state = BTreeMap::new();
        for v in idx.get_by_ids(&ids).map_err(|e| e.to_string())? {
            let metadata = serde_json::Value::Object(v.metadata.clone().unwrap_or_default());
            let found = |namespace: Option<String>, filter| -> Result<bool, String> {
                let options = QueryOptions {
                    top_k: 20,
                    namespace,
                    filter,
                    ..QueryOptions::default()
                };
                let m = idx.query(&v.values, &options).map_err(|e| e.to_string())?;
                Ok(m.matches.iter().any(|m| m.id == v.id))
            };
            if !found(v.namespace.clone(), None)? {
                return Err(format!("{} is not found in its namespace", v.id));
            }
            if !found(None, Some(json!({"colour": metadata["colour"]})))? {
                return Err(format!("{} is not found by its indexed colour", v.id));
            }
            state.insert(v.id, (v.values, v.namespace, metadata));
        }
        let count = idx.describe().vector_count;
        if count != state.len() {
            return Err(format!(
                "describe counts {count}, {} are there",
                state.len()
            ));
        }
        Ok(Some(state))
    }

    fn writes(&self) -> usize {
        Vectors::BATCHES + 2
    }
}

#[test]
fn vectorize_keeps_every_acknowledged_write_through_a_power_cut() {
    prove(&Vectors);
}

/// A database created, a table made, then rows of 150 KB inserted, replaced and
/// deleted: enough to pass SQLite's automatic checkpoint (1,000 pages), so that the
/// database file is written and synced too, not only the log.
struct Sql;

impl Sql {
    const ROWS: usize = 32;

    fn row(i: usize) -> String {
        format!("{i}:").repeat(150_000 / (format!("{i}:").len()))
    }
}

/// `None`: no database; `Some(None)`: a database without the table.
type SqlState = Option<Option<BTreeMap<i64, String>>>;

impl Workload for Sql {
    type State = SqlState;

    fn prepare(&self, dir: &Path) {
        Store::open(dir).unwrap();
    }

    fn run(&self, dir: &Path, ack: &mut dyn FnMut()) {
        let store = Store::open(dir).unwrap();
        ack();
        store.d1().create("pl").unwrap();
        ack();
        let db = store.d1().database("pl").unwrap();
        db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        ack();
        for i in 0..Sql::ROWS {
            if i % 5 == 4 {
                db.prepare("DELETE FROM t WHERE k = ?")
                    .bind([(i % 7) as i64])
                    .run()
                    .unwrap();
            } else {
                db.prepare("INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)")
                    .bind_json(&[json!(i % 7), json!(Sql::row(i))])
                    .unwrap()
                    .run()
                    .unwrap();
            }
            ack();
        }
    }

    fn expected(&self, n: usize) -> Self::State {
        match n {
            0 => None,
            1 => Some(None),
            _ => {
                let mut rows = BTreeMap::new();
                for i in 0..n - 2 {
                    let k = (i % 7) as i64;
                    if i % 5 == 4 {
                        rows.remove(&k);
                    } else {
                        rows.insert(k, Sql::row(i));
                    }
                }
                Some(Some(rows))
            }
        }
    }

    fn observe(&self, dir: &Path) -> Result<Self::State, String> {
        let store = Store::open(dir).map_err(|e| e.to_string())?;
        if store.d1().get("pl").is_err() {
            return Ok(None);
        }
        let db = store.d1().database("pl").map_err(|e| e.to_string())?;
        let tables = db
            .prepare("SELECT name FROM sqlite_master WHERE name = 't'")
            .raw(false)
            .map_err(|e| e.to_string())?;
        if tables.is_empty() {
            return Ok(Some(None));
        }
        let read = || {
            db.prepare("SELECT k, v FROM t ORDER BY k")
                .raw(false)
                .map_err(|e| e.to_string())
        };
        let rows = read()?;
        // The history must rebuild the state it names: restoring to the current
        // bookmark replays its base and log, and must change nothing.
        db.restore(Some(&db.bookmark()), None)
            .map_err(|e| format!("time travel to the current bookmark: {e}"))?;
        if read()? != rows {
            return Err("time travel to the current bookmark changed the rows".into());
        }
        Ok(Some(Some(
            rows.into_iter()
                .map(|r| (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_owned()))
                .collect(),
        )))
    }

    fn writes(&self) -> usize {
        Sql::ROWS + 2
    }

    fn unneeded_here(&self) -> &[(&str, &str)] {
        const WHY: &str = "the Time Travel history heals itself: an era whose base or \
                           log header a power cut took is dropped on open and a new base \
                           is taken from the database as it is, so no acknowledged row \
                           depends on these fsyncs (observe checks that the history \
                           rebuilds the current state after every cut); what they keep \
                           is the history's older points, which this workload does not \
                           name";
        &[
            ("src/d1/history/mod.rs:278 file", WHY),
            ("src/d1/history/mod.rs:292 file", WHY),
            ("src/d1/history/mod.rs:293 directory", WHY),
            ("src/d1/history/mod.rs:316 file", WHY),
        ]
    }
}

#[test]
fn d1_keeps_every_acknowledged_write_through_a_power_cut() {
    prove(&Sql);
}

/// `tristore backup` of a store with a D1 database, an inline object, a blob file and
/// an index with logged vectors: a cut at any point leaves no backup, or one that
/// restores to the store as it was.
struct Backup;

impl Backup {
    fn data(dir: &Path) -> std::path::PathBuf {
        dir.join("data")
    }

    fn dest(dir: &Path) -> std::path::PathBuf {
        dir.join("backup")
    }

    /// What a store holds, in full.
    fn describe(store: &Store) -> Result<String, String> {
        let e = |e: tristore::Error| e.to_string();
        let rows = store
            .d1()
            .database("app")
            .map_err(e)?
            .prepare("SELECT * FROM notes ORDER BY id")
            .raw(false)
            .map_err(|e| e.to_string())?;
        let bucket = store.r2().bucket("bkt").map_err(|e| e.to_string())?;
        let mut objects = Vec::new();
        for key in ["small", "large"] {
            let got = bucket
                .get(key, &Default::default())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{key} is missing"))?;
            objects.push(got.bytes().map_err(|e| e.to_string())?);
        }
        let index = store.vectorize().index("idx").map_err(|e| e.to_string())?;
        let vectors = index
            .get_by_ids(&["v0", "v1", "v2"])
            .map_err(|e| e.to_string())?;
        Ok(format!("{rows:?} {objects:?} {vectors:?}"))
    }
}

impl Workload for Backup {
    type State = Option<String>;

    fn prepare(&self, dir: &Path) {
        let store = Store::open(Self::data(dir)).unwrap();
        let db = store.d1().create("app").map(drop);
        db.unwrap();
        let db = store.d1().database("app").unwrap();
        db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        for i in 0..20 {
            db.prepare("INSERT INTO notes (body) VALUES (?)")
                .bind([format!("note {i}")])
                .run()
                .unwrap();
        }
        store.r2().create_bucket("bkt").unwrap();
        let bucket = store.r2().bucket("bkt").unwrap();
        bucket
            .put("small", content(1, 100), &R2PutOptions::default())
            .unwrap();
        bucket
            .put("large", content(2, 70_000), &R2PutOptions::default())
            .unwrap();
        let config = IndexConfig {
            dimensions: 4,
            metric: Metric::Cosine,
        };
        store.vectorize().create("idx", "", config).unwrap();
        let vectors: Vec<_> = (0..3)
            .map(|i| {
                VectorizeVector::new(format!("v{i}"), vec![1.0, i as f32, 0.5, 0.25])
                    .metadata(json!({"i": i}))
            })
            .collect();
        store
            .vectorize()
            .index("idx")
            .unwrap()
            .upsert(&vectors)
            .unwrap();
    }

    fn run(&self, dir: &Path, ack: &mut dyn FnMut()) {
        let store = Store::open(Self::data(dir)).unwrap();
        ack();
        tristore::backup::backup(&store, &Self::dest(dir)).unwrap();
        ack();
    }

    fn expected(&self, n: usize) -> Self::State {
        static WHOLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        (n == 1).then(|| {
            WHOLE
                .get_or_init(|| {
                    let dir = scratch();
                    self.prepare(dir.path());
                    Self::describe(&Store::open(Self::data(dir.path())).unwrap()).unwrap()
                })
                .clone()
        })
    }

    fn observe(&self, dir: &Path) -> Result<Self::State, String> {
        if !Self::dest(dir).exists() {
            return Ok(None);
        }
        let restored = scratch();
        let target = restored.path().join("restored");
        tristore::backup::restore(&Self::dest(dir), &target).map_err(|e| e.to_string())?;
        Self::describe(&Store::open(&target).map_err(|e| e.to_string())?).map(Some)
    }

    fn writes(&self) -> usize {
        1
    }
}

#[test]
fn a_backup_is_absent_or_whole_after_a_power_cut() {
    prove(&Backup);
}

/// `tristore restore` of [`Backup`]'s backup: a cut at any point leaves no data
/// directory, or one that holds the store as it was backed up.
struct Restore;

impl Workload for Restore {
    type State = Option<String>;

    fn prepare(&self, dir: &Path) {
        Backup.prepare(dir);
        let store = Store::open(Backup::data(dir)).unwrap();
        tristore::backup::backup(&store, &Backup::dest(dir)).unwrap();
    }

    fn run(&self, dir: &Path, ack: &mut dyn FnMut()) {
        ack();
        tristore::backup::restore(&Backup::dest(dir), &dir.join("restored")).unwrap();
        ack();
    }

    fn expected(&self, n: usize) -> Self::State {
        Backup.expected(n)
    }

    fn unneeded_here(&self) -> &[(&str, &str)] {
        const WHY: &str = "the restore opens the store in its staging directory to check \
                           it before the rename: the catalogs' commits there change no \
                           row (every table is already in the copies), and the blob \
                           shards it makes are synced again with the restore's own \
                           directories (and made again by any later open)";
        &[
            ("redb catalog", WHY),
            ("src/r2/blobs.rs:184 directory", WHY),
            ("src/r2/blobs.rs:186 directory", WHY),
        ]
    }

    fn observe(&self, dir: &Path) -> Result<Self::State, String> {
        let restored = dir.join("restored");
        if !restored.exists() {
            return Ok(None);
        }
        Backup::describe(&Store::open(&restored).map_err(|e| e.to_string())?).map(Some)
    }

    fn writes(&self) -> usize {
        1
    }
}

#[test]
fn a_restore_is_absent_or_whole_after_a_power_cut() {
    prove(&Restore);
}
