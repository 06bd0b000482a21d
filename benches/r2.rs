//! R2 next to plain files on the same disk: put and get of 4 KiB, 1 MiB and 64 MiB
//! objects (tristore: hash, temp file, fsync, rename, directory fsync, catalog commit;
//! plain: the same crash-atomic replace without hashing or catalog, i.e. temp file,
//! fsync, rename over the target, directory fsync), the same with an SSE-C key (AES-256-GCM
//! on the way to and from disk), a ranged get, and list pages over 100,000 keys.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tristore::r2::{EncryptionKey, R2GetOptions, R2ListOptions, R2PutOptions, R2Range};
use tristore::{Store, StoreOptions};

const SIZES: &[(&str, usize)] = &[("4KiB", 4 << 10), ("1MiB", 1 << 20), ("64MiB", 64 << 20)];

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3])
        .collect()
}

/// What a durable, crash-atomic replace of a file takes without any store: the new
/// bytes go to a temp file that is fsynced, renamed over `name`, and the directory is
/// fsynced so that the rename itself survives a power loss. A crash leaves the old
/// content or the new, never a torn file, which is what tristore's put guarantees.
fn plain_atomic_write(dir: &Path, name: &str, body: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).unwrap();
    f.write_all(body).unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
}

fn put_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    store.r2().create_bucket("bench").unwrap();
    let bucket = store.r2().bucket("bench").unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();

    for &(label, len) in SIZES {
        let mut body = data(len);
        let mut group = c.benchmark_group(format!("r2_{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        group.sample_size(if len > (8 << 20) { 10 } else { 30 });
        group.measurement_time(std::time::Duration::from_secs(if len > (8 << 20) {
            10
        } else {
            4
        }));
        let mut n = 0u64;
        // Each iteration writes different bytes, so deduplication never skips work.
        group.bench_function(BenchmarkId::new("put", "tristore"), |b| {
            b.iter(|| {
                n += 1;
                body[..8].copy_from_slice(&n.to_le_bytes());
                bucket.put("obj", &body, &R2PutOptions::default()).unwrap()
            })
        });
        let key = EncryptionKey::new([9; 32]);
        let sealed_put = R2PutOptions {
            ssec_key: Some(key.clone()),
            ..Default::default()
        };
        let sealed_get = R2GetOptions {
            ssec_key: Some(key.clone()),
            ..Default::default()
        };
        group.bench_function(BenchmarkId::new("put", "tristore_ssec"), |b| {
            b.iter(|| {
                n += 1;
                body[..8].copy_from_slice(&n.to_le_bytes());
                bucket.put("enc", &body, &sealed_put).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("get", "tristore_ssec"), |b| {
            b.iter(|| {
                bucket
                    .get("enc", &sealed_get)
                    .unwrap()
                    .unwrap()
                    .bytes()
                    .unwrap()
            })
        });
        // Issue 14's yardstick for large puts: R2 owes an MD5 of the body (the ETag)
        // before it answers, so no put can beat hashing it, measured here in the same run.
        group.bench_function(BenchmarkId::new("put", "md5_alone"), |b| {
            b.iter(|| {
                n += 1;
                body[..8].copy_from_slice(&n.to_le_bytes());
                <md5::Md5 as md5::Digest>::digest(&body)
            })
        });
        group.bench_function(BenchmarkId::new("put", "plain_file_atomic"), |b| {
            b.iter(|| {
                n += 1;
                body[..8].copy_from_slice(&n.to_le_bytes());
                plain_atomic_write(&plain, "obj", &body);
            })
        });
        group.bench_function(BenchmarkId::new("get", "tristore"), |b| {
            b.iter(|| {
                bucket
                    .get("obj", &R2GetOptions::default())
                    .unwrap()
                    .unwrap()
                    .bytes()
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("get", "plain_file"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(len);
                File::open(plain.join("obj"))
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
                out
            })
        });
        if len == 64 << 20 {
            let ranged = R2GetOptions {
                range: Some(R2Range::Offset {
                    offset: 32 << 20,
                    length: Some(4096),
                }),
                ..Default::default()
            };
            group.throughput(Throughput::Bytes(4096));
            group.bench_function(BenchmarkId::new("ranged_get_4KiB", "tristore"), |b| {
                b.iter(|| {
                    bucket
                        .get("obj", &ranged)
                        .unwrap()
                        .unwrap()
                        .bytes()
                        .unwrap()
                })
            });
            let sealed_ranged = R2GetOptions {
                ssec_key: Some(key.clone()),
                ..ranged.clone()
            };
            group.bench_function(BenchmarkId::new("ranged_get_4KiB", "tristore_ssec"), |b| {
                b.iter(|| {
                    bucket
                        .get("enc", &sealed_ranged)
                        .unwrap()
                        .unwrap()
                        .bytes()
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("ranged_get_4KiB", "plain_file"), |b| {
                b.iter(|| {
                    let mut f = File::open(plain.join("obj")).unwrap();
                    f.seek(SeekFrom::Start(32 << 20)).unwrap();
                    let mut out = vec![0u8; 4096];
                    f.read_exact(&mut out).unwrap();
                    out
                })
            });
        }
        group.finish();
    }
}

fn list(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // Loading 100,000 keys with an fsync each would take minutes; listing does not
    // depend on how the rows were written.
    let options = StoreOptions {
        r2_relaxed_durability_for_benchmarks: true,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    store.r2().create_bucket("list").unwrap();
    let bucket = store.r2().bucket("list").unwrap();
    for u in 0..100 {
        for d in 0..1000 {
            bucket
                .put(
                    &format!("user-{u:04}/doc-{d:03}/file.pdf"),
                    b"x",
                    &R2PutOptions::default(),
                )
                .unwrap();
        }
    }
    let mut group = c.benchmark_group("r2_list_100k_keys");
    group.sample_size(30);
    let delimited = R2ListOptions {
        prefix: Some("user-0042/".into()),
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let page = bucket.list(&delimited).unwrap();
    assert_eq!(page.delimited_prefixes.len(), 1000);
    group.bench_function("page_of_1000_prefix_delimiter", |b| {
        b.iter(|| bucket.list(&delimited).unwrap())
    });
    let flat = R2ListOptions {
        prefix: Some("user-0042/".into()),
        include_http_metadata: true,
        include_custom_metadata: true,
        ..Default::default()
    };
    assert_eq!(bucket.list(&flat).unwrap().objects.len(), 1000);
    group.bench_function("page_of_1000_prefix_with_metadata", |b| {
        b.iter(|| bucket.list(&flat).unwrap())
    });
    group.finish();
}

criterion_group!(r2, put_get, list);
criterion_main!(r2);
