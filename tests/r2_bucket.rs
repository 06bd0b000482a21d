//! R2's binding semantics on a real store: objects, metadata, checksums, conditionals,
//! ranges, listing, multipart, buckets and errors.

use serde_json::json;
use tristore::r2::*;
use tristore::Store;

fn bucket() -> (tempfile::TempDir, Store, R2Bucket) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.r2().create_bucket("vault").unwrap();
    let b = store.r2().bucket("vault").unwrap();
    (dir, store, b)
}

/// Files under `dir`, recursively (0 when it does not exist).
fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { count_files(&p) } else { 1 })
        .sum()
}

fn put(b: &R2Bucket, key: &str, body: &[u8]) -> R2Object {
    b.put(key, body, &R2PutOptions::default()).unwrap().unwrap()
}

fn get_bytes(b: &R2Bucket, key: &str, options: &R2GetOptions) -> Vec<u8> {
    b.get(key, options).unwrap().unwrap().bytes().unwrap()
}

#[test]
fn put_get_head_match_the_miniflare_capture() {
    let (_d, _s, b) = bucket();
    let opts = R2PutOptions {
        http_metadata: HttpMetadata {
            content_type: Some("text/plain".into()),
            cache_control: Some("max-age=60".into()),
            ..Default::default()
        },
        custom_metadata: vec![("owner".into(), "probe".into())],
        ..Default::default()
    };
    let o = b.put("docs/a.txt", "hello world", &opts).unwrap().unwrap();
    // shared/spec/wire-captures/miniflare_probe.json, r2.put
    assert_eq!(o.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(o.http_etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    assert_eq!(o.size, 11);
    assert_eq!(o.version.len(), 32);
    assert_eq!(
        o.checksums.md5.as_deref(),
        Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
    );
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v["httpMetadata"],
        json!({"contentType": "text/plain", "cacheControl": "max-age=60"})
    );
    assert!(v["uploaded"].as_str().unwrap().ends_with('Z'));

    let again = put(&b, "docs/a.txt", b"hello again");
    assert_ne!(again.version, o.version, "a new version on every write");
    assert_eq!(again.etag, "44997f87b891f89472b7f2bbe4e000c3");
    let head = b.head("docs/a.txt").unwrap().unwrap();
    assert_eq!(
        head.range,
        Some(ReturnedRange {
            offset: 0,
            length: 11
        })
    );
    assert_eq!(
        head.http_metadata,
        Some(HttpMetadata::default()),
        "a put replaces metadata"
    );
    assert_eq!(
        get_bytes(&b, "docs/a.txt", &R2GetOptions::default()),
        b"hello again"
    );
    assert!(b.head("missing").unwrap().is_none());
    assert!(b
        .get("missing", &R2GetOptions::default())
        .unwrap()
        .is_none());

    let empty = put(&b, "empty", b"");
    assert_eq!(empty.etag, "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn ranges_clamp_and_refuse_like_r2() {
    let (_d, _s, b) = bucket();
    put(&b, "a", b"hello again");
    let range = |r| R2GetOptions {
        range: Some(r),
        ..Default::default()
    };
    let got = b
        .get(
            "a",
            &range(R2Range::Offset {
                offset: 6,
                length: Some(5),
            }),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        got.object.range,
        Some(ReturnedRange {
            offset: 6,
            length: 5
        })
    );
    assert_eq!(got.bytes().unwrap(), b"again");
    assert_eq!(get_bytes(&b, "a", &range(R2Range::Suffix(3))), b"ain");
    assert_eq!(
        get_bytes(
            &b,
            "a",
            &range(R2Range::Offset {
                offset: 6,
                length: Some(500)
            })
        ),
        b"again"
    );
    let e = b
        .get(
            "a",
            &range(R2Range::Offset {
                offset: 12,
                length: None,
            }),
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.kind.code(), e.kind.http_status()),
        (R2ErrorKind::InvalidRange, 10039, 416)
    );
}

#[test]
fn conditional_get_returns_the_object_without_a_body() {
    let (_d, _s, b) = bucket();
    let o = put(&b, "a", b"x");
    let cond = |c: R2Conditional| R2GetOptions {
        only_if: Some(c),
        ..Default::default()
    };
    let r = b
        .get(
            "a",
            &cond(R2Conditional::etag_does_not_match(&o.etag).unwrap()),
        )
        .unwrap()
        .unwrap();
    assert!(r.body.is_none());
    assert_eq!(r.object.etag, o.etag);
    let r = b
        .get("a", &cond(R2Conditional::etag_matches(&o.etag).unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(r.bytes().unwrap(), b"x");
    let quoted = R2Conditional::etag_matches(&o.http_etag).unwrap_err();
    assert!(quoted.message.contains("should not be wrapped in quotes"));
}

#[test]
fn conditional_put_stores_nothing_when_it_fails() {
    let (_d, _s, b) = bucket();
    let only_new = R2PutOptions {
        only_if: Some(R2Conditional::etag_does_not_match("*").unwrap()),
        ..Default::default()
    };
    assert!(b.put("k", "first", &only_new).unwrap().is_some());
    assert!(b.put("k", "second", &only_new).unwrap().is_none());
    assert_eq!(get_bytes(&b, "k", &R2GetOptions::default()), b"first");
    let if_match = R2PutOptions {
        only_if: Some(R2Conditional::etag_matches("0000").unwrap()),
        ..Default::default()
    };
    assert!(b.put("k", "third", &if_match).unwrap().is_none());
    assert!(b.put("absent", "x", &if_match).unwrap().is_none());
    assert!(b.head("absent").unwrap().is_none());
}

#[test]
fn supplied_checksums_are_verified_and_kept() {
    let (_d, _s, b) = bucket();
    let sha = "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81";
    let opts = R2PutOptions {
        checksum: Some(ExpectedChecksum::from_hex("sha256", sha).unwrap()),
        ..Default::default()
    };
    let o = b.put("b.bin", [1u8, 2, 3], &opts).unwrap().unwrap();
    assert_eq!(o.checksums.sha256.as_deref(), Some(sha));
    assert_eq!(
        o.checksums.md5.as_deref(),
        Some("5289df737df57326fcdd22597afb1fac")
    );
    let e = b.put("c.bin", [1u8, 2, 4], &opts).unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::BadDigest);
    assert_eq!(e.kind.code(), 10037);
    assert_eq!(
        e.message,
        format!(
            "The SHA-256 checksum you specified did not match what we received.\n\
             You provided a SHA-256 checksum with value: {sha}\n\
             Actual SHA-256 was: d4b29a968c40173638ded8d174c86957afa211be479cee020dba5dfe127d91ca"
        )
    );
    assert!(
        b.head("c.bin").unwrap().is_none(),
        "nothing stored on a mismatch"
    );
    // Nor over an existing object: it keeps its body. These bodies are small enough to
    // live in the catalog row, so a refused one leaves no file behind (a large one's blob
    // is left for the next collection: `refused_large_bodies_are_collected`).
    let files = |sub: &str| count_files(&_d.path().join(sub));
    let e = b.put("b.bin", [9u8, 9, 9], &opts).unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::BadDigest);
    let kept = b.get("b.bin", &Default::default()).unwrap().unwrap();
    assert_eq!(kept.object.checksums.sha256.as_deref(), Some(sha));
    assert_eq!(kept.bytes().unwrap(), [1u8, 2, 3]);
    assert_eq!((files("r2/blobs"), files("r2/tmp")), (0, 0));
    let report = _s.r2().gc(std::time::Duration::ZERO).unwrap();
    assert_eq!(
        (report.deleted_blobs, report.live_blobs),
        (0, 0),
        "{report:?}"
    );
    assert!(_s.r2().fsck().unwrap().is_empty());
    let md5 = R2PutOptions {
        checksum: Some(
            ExpectedChecksum::from_hex("md5", "5289df737df57326fcdd22597afb1fac").unwrap(),
        ),
        ..Default::default()
    };
    b.put("d.bin", [1u8, 2, 3], &md5).unwrap().unwrap();
    let short = ExpectedChecksum::from_hex("md5", "abc").unwrap_err();
    assert_eq!(short.message, "MD5 is 32 hex characters, not 3");
}

#[test]
fn limits_and_error_texts() {
    let (_d, _s, b) = bucket();
    let long = "k".repeat(1025);
    let e = b.put(&long, "x", &R2PutOptions::default()).unwrap_err();
    assert_eq!(e.kind.code(), 10020);
    b.put(&"k".repeat(1024), "x", &R2PutOptions::default())
        .unwrap();
    let big_meta = R2PutOptions {
        custom_metadata: vec![("k".into(), "v".repeat(8192))],
        ..Default::default()
    };
    let e = b.put("m", "x", &big_meta).unwrap_err();
    assert_eq!(
        e.to_string(),
        "put: Your metadata headers exceed the maximum allowed metadata size. (10012)"
    );
    let e = b
        .put_reader("short", &mut &b"abc"[..], 5, &R2PutOptions::default())
        .unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::IncompleteBody);
    let e = b
        .list(&R2ListOptions {
            limit: Some(1001),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "list: MaxKeys params must be positive integer <= 1000. (10022)"
    );
}

#[test]
fn list_with_prefix_delimiter_cursor_and_start_after() {
    let (_d, _s, b) = bucket();
    for key in ["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/1", "d/y/2", "é"] {
        put(&b, key, key.as_bytes());
    }
    let keys = |r: &R2Objects| r.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
    let all = b.list(&R2ListOptions::default()).unwrap();
    assert_eq!(
        keys(&all),
        vec!["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/1", "d/y/2", "é"]
    );
    assert!(!all.truncated && all.cursor.is_none());
    assert!(
        all.objects[0].http_metadata.is_none(),
        "metadata only when included"
    );

    let top = b
        .list(&R2ListOptions {
            delimiter: Some("/".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys(&top), vec!["c", "é"]);
    assert_eq!(top.delimited_prefixes, vec!["a/", "b/", "d/"]);

    let under_a = b
        .list(&R2ListOptions {
            prefix: Some("a/".into()),
            delimiter: Some("/".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys(&under_a), vec!["a/1", "a/2"]);
    assert_eq!(under_a.delimited_prefixes, vec!["a/b/"]);

    // Page by two with a delimiter: prefixes and keys share the limit, and a rolled-up
    // prefix is never listed twice across pages.
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = b
            .list(&R2ListOptions {
                limit: Some(2),
                delimiter: Some("/".into()),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .unwrap();
        assert!(page.objects.len() + page.delimited_prefixes.len() <= 2);
        seen.extend(page.delimited_prefixes.clone());
        seen.extend(keys(&page));
        if !page.truncated {
            break;
        }
        cursor = page.cursor;
    }
    seen.sort();
    assert_eq!(seen, vec!["a/", "b/", "c", "d/", "é"]);

    let after = b
        .list(&R2ListOptions {
            start_after: Some("b/1".into()),
            include_custom_metadata: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys(&after), vec!["c", "d/x/1", "d/y/2", "é"]);
    assert_eq!(after.objects[0].custom_metadata, Some(vec![]));
    // A cursor tristore did not make, or one altered, is InvalidArgument, and the message
    // says what to do.
    let page = b
        .list(&R2ListOptions {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    let mut altered = page.cursor.clone().unwrap();
    altered.push('!');
    for cursor in ["not a cursor".to_owned(), altered, String::new()] {
        let e = b
            .list(&R2ListOptions {
                cursor: Some(cursor.clone()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind, R2ErrorKind::InvalidArgument, "{cursor:?}");
        assert_eq!(
            e.message, "Invalid cursor: pass back the cursor of the previous page unchanged",
            "{cursor:?}"
        );
    }
}

#[test]
fn delete_one_or_many_and_strong_consistency() {
    let (_d, _s, b) = bucket();
    for k in ["a", "b", "c"] {
        put(&b, k, b"x");
    }
    b.delete(&["a"]).unwrap();
    assert!(b.head("a").unwrap().is_none());
    b.delete(&["b", "c", "never-existed"]).unwrap();
    assert!(b
        .list(&R2ListOptions::default())
        .unwrap()
        .objects
        .is_empty());
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    put(&b, "kept", b"x");
    let mut refs = refs;
    refs.push("kept");
    let e = b.delete(&refs).unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::InvalidArgument);
    assert_eq!(e.message, "You can delete at most 1000 keys per call");
    assert!(
        b.head("kept").unwrap().is_some(),
        "a refused delete deletes nothing"
    );
    // Exactly 1,000 is allowed.
    refs.truncate(999);
    refs.push("kept");
    b.delete(&refs).unwrap();
    assert!(b.head("kept").unwrap().is_none());
}

#[test]
fn multipart_upload_complete_abort_resume() {
    let (_d, _s, b) = bucket();
    let up = b
        .create_multipart_upload("big.bin", &R2MultipartOptions::default())
        .unwrap();
    let p1 = up.upload_part(1, vec![0u8; 5 * 1024 * 1024]).unwrap();
    let p2 = up.upload_part(2, "tail").unwrap();
    assert_eq!(
        p2.etag, "7aea2552dfe7eb84b9443b6fc9ba6e01",
        "a part's etag is its MD5"
    );
    assert!(
        b.head("big.bin").unwrap().is_none(),
        "invisible until completed"
    );
    let resumed = b.resume_multipart_upload("big.bin", &up.upload_id);
    assert_eq!(
        resumed
            .list_parts()
            .unwrap()
            .iter()
            .map(|p| p.size)
            .collect::<Vec<_>>(),
        vec![5 * 1024 * 1024, 4]
    );
    let o = resumed.complete(&[p1.clone(), p2.clone()]).unwrap();
    assert!(o.etag.ends_with("-2"));
    assert_eq!(o.size, 5 * 1024 * 1024 + 4);
    assert_eq!(o.checksums.md5, None, "multipart objects have no MD5");
    let tail = b
        .get(
            "big.bin",
            &R2GetOptions {
                range: Some(R2Range::Suffix(6)),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        tail.bytes().unwrap(),
        b"\0\0tail",
        "a range across the part boundary"
    );
    assert_eq!(
        up.complete(&[p1, p2]).unwrap_err().kind,
        R2ErrorKind::NoSuchUpload
    );

    let small = b
        .create_multipart_upload("small", &R2MultipartOptions::default())
        .unwrap();
    let a = small.upload_part(1, "aa").unwrap();
    let c = small.upload_part(2, "b").unwrap();
    assert_eq!(
        small.complete(&[a.clone(), c.clone()]).unwrap_err().kind,
        R2ErrorKind::EntityTooSmall
    );
    let wrong = R2UploadedPart {
        part_number: 2,
        etag: "0".repeat(32),
    };
    assert_eq!(
        small.complete(&[a, wrong]).unwrap_err().kind,
        R2ErrorKind::InvalidPart
    );
    assert!(small
        .upload_part(10_001, "x")
        .unwrap_err()
        .message
        .contains("between 1 and 10000"));
    small.abort().unwrap();
    small.abort().unwrap();
    assert_eq!(
        small.upload_part(3, "x").unwrap_err().kind,
        R2ErrorKind::NoSuchUpload
    );

    let uneven = b
        .create_multipart_upload("uneven", &R2MultipartOptions::default())
        .unwrap();
    let parts = [
        uneven.upload_part(1, vec![1u8; 5 * 1024 * 1024]).unwrap(),
        uneven
            .upload_part(2, vec![1u8; 5 * 1024 * 1024 + 1])
            .unwrap(),
        uneven.upload_part(3, "x").unwrap(),
    ];
    assert_eq!(uneven.complete(&parts).unwrap_err().kind.code(), 10048);
}

/// S3 and R2 refuse a part list that is not strictly ascending (a part listed twice
/// would otherwise be stored twice: one 5 MiB part listed 20,000 times made a 97.7 GiB
/// object) or longer than an upload can be; nothing is stored and the upload stays open.
#[test]
fn complete_takes_each_part_once_in_ascending_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = tristore::StoreOptions::default();
    options.r2_limits.min_part_bytes = 4;
    let store = Store::open_with(dir.path(), options).unwrap();
    store.r2().create_bucket("vault").unwrap();
    let b = store.r2().bucket("vault").unwrap();
    let up = b
        .create_multipart_upload("amplified", &R2MultipartOptions::default())
        .unwrap();
    let p1 = up.upload_part(1, "AAAA").unwrap();
    let p2 = up.upload_part(2, "AAAA").unwrap();
    let p3 = up.upload_part(3, "tail").unwrap();
    let order_error = |parts: &[R2UploadedPart]| {
        let e = up.complete(parts).unwrap_err();
        assert_eq!(
            (e.kind, e.kind.s3_name(), e.kind.http_status()),
            (R2ErrorKind::InvalidPartOrder, "InvalidPartOrder", 400),
            "{parts:?}"
        );
        assert_eq!(e.message, "The list of parts was not in ascending order. The parts list must be specified in order by part number.");
    };
    order_error(&[p1.clone(), p1.clone(), p3.clone()]);
    order_error(&[p2.clone(), p1.clone(), p3.clone()]);
    order_error(&[p1.clone(), p3.clone(), p2.clone()]);
    let too_many = vec![p1.clone(); 10_001];
    let e = up.complete(&too_many).unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::InvalidArgument);
    assert!(e.message.contains("at most 10000 parts"), "{}", e.message);
    assert!(b.head("amplified").unwrap().is_none(), "nothing stored");

    // Gaps are fine, as in S3.
    let o = up.complete(&[p1, p3]).unwrap();
    assert_eq!((o.size, o.etag.ends_with("-2")), (8, true));
    assert_eq!(
        get_bytes(&b, "amplified", &R2GetOptions::default()),
        b"AAAAtail"
    );
}

#[test]
fn buckets_follow_r2_rules() {
    let (_d, store, b) = bucket();
    let r2 = store.r2();
    for bad in [
        "ab",
        "Upper",
        "-lead",
        "trail-",
        "under_score",
        &"a".repeat(64),
    ] {
        assert_eq!(
            r2.create_bucket(bad).unwrap_err().kind,
            R2ErrorKind::InvalidBucketName,
            "{bad}"
        );
    }
    assert_eq!(
        r2.create_bucket("vault").unwrap_err().kind,
        R2ErrorKind::BucketAlreadyExists
    );
    r2.create_bucket("other-1").unwrap();
    assert_eq!(
        r2.list_buckets()
            .unwrap()
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>(),
        vec!["other-1", "vault"]
    );
    put(&b, "k", b"x");
    assert_eq!(
        r2.delete_bucket("vault").unwrap_err().kind,
        R2ErrorKind::BucketNotEmpty
    );
    b.delete(&["k"]).unwrap();
    let up = b
        .create_multipart_upload("m", &R2MultipartOptions::default())
        .unwrap();
    assert_eq!(
        r2.delete_bucket("vault").unwrap_err().kind,
        R2ErrorKind::BucketNotEmpty,
        "an upload in progress counts"
    );
    up.abort().unwrap();
    r2.delete_bucket("vault").unwrap();
    assert_eq!(
        r2.bucket("vault").unwrap_err().kind,
        R2ErrorKind::NoSuchBucket
    );
    assert_eq!(
        r2.delete_bucket("vault").unwrap_err().kind,
        R2ErrorKind::NoSuchBucket
    );
}

/// A body refused for its checksum was already placed as a blob when the digest was
/// compared (it is too large to live in the catalog row); nothing references it, and
/// the next collection removes it.
#[test]
fn refused_large_bodies_are_collected() {
    let (d, s, b) = bucket();
    let body = vec![5u8; 100_000];
    let opts = R2PutOptions {
        checksum: Some(ExpectedChecksum::from_hex("md5", &"0".repeat(32)).unwrap()),
        ..Default::default()
    };
    let e = b.put("big.bin", &body, &opts).unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::BadDigest);
    assert!(b.head("big.bin").unwrap().is_none());
    let files = |sub: &str| count_files(&d.path().join(sub));
    assert_eq!((files("r2/blobs"), files("r2/tmp")), (1, 0));
    let report = s.r2().gc(std::time::Duration::ZERO).unwrap();
    assert_eq!(
        (report.deleted_blobs, report.live_blobs),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(files("r2/blobs"), 0);
    assert!(s.r2().fsck().unwrap().is_empty());
}

#[test]
fn identical_content_is_stored_once_and_gc_reclaims_what_nothing_references() {
    let (dir, store, b) = bucket();
    let ten_mib: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    for i in 0..100 {
        b.put(&format!("copy/{i}"), &ten_mib, &R2PutOptions::default())
            .unwrap();
    }
    store.r2().create_bucket("second").unwrap();
    store
        .r2()
        .bucket("second")
        .unwrap()
        .put("again", &ten_mib, &R2PutOptions::default())
        .unwrap();
    let disk = du(&dir.path().join("r2/blobs"));
    assert!(
        disk < 11 * 1024 * 1024,
        "101 copies of 10 MiB take {disk} bytes"
    );

    // Larger than the inline threshold, so that it has a blob file to collect.
    put(&b, "orphan-to-be", &ten_mib[..1 << 20]);
    b.delete(&["orphan-to-be"]).unwrap();
    let report = store.r2().gc(std::time::Duration::ZERO).unwrap();
    assert_eq!(report.deleted_blobs, 1);
    assert_eq!(report.live_blobs, 1);
    assert_eq!(
        get_bytes(&b, "copy/99", &R2GetOptions::default()).len(),
        ten_mib.len()
    );
    assert!(store.r2().fsck().unwrap().is_empty());
}

fn du(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            du(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// CORS and lifecycle rules are in the catalog: they survive the store being closed and
/// opened again, and go with their bucket (and with a reset), so a bucket made again
/// under the same name starts as a new one does.
#[test]
fn bucket_rules_persist_and_die_with_their_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cors = vec![CorsRule {
        allowed_origins: vec!["https://app.example".into()],
        allowed_methods: vec!["PUT".into()],
        ..Default::default()
    }];
    let lifecycle = vec![LifecycleRule {
        id: "tmp".into(),
        enabled: true,
        prefix: "tmp/".into(),
        expiration: Some(LifecycleAge::Days(1)),
        ..Default::default()
    }];
    {
        let store = Store::open(dir.path()).unwrap();
        store.r2().create_bucket("vault").unwrap();
        let b = store.r2().bucket("vault").unwrap();
        assert_eq!(b.cors().unwrap(), None);
        assert_eq!(b.lifecycle().unwrap(), vec![LifecycleRule::r2_default()]);
        b.set_cors(&cors).unwrap();
        b.set_lifecycle(lifecycle.clone()).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let b = store.r2().bucket("vault").unwrap();
    assert_eq!(b.cors().unwrap(), Some(cors.clone()));
    assert_eq!(b.lifecycle().unwrap(), lifecycle);

    // A reset (`clear`) returns them to a new bucket's, as deleting the bucket does.
    b.clear().unwrap();
    assert_eq!(b.cors().unwrap(), None);
    assert_eq!(b.lifecycle().unwrap(), vec![LifecycleRule::r2_default()]);
    b.set_cors(&cors).unwrap();
    b.set_lifecycle(lifecycle).unwrap();
    store.r2().delete_bucket("vault").unwrap();
    store.r2().create_bucket("vault").unwrap();
    let b = store.r2().bucket("vault").unwrap();
    assert_eq!(b.cors().unwrap(), None);
    assert_eq!(b.lifecycle().unwrap(), vec![LifecycleRule::r2_default()]);
}
