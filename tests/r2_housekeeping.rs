//! R2 housekeeping: the emulator's background collector and `tristore gc` bring disk use
//! back to what the live objects need after overwrites, deletes and abandoned uploads;
//! each bucket's lifecycle rules are carried out, R2's default one (uploads expire after
//! 7 days) included; and a collection never waits for, nor breaks, an upload in flight,
//! nor a read begun before its object went.

use std::io::Read;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tristore::r2::{
    Housekeeping, LifecycleAge, LifecycleRule, R2Bucket, R2ErrorKind, R2MultipartOptions,
    R2PutOptions,
};
use tristore::{Store, StoreOptions};

fn options() -> StoreOptions {
    let mut o = StoreOptions::default();
    o.r2_limits.min_part_bytes = 1024;
    // Every non-empty body in a blob file, however small: collecting blob files is what
    // these tests are about (inline objects have none: tests/r2_inline.rs).
    o.r2_inline_max_bytes = Some(0);
    o
}

/// Distinct content: `len` bytes seeded by `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((j as u64).wrapping_mul(0x9E37_79B9) ^ seed.wrapping_mul(0x85EB_CA6B)) as u8)
        .collect()
}

/// Bytes in files under `dir`.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                du(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Garbage of every kind next to one live object `keep` of `live_bytes`: 20 overwrites
/// of `churn` then its delete, an aborted two-part upload, and an upload never
/// finished. Returns the live size.
fn make_garbage(b: &R2Bucket) -> u64 {
    for i in 0..20 {
        b.put("churn", content(i, 100_000), &R2PutOptions::default())
            .unwrap();
    }
    b.delete(&["churn"]).unwrap();
    let aborted = b
        .create_multipart_upload("aborted", &R2MultipartOptions::default())
        .unwrap();
    aborted.upload_part(1, content(100, 50_000)).unwrap();
    aborted.upload_part(2, content(101, 10_000)).unwrap();
    aborted.abort().unwrap();
    let abandoned = b
        .create_multipart_upload("abandoned", &R2MultipartOptions::default())
        .unwrap();
    abandoned.upload_part(1, content(200, 40_000)).unwrap();
    let live = content(300, 30_000);
    b.put("keep", &live, &R2PutOptions::default()).unwrap();
    live.len() as u64
}

/// Sets the mtime of every blob `age` back, as if written that long ago.
fn age_blobs(dir: &Path, age: Duration) {
    for shard in std::fs::read_dir(dir.join("r2/blobs")).unwrap() {
        for blob in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            std::fs::File::options()
                .write(true)
                .open(blob.unwrap().path())
                .unwrap()
                .set_modified(std::time::SystemTime::now() - age)
                .unwrap();
        }
    }
}

fn assert_only_live_data_left(store: &Store, dir: &Path, b: &R2Bucket, live_bytes: u64) {
    assert_eq!(du(&dir.join("r2/blobs")), live_bytes);
    assert!(store.r2().fsck().unwrap().is_empty());
    assert!(b.list_multipart_uploads().unwrap().is_empty());
    let kept = b.get("keep", &Default::default()).unwrap().unwrap();
    assert_eq!(kept.bytes().unwrap(), content(300, 30_000));
}

/// The emulator on `store`, its collector running every 50 ms with no grace period.
fn serve(store: &Arc<Store>, housekeeping: Housekeeping) -> tristore::server::RunningServer {
    tristore::server::start(
        store.clone(),
        tristore::server::ServerOptions {
            port: 0,
            s3_port: 0,
            r2_housekeeping: Housekeeping {
                interval: Duration::from_millis(50),
                grace: Duration::ZERO,
                ..housekeeping
            },
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn the_emulator_collects_garbage_and_expires_uploads_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_with(dir.path(), options()).unwrap());
    store.r2().create_bucket("churn").unwrap();
    let b = store.r2().bucket("churn").unwrap();
    let server = serve(
        &store,
        Housekeeping {
            upload_expiry: Some(Duration::from_secs(1)),
            ..Housekeeping::default()
        },
    );
    let live = make_garbage(&b);
    // Not a speed check: the collector runs every 50 ms, so this only bounds a hang.
    let deadline = Instant::now() + Duration::from_secs(60);
    while du(&dir.path().join("r2/blobs")) != live
        || !b.list_multipart_uploads().unwrap().is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the collector left {} bytes of blobs for {live} live bytes, and uploads {:?}",
            du(&dir.path().join("r2/blobs")),
            b.list_multipart_uploads().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_only_live_data_left(&store, dir.path(), &b, live);
    server.shutdown().unwrap();
}

#[test]
fn housekeeping_expires_only_uploads_past_the_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    store.r2().create_bucket("uploads").unwrap();
    let b = store.r2().bucket("uploads").unwrap();
    let up = b
        .create_multipart_upload("young", &R2MultipartOptions::default())
        .unwrap();
    let part = up.upload_part(1, content(1, 5000)).unwrap();
    let week = Housekeeping {
        grace: Duration::ZERO,
        ..Housekeeping::default()
    };
    let report = store.r2().housekeep(&week).unwrap();
    assert_eq!(
        report.lifecycle.aborted_uploads, 0,
        "the default rule waits 7 days"
    );
    assert_eq!((report.expired_uploads, report.gc.deleted_blobs), (0, 0));
    assert_eq!(report.gc.live_blobs, 1, "a part of a live upload is live");
    up.complete(std::slice::from_ref(&part)).unwrap();

    let old = b
        .create_multipart_upload("old", &R2MultipartOptions::default())
        .unwrap();
    old.upload_part(1, content(2, 5000)).unwrap();
    let report = store
        .r2()
        .housekeep(&Housekeeping {
            upload_expiry: Some(Duration::ZERO),
            ..week
        })
        .unwrap();
    assert_eq!((report.expired_uploads, report.gc.deleted_blobs), (1, 1));
    assert_eq!(
        old.upload_part(2, "x").unwrap_err().kind,
        R2ErrorKind::NoSuchUpload
    );
    assert!(b.list_multipart_uploads().unwrap().is_empty());
    assert_eq!(du(&dir.path().join("r2/blobs")), 5000);
    assert!(store.r2().fsck().unwrap().is_empty());
}

#[test]
fn the_emulator_carries_out_each_buckets_lifecycle_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_with(dir.path(), options()).unwrap());
    for name in ["ruled", "default"] {
        store.r2().create_bucket(name).unwrap();
    }
    let ruled = store.r2().bucket("ruled").unwrap();
    let default = store.r2().bucket("default").unwrap();
    // A date in the past: due at once. Rules with days cannot come due in a test.
    ruled
        .set_lifecycle(vec![LifecycleRule {
            id: "tmp".into(),
            enabled: true,
            prefix: "tmp/".into(),
            expiration: Some(LifecycleAge::Date(0)),
            ..Default::default()
        }])
        .unwrap();
    for (seed, b) in [(1, &ruled), (3, &default)] {
        b.put("tmp/a", content(seed, 4000), &R2PutOptions::default())
            .unwrap();
        b.put("keep/b", content(seed + 1, 3000), &R2PutOptions::default())
            .unwrap();
    }
    let server = serve(&store, Housekeeping::default());
    // Not a speed check: the collector runs every 50 ms, so this only bounds a hang.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ruled.head("tmp/a").unwrap().is_some() || du(&dir.path().join("r2/blobs")) != 10_000 {
        assert!(Instant::now() < deadline, "the rule was never carried out");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.shutdown().unwrap();
    assert!(
        ruled.head("keep/b").unwrap().is_some(),
        "outside the rule's prefix"
    );
    assert!(
        default.head("tmp/a").unwrap().is_some(),
        "another bucket's rule expired this"
    );
    assert!(store.r2().fsck().unwrap().is_empty());
}

/// A body that sends `first` bytes, then waits for a word on `resume` before the rest.
struct Stalled {
    data: Vec<u8>,
    at: usize,
    first: usize,
    resume: mpsc::Receiver<()>,
}

impl Read for Stalled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.first {
            let _ = self.resume.recv();
        }
        let end = if self.at < self.first {
            self.first
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_collection_neither_waits_for_nor_breaks_an_upload_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_with(dir.path(), options()).unwrap());
    store.r2().create_bucket("slow").unwrap();
    let tmp = dir.path().join("r2/tmp");
    std::fs::write(tmp.join("left-by-a-crash"), b"partial body").unwrap();

    let data = content(7, 3 << 20);
    let (resume, resumed) = mpsc::channel();
    let uploader = {
        let (store, data) = (store.clone(), data.clone());
        std::thread::spawn(move || {
            let mut body = Stalled {
                at: 0,
                first: 1 << 20,
                resume: resumed,
                data,
            };
            let len = body.data.len() as u64;
            store
                .r2()
                .bucket("slow")
                .unwrap()
                .put_reader("big", &mut body, len, &R2PutOptions::default())
                .unwrap()
                .unwrap()
        })
    };
    let in_flight = |tmp: &Path| std::fs::read_dir(tmp).unwrap().count() == 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !in_flight(&tmp) {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(10));
    }

    let (done, report) = mpsc::channel();
    let collector = {
        let store = store.clone();
        std::thread::spawn(move || done.send(store.r2().gc(Duration::ZERO).unwrap()))
    };
    // Not a speed check: only bounds the wait of a collection stuck behind the upload.
    let report = report
        .recv_timeout(Duration::from_secs(60))
        .expect("the collection waited for the stalled upload");
    collector.join().unwrap().unwrap();
    assert_eq!(report.deleted_temp_files, 1, "only the leftover goes");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1);

    resume.send(()).unwrap();
    let object = uploader.join().unwrap();
    assert_eq!(object.size, data.len() as u64);
    let got = store.r2().bucket("slow").unwrap();
    let got = got.get("big", &Default::default()).unwrap().unwrap();
    assert!(got.bytes().unwrap() == data);
    assert!(store.r2().fsck().unwrap().is_empty());
}

#[test]
fn tristore_gc_reclaims_the_space_of_overwrites_deletes_and_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let store = Store::open_with(dir.path(), options()).unwrap();
        store.r2().create_bucket("churn").unwrap();
        let b = store.r2().bucket("churn").unwrap();
        let live = make_garbage(&b);
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_tristore"))
                .arg("--data-dir")
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap()
        };
        let busy = run(&["gc"]);
        assert!(
            !busy.status.success(),
            "gc must not work on a data directory another process has open"
        );
        drop(b);
        drop(store);
        let report = |args: &[&str]| {
            let out = run(args);
            assert!(out.status.success(), "{out:?}");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        // The unfinished upload stays, and so does its part.
        let kept = report(&["gc", "--grace", "0"]);
        assert_eq!(kept["expired_uploads"], 0, "{kept}");
        assert_eq!(kept["live_blobs"], 2, "{kept}");
        assert_eq!(kept["deleted_blobs"], 22, "{kept}");
        let expired = report(&["gc", "--grace", "0", "--upload-expiry", "0"]);
        assert_eq!(expired["expired_uploads"], 1, "{expired}");
        assert_eq!(expired["live_blobs"], 1, "{expired}");
        assert_eq!(expired["deleted_blobs"], 1, "{expired}");
        live
    };
    let store = Store::open_with(dir.path(), options()).unwrap();
    let b = store.r2().bucket("churn").unwrap();
    assert_only_live_data_left(&store, dir.path(), &b, live);
}

#[test]
fn a_read_begun_before_its_object_went_finishes_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    store.r2().create_bucket("reads").unwrap();
    let b = store.r2().bucket("reads").unwrap();
    // Two parts each: a reader opens the second only when it gets there.
    let keys = ["overwritten", "deleted", "replaced"];
    let mut expected = Vec::new();
    for (n, key) in (0..).zip(keys) {
        let up = b
            .create_multipart_upload(key, &R2MultipartOptions::default())
            .unwrap();
        let (first, second) = (content(10 * n, 5000), content(10 * n + 1, 3000));
        let parts = [
            up.upload_part(1, &first).unwrap(),
            up.upload_part(2, &second).unwrap(),
        ];
        up.complete(&parts).unwrap();
        expected.push([first, second].concat());
    }
    let day = Duration::from_secs(24 * 3600);
    // Written long ago: the grace period must count from when the object went.
    age_blobs(dir.path(), 2 * day);
    let mut reads: Vec<_> = keys
        .iter()
        .map(|key| {
            let mut body = b
                .get(key, &Default::default())
                .unwrap()
                .unwrap()
                .body
                .unwrap();
            let mut start = vec![0; 100];
            body.read_exact(&mut start).unwrap();
            (body, start)
        })
        .collect();

    b.put("overwritten", content(97, 10), &R2PutOptions::default())
        .unwrap();
    b.delete(&["deleted"]).unwrap();
    let up = b
        .create_multipart_upload("replaced", &R2MultipartOptions::default())
        .unwrap();
    up.complete(&[up.upload_part(1, content(98, 10)).unwrap()])
        .unwrap();
    let grace = Duration::from_secs(3600);
    let report = store.r2().gc(grace).unwrap();
    assert_eq!(
        (report.deleted_blobs, report.young_blobs),
        (0, 6),
        "the blobs of the objects that went wait out the grace period"
    );
    for ((body, mut got), want) in reads.drain(..).zip(&expected) {
        let mut body = body;
        body.read_to_end(&mut got).unwrap();
        assert!(
            &got == want,
            "a read begun before its object went was cut short"
        );
    }

    age_blobs(dir.path(), 2 * day);
    assert_eq!(store.r2().gc(grace).unwrap().deleted_blobs, 6);
    assert!(store.r2().fsck().unwrap().is_empty());
}

/// Files under `dir`, in all its subdirectories.
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Writers put, overwrite (also with content another writer's key holds, so blobs are
/// shared), delete, and run multipart uploads, some of them left open across many
/// collections before completing, while another thread collects garbage with no grace
/// period in a loop. Each writer reads its key back after every step. At the end every
/// acknowledged object reads back exactly, fsck finds nothing, and one more collection
/// leaves exactly the live blobs.
#[test]
fn collections_racing_writers_lose_no_acknowledged_object() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    const WRITERS: u64 = 3;
    const STEPS: u64 = 120;
    const PART: usize = 1024;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    store.r2().create_bucket("race").unwrap();
    let done = AtomicBool::new(false);
    let (models, (runs, deleted)) = std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let (mut runs, mut deleted) = (0usize, 0usize);
            // At least one collection after the writers finish, whatever the timing.
            loop {
                let last = done.load(Ordering::SeqCst);
                let report = store.r2().gc(Duration::ZERO).unwrap();
                runs += 1;
                deleted += report.deleted_blobs;
                if last {
                    break (runs, deleted);
                }
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &store;
                scope.spawn(move || {
                    let b = store.r2().bucket("race").unwrap();
                    let mut model: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
                    // An upload with its first part sent, completed some steps later.
                    let mut open: Option<(String, tristore::r2::R2MultipartUpload, Vec<u8>, _)> =
                        None;
                    let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for step in 0..STEPS {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = format!("w{w}/k{}", x % 10);
                        let unique = (w << 32) | step;
                        match (x >> 8) % 10 {
                            0..=3 => {
                                let body = content(unique, ((x >> 16) % 20_000) as usize);
                                b.put(&key, &body, &R2PutOptions::default()).unwrap();
                                model.insert(key.clone(), Some(body));
                            }
                            4 | 5 => {
                                // One of 8 contents every writer uses: deduplicated blobs
                                // that other keys keep alive or let go.
                                let seed = (x >> 16) % 8;
                                let body = content(1000 + seed, 3000 + seed as usize * 100);
                                b.put(&key, &body, &R2PutOptions::default()).unwrap();
                                model.insert(key.clone(), Some(body));
                            }
                            6 => {
                                b.delete(&[&key]).unwrap();
                                model.insert(key.clone(), None);
                            }
                            7 | 8 => {
                                let body = content(unique, 2 * PART + ((x >> 16) % 1024) as usize);
                                let up = b
                                    .create_multipart_upload(&key, &R2MultipartOptions::default())
                                    .unwrap();
                                let parts: Vec<_> = body
                                    .chunks(PART)
                                    .zip(1..)
                                    .map(|(c, n)| {
                                        std::thread::yield_now();
                                        up.upload_part(n, c).unwrap()
                                    })
                                    .collect();
                                up.complete(&parts).unwrap();
                                model.insert(key.clone(), Some(body));
                            }
                            _ => {
                                if let Some((k, up, body, first)) = open.take() {
                                    let second = up.upload_part(2, &body[PART..]).unwrap();
                                    up.complete(&[first, second]).unwrap();
                                    let got = b.get(&k, &Default::default()).unwrap().unwrap();
                                    assert!(got.bytes().unwrap() == body, "{k}: upload differs");
                                    model.insert(k, Some(body));
                                }
                                let body = content(unique, PART + 500);
                                let up = b
                                    .create_multipart_upload(&key, &R2MultipartOptions::default())
                                    .unwrap();
                                let first = up.upload_part(1, &body[..PART]).unwrap();
                                open = Some((key.clone(), up, body, first));
                            }
                        }
                        let got = b.get(&key, &Default::default()).unwrap();
                        let want = model.get(&key).cloned().flatten();
                        assert!(
                            got.map(|o| o.bytes().unwrap()) == want,
                            "{key} reads back otherwise than written, step {step}"
                        );
                    }
                    if let Some((k, up, body, first)) = open.take() {
                        let second = up.upload_part(2, &body[PART..]).unwrap();
                        up.complete(&[first, second]).unwrap();
                        model.insert(k, Some(body));
                    }
                    model
                })
            })
            .collect();
        let models: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        // Stop the collector before a writer's panic is passed on, or the scope would
        // wait for it forever.
        done.store(true, Ordering::SeqCst);
        let collected = collector.join().unwrap();
        let models: Vec<_> = models
            .into_iter()
            .map(|m| m.unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (models, collected)
    });
    assert!(
        runs > 3 && deleted > 0,
        "the collector ran {runs} times and removed {deleted} blobs: too few to race"
    );

    let b = store.r2().bucket("race").unwrap();
    let mut live = 0;
    for model in &models {
        for (key, want) in model {
            let got = b.get(key, &Default::default()).unwrap();
            assert!(
                got.map(|o| o.bytes().unwrap()) == *want,
                "{key}: acknowledged state lost"
            );
            live += usize::from(want.is_some());
        }
    }
    let listed = b.list(&Default::default()).unwrap().objects.len();
    assert_eq!(
        listed, live,
        "listing differs from the acknowledged objects"
    );
    assert!(b.list_multipart_uploads().unwrap().is_empty());
    let problems = store.r2().fsck().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let report = store.r2().gc(Duration::ZERO).unwrap();
    assert_eq!(
        count_files(&dir.path().join("r2/blobs")),
        report.live_blobs,
        "blobs besides the live ones remain: {report:?}"
    );
    assert!(store.r2().fsck().unwrap().is_empty());
}
