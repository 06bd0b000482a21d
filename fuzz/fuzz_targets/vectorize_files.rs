//! The WAL and segment loaders: an index directory whose log holds fuzzed records (with
//! correct checksums, so the decoder meets them) or whose segment (of the current format,
//! naming vector files, or of format 1) has fuzzed edits (with checksums recomputed)
//! opens or fails with an error naming the file; never a panic. An index that opens answers a query and takes
//! a write (which measures lifted dot-product distances from the loaded norms).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tristore::vectorize::fuzzing::{frame_wal, open_index, reseal_segment};
use tristore::vectorize::{IndexConfig, MetadataIndexType, Metric, VectorizeVector};
use tristore::{Store, StoreOptions};

const SEGMENT: &str = "segment-0000000000000001.seg";
const WAL: &str = "wal-0000000000000001.log";

/// A format-1 dot-product segment of index `dots` and its description, written by the
/// code of that format.
const V1_SEGMENT: &[u8] = include_bytes!(
    "../../tests/fixtures/vectorize-segment-v1/vectorize/dots/segment-0000000000000001.seg"
);
const V1_DESCRIPTION: &[u8] =
    include_bytes!("../../tests/fixtures/vectorize-segment-v1/vectorize/dots/index.json");

/// A real segment of a small index to start the edits from, its description, and the
/// vector files it names (runs of 8 rows).
struct Seed {
    segment: Vec<u8>,
    description: Vec<u8>,
    vector_files: Vec<(std::ffi::OsString, Vec<u8>)>,
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::default();
        options.vectorize_options.vector_file_bytes = 8 * 3 * 4;
        let store = Store::open_with(dir.path(), options).unwrap();
        store
            .vectorize()
            .create(
                "z",
                "",
                IndexConfig {
                    dimensions: 3,
                    metric: Metric::DotProduct,
                },
            )
            .unwrap();
        let idx = store.vectorize().index("z").unwrap();
        idx.create_metadata_index("k", MetadataIndexType::String)
            .unwrap();
        let vectors: Vec<VectorizeVector> = (0..40)
            .map(|i| {
                VectorizeVector::new(format!("v{i}"), vec![i as f32, 1.0, -1.0])
                    .namespace("ns")
                    .metadata(serde_json::json!({"k": "x"}))
            })
            .collect();
        idx.upsert(&vectors).unwrap();
        idx.delete_by_ids(&["v3"]).unwrap();
        idx.checkpoint().unwrap();
        let d = dir.path().join("vectorize/z");
        let vector_files = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".vec"))
            .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
            .collect::<Vec<_>>();
        assert_eq!(vector_files.len(), 5, "40 rows in runs of 8");
        Seed {
            segment: std::fs::read(d.join(SEGMENT)).unwrap(),
            description: std::fs::read(d.join("index.json")).unwrap(),
            vector_files,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let seed = seed();
    let (name, segment, description) = match mode % 3 {
        2 => ("dots", V1_SEGMENT, V1_DESCRIPTION),
        _ => ("z", seed.segment.as_slice(), seed.description.as_slice()),
    };
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("vectorize").join(name);
    std::fs::create_dir_all(&idx_dir).unwrap();
    std::fs::write(idx_dir.join("index.json"), description).unwrap();
    if name == "z" {
        for (file, bytes) in &seed.vector_files {
            std::fs::write(idx_dir.join(file), bytes).unwrap();
        }
    }
    if mode % 3 == 0 {
        // Log records: the input split on 0xff bytes, each framed as one record.
        std::fs::write(idx_dir.join(SEGMENT), segment).unwrap();
        let payloads: Vec<&[u8]> = rest.split(|&b| b == 0xff).collect();
        std::fs::write(idx_dir.join(WAL), frame_wal(&payloads)).unwrap();
    } else {
        // Segment edits: (u16 position, xor byte) triples.
        let mut bytes = segment.to_vec();
        for edit in rest.chunks_exact(3) {
            let at = u16::from_le_bytes([edit[0], edit[1]]) as usize % bytes.len();
            bytes[at] ^= edit[2];
        }
        reseal_segment(&mut bytes);
        std::fs::write(idx_dir.join(SEGMENT), bytes).unwrap();
        std::fs::write(idx_dir.join(WAL), frame_wal(&[])).unwrap();
    }
    match open_index(&dir.path().join("vectorize"), name) {
        Ok(idx) => {
            let mut q = vec![0.0; idx.describe().dimensions];
            if let Some(first) = q.first_mut() {
                *first = 1.0;
            }
            let _ = idx.query(&q, &Default::default());
            let _ = idx.list(None, None);
            let _ = idx.upsert(&[VectorizeVector::new("fuzz", q)]);
        }
        Err(e) => assert!(e.to_string().contains(&format!("vectorize/{name}")), "{e}"),
    }
});
