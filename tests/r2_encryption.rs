//! R2 content encrypted on disk: SSE-C (a key per request, as R2 offers it) and
//! encryption at rest (`StoreOptions::r2_encryption_key`, the CLI's
//! `--encryption-key-file`). What is checked here is what a user relies on: the bytes
//! come back only with the right key, the data directory never holds the plaintext,
//! equal content under different keys shares nothing, and every object path (inline,
//! blob file, multipart, ranges, part reads, copies, GC, fsck) works for sealed content.

use std::path::Path;
use std::time::Duration;

use tristore::r2::*;
use tristore::{Store, StoreOptions};

/// A body with a recognisable marker every 100 bytes, to look for on disk.
fn body(len: usize) -> Vec<u8> {
    let marker = b"PLAINTEXT-MARKER-";
    (0..len)
        .map(|i| {
            let j = i % 100;
            if j < marker.len() {
                marker[j]
            } else {
                (i * 7 % 251) as u8
            }
        })
        .collect()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn blob_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("r2/blobs"))
        .unwrap()
        .map(|s| std::fs::read_dir(s.unwrap().path()).unwrap().count())
        .sum()
}

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::new([byte; 32])
}

fn with_key(k: &EncryptionKey) -> R2GetOptions {
    R2GetOptions {
        ssec_key: Some(k.clone()),
        ..Default::default()
    }
}

fn put_with(k: &EncryptionKey) -> R2PutOptions {
    R2PutOptions {
        ssec_key: Some(k.clone()),
        ..Default::default()
    }
}

fn read(b: &R2Bucket, name: &str, options: &R2GetOptions) -> Result<Vec<u8>, R2Error> {
    Ok(b.get(name, options)?.unwrap().bytes().unwrap())
}

#[test]
fn sse_c_objects_read_back_only_with_their_key_and_never_sit_on_disk_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.r2().create_bucket("vault").unwrap();
    let b = store.r2().bucket("vault").unwrap();
    let (a, other) = (key(1), key(2));
    // One inline object, one in a blob file spanning several segments.
    for (name, len) in [("small", 1000), ("large", 300_000)] {
        let data = body(len);
        let put = b.put(name, &data, &put_with(&a)).unwrap().unwrap();
        assert_eq!(put.ssec_key_md5, Some(hex::encode(a.md5())));
        assert_ne!(
            put.etag,
            hex::encode(md5_of(&data)),
            "ETag is not the plaintext MD5"
        );
        assert_eq!(put.checksums.md5, None, "no plaintext digest kept");
        assert_eq!(read(&b, name, &with_key(&a)).unwrap(), data);

        let missing = read(&b, name, &R2GetOptions::default()).unwrap_err();
        assert_eq!(missing.kind, R2ErrorKind::InvalidRequest, "{missing}");
        let wrong = read(&b, name, &with_key(&other)).unwrap_err();
        assert_eq!(wrong.kind, R2ErrorKind::AccessDenied, "{wrong}");
        assert_eq!(wrong.kind.http_status(), 403);

        // Ranges inside one segment, across segments, and suffixes.
        for range in [
            R2Range::Offset {
                offset: 10,
                length: Some(20),
            },
            R2Range::Offset {
                offset: (len as u64) / 3,
                length: None,
            },
            R2Range::Suffix(70_000),
        ] {
            let options = R2GetOptions {
                range: Some(range),
                ..with_key(&a)
            };
            let got = b.get(name, &options).unwrap().unwrap();
            let r = got.object.range.unwrap();
            let want = &data[r.offset as usize..(r.offset + r.length) as usize];
            assert_eq!(got.bytes().unwrap(), want, "{name} {range:?}");
        }
        // head (the binding's) shows the key's MD5 without needing the key; the S3
        // API's HeadObject needs it.
        assert!(b.head(name).unwrap().unwrap().ssec_key_md5.is_some());
        assert!(b.head_with_key(name, None).is_err());
        assert!(b.head_with_key(name, Some(&a)).unwrap().is_some());
        assert_eq!(
            b.head_with_key(name, Some(&other)).unwrap_err().kind,
            R2ErrorKind::AccessDenied
        );
    }
    // A key given for an object written without one is an error, not ignored.
    b.put("plain", b"in clear", &R2PutOptions::default())
        .unwrap();
    let e = read(&b, "plain", &with_key(&a)).unwrap_err();
    assert_eq!(e.kind, R2ErrorKind::InvalidRequest);

    drop(b);
    drop(store);
    let leaks = files_containing(dir.path(), b"PLAINTEXT-MARKER-");
    assert!(leaks.is_empty(), "plaintext on disk in {leaks:?}");
}

#[test]
fn equal_content_dedupes_under_one_key_and_shares_nothing_across_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.r2().create_bucket("dedupe").unwrap();
    let b = store.r2().bucket("dedupe").unwrap();
    let data = body(100_000);
    let a1 = b.put("a1", &data, &put_with(&key(1))).unwrap().unwrap();
    let a2 = b.put("a2", &data, &put_with(&key(1))).unwrap().unwrap();
    assert_eq!(
        blob_files(dir.path()),
        1,
        "same key, same content: one blob"
    );
    assert_eq!(a1.etag, a2.etag);
    let other = b.put("b", &data, &put_with(&key(2))).unwrap().unwrap();
    let plain = b
        .put("p", &data, &R2PutOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        blob_files(dir.path()),
        3,
        "each key (and no key) its own blob"
    );
    let etags = [&a1.etag, &other.etag, &plain.etag];
    assert!(etags[0] != etags[1] && etags[1] != etags[2] && etags[0] != etags[2]);
    assert_eq!(plain.etag, hex::encode(md5_of(&data)));
    // Deleting one of the two objects sharing a blob leaves the other readable.
    b.delete(&["a1"]).unwrap();
    store.r2().gc(Duration::ZERO).unwrap();
    assert_eq!(read(&b, "a2", &with_key(&key(1))).unwrap(), data);
    assert_eq!(store.r2().fsck().unwrap(), Vec::<String>::new());
}

#[test]
fn sse_c_multipart_uploads_need_the_key_on_every_part_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            r2_limits: R2Limits {
                min_part_bytes: 1000,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    store.r2().create_bucket("multi").unwrap();
    let b = store.r2().bucket("multi").unwrap();
    let k = key(9);
    let options = R2MultipartOptions {
        ssec_key: Some(k.clone()),
        ..Default::default()
    };
    let upload = b.create_multipart_upload("big", &options).unwrap();
    let (p1, p2) = (body(70_000), body(5_000));
    let part = |n: u32, data: &[u8], key: Option<&EncryptionKey>| {
        upload.upload_part_reader(n, &mut &data[..], data.len() as u64, key)
    };
    assert_eq!(
        part(1, &p1, None).unwrap_err().kind,
        R2ErrorKind::InvalidRequest
    );
    assert_eq!(
        part(1, &p1, Some(&key(8))).unwrap_err().kind,
        R2ErrorKind::InvalidRequest
    );
    let parts = vec![
        part(1, &p1, Some(&k)).unwrap(),
        part(2, &p2, Some(&k)).unwrap(),
    ];
    assert_eq!(
        store.r2().fsck().unwrap(),
        Vec::<String>::new(),
        "sealed parts"
    );
    let done = upload.complete(&parts).unwrap();
    assert!(done.etag.ends_with("-2"));
    assert_eq!(done.ssec_key_md5, Some(hex::encode(k.md5())));
    let whole = [p1.clone(), p2.clone()].concat();
    assert_eq!(read(&b, "big", &with_key(&k)).unwrap(), whole);
    // A range across the part boundary, and part 2 alone.
    let across = R2GetOptions {
        range: Some(R2Range::Offset {
            offset: 69_990,
            length: Some(20),
        }),
        ..with_key(&k)
    };
    assert_eq!(read(&b, "big", &across).unwrap(), &whole[69_990..70_010]);
    let (second, count) = b.get_part("big", 2, Some(&k)).unwrap().unwrap();
    assert_eq!((second.bytes().unwrap(), count), (p2, Some(2)));
    assert!(b.get_part("big", 2, None).is_err());
    assert_eq!(store.r2().fsck().unwrap(), Vec::<String>::new());
    drop(b);
    drop(store);
    assert!(files_containing(dir.path(), b"PLAINTEXT-MARKER-").is_empty());
}

#[test]
fn a_store_key_encrypts_everything_written_after_it_and_is_required_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    // Written before the store had a key: stays readable, in clear.
    {
        let store = Store::open(dir.path()).unwrap();
        store.r2().create_bucket("rest").unwrap();
        let b = store.r2().bucket("rest").unwrap();
        b.put(
            "before",
            b"written before the key",
            &R2PutOptions::default(),
        )
        .unwrap();
    }
    let keyed = || StoreOptions {
        r2_encryption_key: Some(key(5)),
        ..Default::default()
    };
    let data = body(200_000);
    {
        let store = Store::open_with(dir.path(), keyed()).unwrap();
        let b = store.r2().bucket("rest").unwrap();
        let put = b
            .put("after", &data, &R2PutOptions::default())
            .unwrap()
            .unwrap();
        // Encryption at rest does not change what the API shows.
        assert_eq!(put.etag, hex::encode(md5_of(&data)));
        assert_eq!(put.ssec_key_md5, None);
        b.put("small", &data[..500], &R2PutOptions::default())
            .unwrap();
        let upload = b
            .create_multipart_upload("mp", &R2MultipartOptions::default())
            .unwrap();
        let part = upload.upload_part(1, &data[..1000]).unwrap();
        upload.complete(&[part]).unwrap();
        // An SSE-C key still applies on top of a store key (the customer's key wins).
        b.put("ssec", &data[..100], &put_with(&key(6))).unwrap();
        assert_eq!(read(&b, "after", &R2GetOptions::default()).unwrap(), data);
        assert_eq!(
            read(&b, "small", &R2GetOptions::default()).unwrap(),
            &data[..500]
        );
        assert_eq!(
            read(&b, "mp", &R2GetOptions::default()).unwrap(),
            &data[..1000]
        );
        assert_eq!(read(&b, "ssec", &with_key(&key(6))).unwrap(), &data[..100]);
        assert_eq!(
            read(&b, "before", &R2GetOptions::default()).unwrap(),
            b"written before the key"
        );
        assert_eq!(store.r2().fsck().unwrap(), Vec::<String>::new());
    }
    assert!(files_containing(&dir.path().join("r2"), b"PLAINTEXT-MARKER-").is_empty());
    // Without the key, or with another, the store does not open at all.
    let e = Store::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("--encryption-key-file"), "{e}");
    let other = StoreOptions {
        r2_encryption_key: Some(key(7)),
        ..Default::default()
    };
    let e = Store::open_with(dir.path(), other)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not the one"), "{e}");
    let store = Store::open_with(dir.path(), keyed()).unwrap();
    let b = store.r2().bucket("rest").unwrap();
    assert_eq!(read(&b, "after", &R2GetOptions::default()).unwrap(), data);
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

#[test]
fn a_backup_of_an_encrypted_store_restores_only_with_its_key_and_stays_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let keyed = || StoreOptions {
        r2_encryption_key: Some(key(5)),
        ..Default::default()
    };
    let data = body(200_000);
    let source = dir.path().join("source");
    // On another file system where there is one, so that blobs are copied (with their
    // sealed length), not hard-linked.
    let elsewhere =
        tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let backup = elsewhere.path().join("backup");
    {
        let store = Store::open_with(&source, keyed()).unwrap();
        store.r2().create_bucket("vault").unwrap();
        let b = store.r2().bucket("vault").unwrap();
        b.put("rest", &data, &R2PutOptions::default()).unwrap();
        b.put("ssec", &data, &put_with(&key(6))).unwrap();
        b.put("small", &data[..300], &R2PutOptions::default())
            .unwrap();
        tristore::backup::backup(&store, &backup).unwrap();
    }
    assert!(files_containing(&backup, b"PLAINTEXT-MARKER-").is_empty());
    let e = tristore::backup::restore(&backup, &dir.path().join("no-key"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--encryption-key-file"), "{e}");
    assert!(
        !dir.path().join("no-key").exists(),
        "a refused restore leaves nothing"
    );
    let restored = dir.path().join("restored");
    tristore::backup::restore_with(&backup, &restored, keyed()).unwrap();
    let store = Store::open_with(&restored, keyed()).unwrap();
    let b = store.r2().bucket("vault").unwrap();
    assert_eq!(read(&b, "rest", &R2GetOptions::default()).unwrap(), data);
    assert_eq!(read(&b, "ssec", &with_key(&key(6))).unwrap(), data);
    assert_eq!(
        read(&b, "small", &R2GetOptions::default()).unwrap(),
        &data[..300]
    );
    assert_eq!(store.r2().fsck().unwrap(), Vec::<String>::new());
}
