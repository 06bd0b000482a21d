//! Reference-model property test: random sequences of put / get / head / delete / list /
//! multipart against an in-memory model, compared after every step.
//!
//! Keys look like an application's (nested paths, spaces, `+`, `%`, non-ASCII) and
//! bodies are mostly small with now and then one of tens of KiB, multipart parts up to
//! 8 KiB. The default run keeps to 24 cases; `TRISTORE_LONG_TESTS=1` runs 20 times as
//! many.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use proptest::prelude::*;
use tristore::r2::*;
use tristore::{Store, StoreOptions};

/// A body described by its length and a seed, so that proptest shrinks the length
/// rather than tens of thousands of separate bytes.
#[derive(Debug, Clone, Copy)]
struct Body {
    len: usize,
    seed: u64,
}

impl Body {
    fn bytes(self) -> Vec<u8> {
        let mut x = self.seed | 1;
        (0..self.len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}

/// Mostly small, sometimes a few KiB, occasionally tens of KiB.
fn body() -> impl Strategy<Value = Body> {
    let len = prop_oneof![
        6 => 0usize..64,
        3 => 64usize..4096,
        1 => 4096usize..48 * 1024,
    ];
    (len, any::<u64>()).prop_map(|(len, seed)| Body { len, seed })
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Body),
    Get(usize, Option<(u64, u64)>),
    Delete(Vec<usize>),
    List {
        prefix: usize,
        delimiter: bool,
        limit: u32,
    },
    /// Non-last parts all of one size (at least the lowered minimum), the last one
    /// never larger.
    Multipart(usize, Vec<Body>),
    AbortedMultipart(usize, Body),
}

const KEYS: &[&str] = &[
    "index.html",
    "photos/2024/IMG_0001.jpg",
    "photos/2024/IMG 0002 (copy).jpg",
    "photos/2025/été/plage+soleil.png",
    "photos/thumbs/IMG_0001.jpg",
    "docs/report 100%.pdf",
    "docs/drafts/v2/notes.md",
    "docs/日本語/ファイル.txt",
    "logs/app/2026-11-28T00:00:00Z.log",
    "logs/app/2026-11-28T00:00:01Z.log",
    "backups/db.sqlite.gz",
    "a?b=c&d#e",
];
const PREFIXES: &[&str] = &[
    "",
    "photos",
    "photos/",
    "photos/2024/",
    "docs/",
    "docs/drafts/",
    "logs/app/2026-11-28T",
    "zzz/",
];
/// The lowered minimum part size of the model's store.
const MIN_PART: usize = 8;

/// The number of cases: 24, or 20 times that with `TRISTORE_LONG_TESTS=1`.
fn cases() -> u32 {
    if std::env::var("TRISTORE_LONG_TESTS").is_ok_and(|v| v == "1") {
        480
    } else {
        24
    }
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    // Ranges near the start of small bodies and anywhere in large ones.
    let range = prop_oneof![
        3 => (0u64..64, 1u64..64),
        1 => (0u64..50_000, 1u64..20_000),
    ];
    let part_size = prop_oneof![3 => Just(MIN_PART), 1 => MIN_PART..8 * 1024];
    let multipart = (
        key.clone(),
        part_size,
        1usize..4,
        any::<u64>(),
        0.0f64..=1.0,
    )
        .prop_map(|(k, size, n, seed, last)| {
            let mut parts: Vec<Body> = (0..n as u64)
                .map(|i| Body {
                    len: size,
                    seed: seed.wrapping_add(i),
                })
                .collect();
            parts.push(Body {
                len: (size as f64 * last) as usize,
                seed: !seed,
            });
            Op::Multipart(k, parts)
        });
    prop_oneof![
        3 => (key.clone(), body()).prop_map(|(k, b)| Op::Put(k, b)),
        2 => (key.clone(), proptest::option::of(range)).prop_map(|(k, r)| Op::Get(k, r)),
        1 => proptest::collection::vec(key.clone(), 1..4).prop_map(Op::Delete),
        2 => (0..PREFIXES.len(), any::<bool>(), 1u32..4).prop_map(|(prefix, delimiter, limit)| Op::List { prefix, delimiter, limit }),
        1 => multipart,
        1 => (key, body()).prop_map(|(k, b)| Op::AbortedMultipart(k, b)),
    ]
}

/// What the model keeps per key: the bytes and the etag R2 would give them.
type Model = BTreeMap<String, (Vec<u8>, String)>;

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

/// The model's view of a listing walked page by page to the end.
fn model_list(model: &Model, prefix: &str, delimiter: bool) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for k in model.keys().filter(|k| k.starts_with(prefix)) {
        match delimiter.then(|| k[prefix.len()..].find('/')).flatten() {
            Some(i) => {
                let p = k[..prefix.len() + i + 1].to_owned();
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
            None => keys.push(k.clone()),
        }
    }
    (keys, prefixes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { r2_limits: R2Limits { min_part_bytes: MIN_PART as u64, ..R2Limits::default() }, ..StoreOptions::default() };
        let store = Store::open_with(dir.path(), options).unwrap();
        store.r2().create_bucket("model").unwrap();
        let bucket = store.r2().bucket("model").unwrap();
        let mut model = Model::new();

        for op in ops {
            match op {
                Op::Put(k, body) => {
                    let body = body.bytes();
                    let o = bucket.put(KEYS[k], &body, &R2PutOptions::default()).unwrap().unwrap();
                    prop_assert_eq!(&o.etag, &md5_hex(&body));
                    model.insert(KEYS[k].to_owned(), (body.clone(), o.etag));
                }
                Op::Get(k, range) => {
                    let options = R2GetOptions { range: range.map(|(offset, length)| R2Range::Offset { offset, length: Some(length) }), ..Default::default() };
                    let got = bucket.get(KEYS[k], &options);
                    match (model.get(KEYS[k]), range) {
                        (None, _) => prop_assert!(got.unwrap().is_none()),
                        (Some((bytes, etag)), None) => {
                            let got = got.unwrap().unwrap();
                            prop_assert_eq!(&got.object.etag, etag);
                            prop_assert_eq!(&got.bytes().unwrap(), bytes);
                        }
                        (Some((bytes, _)), Some((offset, length))) => {
                            let size = bytes.len() as u64;
                            if offset > size || (offset == size && size > 0) {
                                prop_assert_eq!(got.unwrap_err().kind, R2ErrorKind::InvalidRange);
                            } else {
                                let end = (offset + length).min(size);
                                prop_assert_eq!(got.unwrap().unwrap().bytes().unwrap(), bytes[offset as usize..end as usize].to_vec());
                            }
                        }
                    }
                    let head = bucket.head(KEYS[k]).unwrap();
                    prop_assert_eq!(head.map(|h| h.size), model.get(KEYS[k]).map(|(b, _)| b.len() as u64));
                }
                Op::Delete(keys) => {
                    let names: Vec<&str> = keys.iter().map(|&k| KEYS[k]).collect();
                    bucket.delete(&names).unwrap();
                    for n in names {
                        model.remove(n);
                    }
                }
                Op::List { prefix, delimiter, limit } => {
                    let (want_keys, want_prefixes) = model_list(&model, PREFIXES[prefix], delimiter);
                    let (mut keys, mut prefixes, mut cursor) = (Vec::new(), Vec::new(), None);
                    loop {
                        let page = bucket.list(&R2ListOptions {
                            prefix: Some(PREFIXES[prefix].to_owned()),
                            delimiter: delimiter.then(|| "/".to_owned()),
                            limit: Some(limit),
                            cursor: cursor.clone(),
                            ..Default::default()
                        }).unwrap();
                        prop_assert!(page.objects.len() + page.delimited_prefixes.len() <= limit as usize);
                        for o in &page.objects {
                            prop_assert_eq!(&o.etag, &model[&o.key].1);
                        }
                        keys.extend(page.objects.into_iter().map(|o| o.key));
                        prefixes.extend(page.delimited_prefixes);
                        if !page.truncated { break; }
                        cursor = page.cursor;
                    }
                    prop_assert_eq!(keys, want_keys);
                    prop_assert_eq!(prefixes, want_prefixes);
                }
                Op::Multipart(k, parts) => {
                    let parts: Vec<Vec<u8>> = parts.into_iter().map(Body::bytes).collect();
                    let up = bucket.create_multipart_upload(KEYS[k], &R2MultipartOptions::default()).unwrap();
                    let uploaded: Vec<_> = parts.iter().enumerate().map(|(i, p)| up.upload_part(i as u32 + 1, p).unwrap()).collect();
                    let o = up.complete(&uploaded).unwrap();
                    let mut md5s = Vec::new();
                    for p in &parts { md5s.extend_from_slice(&Md5::digest(p)); }
                    prop_assert_eq!(&o.etag, &format!("{}-{}", md5_hex(&md5s), parts.len()));
                    model.insert(KEYS[k].to_owned(), (parts.concat(), o.etag));
                }
                Op::AbortedMultipart(k, body) => {
                    let up = bucket.create_multipart_upload(KEYS[k], &R2MultipartOptions::default()).unwrap();
                    up.upload_part(1, body.bytes()).unwrap();
                    up.abort().unwrap();
                }
            }
        }
        // Collecting garbage never touches what the model still has.
        store.r2().gc(std::time::Duration::ZERO).unwrap();
        for (key, (bytes, _)) in &model {
            prop_assert_eq!(&bucket.get(key, &R2GetOptions::default()).unwrap().unwrap().bytes().unwrap(), bytes);
        }
        prop_assert!(store.r2().fsck().unwrap().is_empty());
    }
}
