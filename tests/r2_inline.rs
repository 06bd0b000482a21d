//! Small R2 objects live in their catalog row: a put of one is a single durable commit
//! (no blob file, no directory fsync), and everything else an object does still works
//! for them: ranges, conditionals, part reads, copies over the S3 path's get + put,
//! deletes, GC and `fsck`; data directories written with another threshold still open.

use std::path::Path;
use std::time::Duration;

use tristore::power_loss::Recording;
use tristore::r2::*;
use tristore::{Store, StoreOptions, DEFAULT_R2_INLINE_MAX_BYTES};

fn options(inline_max: u64) -> StoreOptions {
    StoreOptions {
        r2_inline_max_bytes: Some(inline_max),
        ..Default::default()
    }
}

/// Blob files under the data directory's R2 blob store.
fn blob_files(data: &Path) -> usize {
    let Ok(shards) = std::fs::read_dir(data.join("r2/blobs")) else {
        return 0;
    };
    shards
        .map(|s| std::fs::read_dir(s.unwrap().path()).unwrap().count())
        .sum()
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn get(b: &R2Bucket, key: &str, options: &R2GetOptions) -> Option<Vec<u8>> {
    b.get(key, options)
        .unwrap()
        .map(|o| o.bytes().unwrap().to_vec())
}

#[test]
fn a_small_put_is_one_catalog_commit_and_a_large_one_still_three_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.r2().create_bucket("flushes").unwrap();
    let b = store.r2().bucket("flushes").unwrap();
    let recording = Recording::start(dir.path()).unwrap();
    let flushes = |len: usize, seed: u8| {
        let before = recording.mark();
        b.put("k", body(seed, len), &R2PutOptions::default())
            .unwrap()
            .unwrap();
        let after = recording.mark();
        (after - before, recording.sites_between(before, after))
    };
    let (small, small_sites) = flushes(4096, 1);
    assert_eq!(
        small, 1,
        "a 4 KiB put flushes only the catalog: {small_sites:?}"
    );
    assert!(
        small_sites.iter().all(|s| !s.contains("src/r2/blobs.rs")),
        "{small_sites:?}"
    );
    let at_threshold = DEFAULT_R2_INLINE_MAX_BYTES as usize;
    assert_eq!(flushes(at_threshold, 2).0, 1);
    let (large, large_sites) = flushes(at_threshold + 1, 3);
    assert_eq!(
        large, 3,
        "blob, its directory, the catalog: {large_sites:?}"
    );
    drop(recording);
    assert_eq!(
        blob_files(dir.path()),
        1,
        "only the large object has a file"
    );
}

#[test]
fn inline_objects_read_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.r2().create_bucket("inline").unwrap();
    let b = store.r2().bucket("inline").unwrap();
    let data = body(7, 10_000);
    let o = b
        .put("a", &data, &R2PutOptions::default())
        .unwrap()
        .unwrap();
    b.put("empty", b"", &R2PutOptions::default()).unwrap();
    assert_eq!(blob_files(dir.path()), 0);
    assert_eq!(o.size, 10_000);
    assert_eq!(o.etag, hex_md5(&data));

    assert_eq!(get(&b, "a", &R2GetOptions::default()).unwrap(), data);
    assert_eq!(get(&b, "empty", &R2GetOptions::default()).unwrap(), b"");
    let ranged = |range| R2GetOptions {
        range: Some(range),
        ..Default::default()
    };
    let cases = [
        (
            R2Range::Offset {
                offset: 9_000,
                length: Some(500),
            },
            &data[9_000..9_500],
        ),
        (
            R2Range::Offset {
                offset: 9_990,
                length: None,
            },
            &data[9_990..],
        ),
        (R2Range::Suffix(3), &data[9_997..]),
    ];
    for (range, want) in cases {
        assert_eq!(get(&b, "a", &ranged(range)).unwrap(), want);
    }
    let (part, parts) = b.get_part("a", 1, None).unwrap().unwrap();
    assert_eq!(part.bytes().unwrap().to_vec(), data);
    assert_eq!(parts, None);

    let only_if = |c: R2Conditional| R2GetOptions {
        only_if: Some(c),
        ..Default::default()
    };
    let miss = b
        .get(
            "a",
            &only_if(R2Conditional::etag_does_not_match(&o.etag).unwrap()),
        )
        .unwrap()
        .unwrap();
    assert!(miss.body.is_none());
    let refused = b
        .put(
            "a",
            b"other",
            &R2PutOptions {
                only_if: Some(R2Conditional::etag_matches("0123").unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(refused.is_none());
    assert_eq!(get(&b, "a", &R2GetOptions::default()).unwrap(), data);

    assert_eq!(store.r2().fsck().unwrap(), Vec::<String>::new());
    b.delete(&["a"]).unwrap();
    assert_eq!(get(&b, "a", &R2GetOptions::default()), None);
    let gc = store.r2().gc(Duration::ZERO).unwrap();
    assert_eq!((gc.live_blobs, gc.deleted_blobs), (0, 0));
}

#[test]
fn a_changed_threshold_keeps_every_object_readable() {
    let dir = tempfile::tempdir().unwrap();
    let small = body(1, 1000);
    let medium = body(2, 20_000);
    {
        // As a data directory from before inline objects: every body in a blob file.
        let store = Store::open_with(dir.path(), options(0)).unwrap();
        store.r2().create_bucket("mixed").unwrap();
        let b = store.r2().bucket("mixed").unwrap();
        b.put("old-small", &small, &R2PutOptions::default())
            .unwrap();
        b.put("old-medium", &medium, &R2PutOptions::default())
            .unwrap();
        assert_eq!(blob_files(dir.path()), 2);
    }
    {
        let store = Store::open(dir.path()).unwrap();
        let b = store.r2().bucket("mixed").unwrap();
        b.put("new-small", &small, &R2PutOptions::default())
            .unwrap();
        b.put("new-medium", &medium, &R2PutOptions::default())
            .unwrap();
        // The old blob files are still referenced; the new objects added none.
        assert_eq!(blob_files(dir.path()), 2);
        assert_eq!(store.r2().gc(Duration::ZERO).unwrap().deleted_blobs, 0);
    }
    let store = Store::open_with(dir.path(), options(0)).unwrap();
    let b = store.r2().bucket("mixed").unwrap();
    for (key, want) in [
        ("old-small", &small),
        ("old-medium", &medium),
        ("new-small", &small),
        ("new-medium", &medium),
    ] {
        assert_eq!(
            &get(&b, key, &R2GetOptions::default()).unwrap(),
            want,
            "{key}"
        );
    }
    assert_eq!(store.r2().fsck().unwrap(), Vec::<String>::new());
    // Once the file-backed rows are gone, their blobs are garbage; the inline rows
    // never had any.
    b.delete(&["old-small", "old-medium"]).unwrap();
    assert_eq!(store.r2().gc(Duration::ZERO).unwrap().deleted_blobs, 2);
    assert_eq!(blob_files(dir.path()), 0);
    assert_eq!(
        get(&b, "new-medium", &R2GetOptions::default()).unwrap(),
        medium
    );
}

fn hex_md5(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}
