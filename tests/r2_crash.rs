//! Crash safety of R2: a child process that writes continuously is killed with SIGKILL at
//! random moments; after reopening, every acknowledged put is intact byte for byte, no
//! object names a missing blob, and garbage collection removes what the crash orphaned.
//! The same holds when the child is the emulator, killed while its background
//! collector expires uploads and while it collects garbage.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tristore::r2::{Housekeeping, R2ErrorKind, R2GetOptions, R2MultipartOptions, R2PutOptions};
use tristore::{Store, StoreOptions};

const CHILD_ENV: &str = "TRISTORE_R2_CRASH_CHILD_DIR";
/// Acknowledged steps each round must have seen (here 120-370 a round); in the
/// housekeeping test, only its sweep rounds.
const MIN_ACKS_PER_ROUND: usize = 10;

/// Content of object `i`: sizes vary from empty to ~250 KiB, and every fifth object
/// repeats an earlier content so that deduplicated writes are crashed too.
fn content(i: u64) -> Vec<u8> {
    let seed = if i % 5 == 4 { i - 4 } else { i };
    let len = (seed % 7) as usize * 37_000 + (seed % 3) as usize;
    (0..len)
        .map(|j| (j as u64 ^ seed.wrapping_mul(0x9E37_79B9)) as u8)
        .collect()
}

fn options() -> StoreOptions {
    let mut o = StoreOptions::default();
    o.r2_limits.min_part_bytes = 1024;
    o
}

#[test]
#[ignore = "run by acknowledged_r2_writes_survive_kill_9 as a child process"]
fn r2_crash_child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by the parent test");
    let start: u64 = std::env::var("TRISTORE_R2_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::open_with(&dir, options()).unwrap();
    let bucket = store.r2().bucket("crash").unwrap();
    for i in start.. {
        let key = format!("k{i}");
        if i % 11 == 10 {
            // Multipart: up to three parts, all but the last of one size (R2 requires it)
            // and the last never larger, same bytes as content(i).
            let body = content(i);
            let up = bucket
                .create_multipart_upload(&key, &R2MultipartOptions::default())
                .unwrap();
            let part = body.len().div_ceil(3).max(1024);
            let mut chunks: Vec<&[u8]> = body.chunks(part).collect();
            if chunks.is_empty() {
                chunks.push(&body);
            }
            let parts: Vec<_> = chunks
                .iter()
                .enumerate()
                .map(|(n, c)| up.upload_part(n as u32 + 1, c).unwrap())
                .collect();
            up.complete(&parts).unwrap();
        } else {
            bucket
                .put(&key, content(i), &R2PutOptions::default())
                .unwrap()
                .unwrap();
        }
        println!("put {i}");
        if i % 4 == 3 {
            let victim = i - 2;
            bucket.delete(&[&format!("k{victim}")]).unwrap();
            println!("del {victim}");
        }
    }
}

#[test]
fn acknowledged_r2_writes_survive_kill_9() {
    let dir = dir_with_bucket();
    let mut expected: BTreeMap<u64, bool> = BTreeMap::new(); // id -> present
    let mut next = 0u64;
    let mut clock = common::KillClock::new();
    for round in 0..4 {
        let lines = common::run_and_kill_child_at(
            "r2_crash_child_writer",
            &[
                (CHILD_ENV, dir.path().display().to_string()),
                ("TRISTORE_R2_CRASH_START", next.to_string()),
            ],
            std::time::Duration::ZERO,
            "put ",
            clock.next(200, 500),
        );
        let lines: Vec<String> = lines
            .into_iter()
            .filter(|l| l.starts_with("put ") || l.starts_with("del "))
            .collect();
        let puts = lines.iter().filter(|l| l.starts_with("put ")).count();
        common::assert_round_acked(round, puts, MIN_ACKS_PER_ROUND, &lines);
        for line in &lines {
            let mut words = line.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|n| n.parse::<u64>().ok()),
            ) {
                (Some("put"), Some(i)) => {
                    expected.insert(i, true);
                    next = next.max(i + 1);
                }
                (Some("del"), Some(i)) => {
                    expected.insert(i, false);
                }
                _ => {}
            }
        }
        // Killed after acknowledging `put i` of a deleting step, the child may have
        // applied its delete without saying so: that key may be either way from now on.
        if let Some(i) = lines.last().and_then(|l| l.strip_prefix("put ")) {
            let i: u64 = i.parse().unwrap();
            if i % 4 == 3 {
                expected.remove(&(i - 2));
            }
        }
        // The child may have been killed after writing k{next} but before saying so:
        // start the next round past it so that its fate does not matter.
        next += 1;

        let store = Store::open_with(dir.path(), options()).unwrap();
        check_acknowledged(&store, &expected, round);
        let report = store.r2().gc(Duration::ZERO).unwrap();
        assert!(store.r2().fsck().unwrap().is_empty());
        assert_eq!(
            count_files(&dir.path().join("r2/blobs")),
            report.live_blobs,
            "round {round}: orphaned blobs remain after gc"
        );
        let tmp_left = std::fs::read_dir(dir.path().join("r2/tmp"))
            .unwrap()
            .count();
        assert_eq!(
            tmp_left, 0,
            "round {round}: gc left temp files ({report:?})"
        );
    }
    assert!(
        expected.values().filter(|p| **p).count() > 0,
        "the children acknowledged nothing"
    );
}

#[test]
#[ignore = "run by collection_and_upload_expiry_survive_kill_9 as a child process"]
fn r2_housekeeping_crash_child() {
    let dir = std::env::var(CHILD_ENV).expect("run by the parent test");
    let start: u64 = std::env::var("TRISTORE_R2_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    // The collector's lines, each step's start included, go to standard output: the
    // parent learns from them which step the kill interrupted.
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_env_filter("tristore::r2=debug")
        .init();
    let store = Arc::new(Store::open_with(&dir, options()).unwrap());
    let _server = tristore::server::start(
        store.clone(),
        tristore::server::ServerOptions {
            port: 0,
            s3_port: 0,
            r2_housekeeping: Housekeeping {
                interval: Duration::from_millis(5),
                grace: Duration::ZERO,
                lifecycle: true,
                upload_expiry: Some(Duration::from_millis(300)),
            },
            ..Default::default()
        },
    )
    .unwrap();
    let bucket = store.r2().bucket("crash").unwrap();
    // Each step touches only its own key k{i}, so the step in flight at the kill is the
    // only one whose outcome is unknown.
    for i in start.. {
        let key = format!("k{i}");
        // An upload left unfinished, for the collector to expire.
        let abandoned = bucket
            .create_multipart_upload(&format!("a{i}"), &R2MultipartOptions::default())
            .unwrap();
        abandoned.upload_part(1, content(i + 7)).unwrap();
        match i % 3 {
            0 => {
                // Overwritten: the first content becomes garbage.
                for c in [content(i + 1_000_000), content(i)] {
                    bucket.put(&key, c, &R2PutOptions::default()).unwrap();
                }
                println!("put {i}");
            }
            1 => {
                let body = content(i);
                let up = bucket
                    .create_multipart_upload(&key, &R2MultipartOptions::default())
                    .unwrap();
                // Two parts, the first the larger, when the body is over the minimum.
                let cut = (body.len() - body.len() / 2).max(1024).min(body.len());
                let pieces = [&body[..cut], &body[cut..]];
                let pieces = if cut == body.len() {
                    &pieces[..1]
                } else {
                    &pieces[..]
                };
                // The collector may expire the upload while it is being written.
                let done = pieces
                    .iter()
                    .zip(1..)
                    .map(|(piece, n)| up.upload_part(n, piece))
                    .collect::<Result<Vec<_>, _>>()
                    .and_then(|parts| up.complete(&parts));
                match done {
                    Ok(_) => println!("put {i}"),
                    Err(e) if e.kind == R2ErrorKind::NoSuchUpload => println!("expired {i}"),
                    Err(e) => panic!("{e}"),
                }
            }
            _ => {
                bucket
                    .put(&key, content(i), &R2PutOptions::default())
                    .unwrap();
                bucket.delete(&[&key]).unwrap();
                println!("del {i}");
            }
        }
    }
}

/// What the collector was doing when its process was killed, from the last of its
/// lines the process printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupted {
    Idle,
    UploadExpiry,
    Sweep,
}

#[test]
fn collection_and_upload_expiry_survive_kill_9() {
    let dir = dir_with_bucket();
    let mut expected: BTreeMap<u64, bool> = BTreeMap::new(); // id -> present
    let (mut next, mut collected, mut expired) = (0u64, 0usize, 0usize);
    let mut interrupted = Vec::new();
    let mut clock = common::KillClock::new();
    // Each round waits for the collector to announce a step, the two in turn, then
    // kills it a few milliseconds into it (or, now and then, just after). The expiry
    // of the writer's few abandoned uploads takes well under a millisecond, so expiry
    // rounds start with a batch of uploads already past the expiry, which the
    // collector's first run removes in one transaction: the kill lands in it.
    let steps = [
        (Interrupted::UploadExpiry, "step=\"expire_uploads\""),
        (Interrupted::Sweep, "step=\"gc\""),
    ];
    for round in 0..6 {
        let (step, marker) = steps[round % 2];
        let earliest = if step == Interrupted::UploadExpiry {
            abandon_old_uploads(dir.path());
            Duration::ZERO
        } else {
            clock.next(400, 400)
        };
        let lines = common::run_and_kill_child_at(
            "r2_housekeeping_crash_child",
            &[
                (CHILD_ENV, dir.path().display().to_string()),
                ("TRISTORE_R2_CRASH_START", next.to_string()),
            ],
            earliest,
            marker,
            clock.next(0, 3),
        );
        let mut state = Interrupted::Idle;
        let mut acks = 0;
        for line in &lines {
            if let Some(&(step, _)) = steps.iter().find(|(_, m)| line.contains(m)) {
                state = step;
            } else if line.contains("housekeeping done") {
                state = Interrupted::Idle;
                collected += usize::from(!line.contains("deleted_blobs=0"));
                expired += usize::from(!line.contains("expired_uploads=0"));
            }
            // The writer's acknowledgements are `put N`, `del N` or `expired N`; the
            // collector's thread writes to the same stream, so they are looked for
            // anywhere in a line.
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(2) {
                let (what, Ok(i)) = (pair[0], pair[1].parse::<u64>()) else {
                    continue;
                };
                if ["put", "del", "expired"].contains(&what) {
                    acks += 1;
                    expected.insert(i, what == "put");
                    next = next.max(i + 1);
                }
            }
        }
        interrupted.push(state);
        // Expiry rounds kill the child in its collector's first run, which starts as the
        // emulator does: its writer may not have finished a step by then. Sweep rounds
        // run for 400 ms or more before the kill and must have acknowledged work.
        if step == Interrupted::Sweep {
            common::assert_round_acked(round, acks, MIN_ACKS_PER_ROUND, &lines);
        }
        // The step after the last one acknowledged may or may not have happened.
        next += 1;

        let store = Store::open_with(dir.path(), options()).unwrap();
        check_acknowledged(&store, &expected, round);
        let old = old_uploads(&store);
        assert!(
            old == 0 || old == OLD_UPLOADS,
            "round {round}: an expiry was half applied ({old} of {OLD_UPLOADS} uploads left)"
        );
    }
    for (step, _) in steps {
        assert!(
            interrupted.contains(&step),
            "no kill landed in {step:?}: {interrupted:?}"
        );
    }
    assert!(
        expected.values().filter(|p| **p).count() > 0,
        "the children acknowledged nothing"
    );
    assert!(
        collected > 0 && expired > 0,
        "the collector never removed anything ({collected} collections, {expired} expiries)"
    );
    // What is left besides the live objects goes in one more run.
    let store = Store::open_with(dir.path(), options()).unwrap();
    let report = store
        .r2()
        .housekeep(&Housekeeping {
            grace: Duration::ZERO,
            upload_expiry: Some(Duration::ZERO),
            ..Housekeeping::default()
        })
        .unwrap();
    assert_eq!(
        count_files(&dir.path().join("r2/blobs")),
        report.gc.live_blobs
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("r2/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(store.r2().fsck().unwrap().is_empty());
}

const OLD_UPLOADS: usize = 2000;

/// How many of the uploads [`abandon_old_uploads`] makes are there.
fn old_uploads(store: &Store) -> usize {
    let uploads = store.r2().bucket("crash").unwrap().list_multipart_uploads();
    let uploads = uploads.unwrap();
    uploads
        .iter()
        .filter(|(key, ..)| key.starts_with("old/"))
        .count()
}

/// Makes [`OLD_UPLOADS`] unfinished uploads of one part each, and waits until they are
/// past the child collector's expiry (300 ms).
fn abandon_old_uploads(dir: &std::path::Path) {
    let store = Store::open_with(dir, options()).unwrap();
    let bucket = store.r2().bucket("crash").unwrap();
    for n in old_uploads(&store)..OLD_UPLOADS {
        let up = bucket
            .create_multipart_upload(&format!("old/{n}"), &R2MultipartOptions::default())
            .unwrap();
        up.upload_part(1, n.to_string()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(400));
}

/// A data directory with the bucket the children write to.
fn dir_with_bucket() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Store::open_with(dir.path(), options())
        .unwrap()
        .r2()
        .create_bucket("crash")
        .unwrap();
    dir
}

/// After a crash: no object or part names a missing blob, every acknowledged put
/// (`expected[i]` true) reads back byte for byte and every acknowledged delete stays.
fn check_acknowledged(store: &Store, expected: &BTreeMap<u64, bool>, round: usize) {
    let problems = store.r2().fsck().unwrap();
    assert!(problems.is_empty(), "round {round}: {problems:?}");
    let bucket = store.r2().bucket("crash").unwrap();
    for (&i, &present) in expected {
        let got = bucket
            .get(&format!("k{i}"), &R2GetOptions::default())
            .unwrap();
        match got {
            Some(o) => {
                assert!(present, "round {round}: acknowledged delete of k{i} undone");
                assert!(
                    o.bytes().unwrap() == content(i),
                    "round {round}: k{i} differs"
                );
            }
            None => assert!(!present, "round {round}: acknowledged put k{i} lost"),
        }
    }
}

fn count_files(dir: &std::path::Path) -> usize {
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
