//! Reference-model property test: random sequences of put / get / head / delete / list /
//! multipart against an in-memory model, compared after every step.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use proptest::prelude::*;
use tristore::r2::*;
use tristore::{Store, StoreOptions};

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Get(usize, Option<(u64, u64)>),
    Delete(Vec<usize>),
    List {
        prefix: usize,
        delimiter: bool,
        limit: u32,
    },
    Multipart(usize, Vec<Vec<u8>>),
    AbortedMultipart(usize, Vec<u8>),
}

const KEYS: &[&str] = &["a", "a/b", "a/c/d", "a/c/e", "b", "b/x", "c/é", "d"];
const PREFIXES: &[&str] = &["", "a", "a/", "a/c/", "b/", "z"];

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let body = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        3 => (key.clone(), body.clone()).prop_map(|(k, b)| Op::Put(k, b)),
        2 => (key.clone(), proptest::option::of((0u64..50, 1u64..50))).prop_map(|(k, r)| Op::Get(k, r)),
        1 => proptest::collection::vec(key.clone(), 1..4).prop_map(Op::Delete),
        2 => (0..PREFIXES.len(), any::<bool>(), 1u32..4).prop_map(|(prefix, delimiter, limit)| Op::List { prefix, delimiter, limit }),
        // Non-last parts of exactly the (lowered) minimum size; the last never larger.
        1 => (key.clone(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 8..=8), 1..4), proptest::collection::vec(any::<u8>(), 0..=8))
            .prop_map(|(k, mut parts, last)| { parts.push(last); Op::Multipart(k, parts) }),
        1 => (key, body).prop_map(|(k, b)| Op::AbortedMultipart(k, b)),
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
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { r2_limits: R2Limits { min_part_bytes: 8, ..R2Limits::default() }, ..StoreOptions::default() };
        let store = Store::open_with(dir.path(), options).unwrap();
        store.r2().create_bucket("model").unwrap();
        let bucket = store.r2().bucket("model").unwrap();
        let mut model = Model::new();

        for op in ops {
            match op {
                Op::Put(k, body) => {
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
                    up.upload_part(1, &body).unwrap();
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
