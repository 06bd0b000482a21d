//! Segments: an index's whole state at one mutation, in one immutable, checksummed file
//! that opening maps rather than reads, plus the vector files it names.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! 0   magic "TRIVSEG3"
//! 8   header length (u32)    12  CRC-32 of the header (u32)
//! 16  header (postcard): six sections, each {offset, length, CRC-32}
//!     sections, each starting on a 64-byte boundary:
//!     vectors    the rows after the last full run, f32, used in place through the map
//!     inv_norms  f32 per slot (cosine only)
//!     layer0     u32 lists, (2M + 1) per slot
//!     graph      postcard GraphState (levels, upper layers, entry, tombstones, and
//!                for dot product each row's squared norm)
//!     meta       the index's own postcard blob (ids, metadata, metadata indexes)
//!     runs       postcard RunTable: rows per run, and per full run the generation of
//!                its vector file and that file's CRC-32
//! ```
//!
//! A vector file (`vectors-<run>-<generation>.vec`, see [`super::arena`]) is one full
//! run's rows and nothing else, written and fsynced by the checkpoint that first saw
//! the run full (or changed), before the segment that names it. It is never written
//! again, so a checkpoint writes only what changed since the last one plus the partial
//! last run, not every vector again.
//!
//! Every section's and every named vector file's checksum is verified on open, so a
//! damaged file is refused with its name, never half-loaded.
//!
//! Older formats are still read. Format 2 (`TRIVSEG2`) had five sections, its vectors
//! section holding every row: opened, those rows form runs without files, which the
//! next checkpoint writes out. Format 1 (`TRIVSEG1`) also stored Φ² of the dot-product
//! lift in the graph section and each dot-product row with its lifted coordinate
//! appended; such rows are copied into memory without it (and their norms computed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::arena::{bytes_of, rows_per_run, vector_file_name, Arena, Mapped, RunFile};
use super::hnsw::{GraphState, Hnsw, HnswParams, Metric};
use super::{kernels, pages};

const MAGIC: &[u8; 8] = b"TRIVSEG3";
const MAGIC_V2: &[u8; 8] = b"TRIVSEG2";
const MAGIC_V1: &[u8; 8] = b"TRIVSEG1";
const ALIGN: u64 = 64;
const NAMES: [&str; 6] = ["vectors", "inv_norms", "layer0", "graph", "meta", "runs"];

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Section {
    offset: u64,
    len: u64,
    crc: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    sections: [Section; 6],
}

/// Formats 1 and 2 had no runs section.
#[derive(Debug, Serialize, Deserialize)]
struct HeaderV2 {
    sections: [Section; 5],
}

/// The runs section: which vector files hold the full runs.
#[derive(Debug, Serialize, Deserialize)]
struct RunTable {
    rows_per_run: u64,
    /// Run `k`'s file, for each full run in order.
    files: Vec<RunFile>,
}

/// Format 1's graph section.
#[derive(Deserialize)]
struct GraphStateV1 {
    dim: usize,
    metric: Metric,
    params: HnswParams,
    /// Φ² of the lift, now derived from the norms.
    _phi2: f32,
    entry: Option<u32>,
    max_level: usize,
    rng: u64,
    upper: Vec<Vec<Vec<u32>>>,
    deleted: Vec<u32>,
}

impl From<GraphStateV1> for GraphState {
    /// The norms are filled in from the rows (see [`without_lift`]).
    fn from(v1: GraphStateV1) -> Self {
        GraphState {
            dim: v1.dim,
            metric: v1.metric,
            params: v1.params,
            entry: v1.entry,
            max_level: v1.max_level,
            rng: v1.rng,
            upper: v1.upper,
            deleted: v1.deleted,
            sq_norms: Vec::new(),
        }
    }
}

/// Format 1's dot-product rows (`dim` values and the lifted coordinate) as rows of
/// `dim` values, with their squared norms.
fn without_lift(stored: &Arena, rows: usize, dim: usize) -> (Arena, Vec<f64>) {
    let mut vectors = Arena::new(dim, stored.per_run());
    let mut sq_norms = Vec::with_capacity(rows);
    for i in 0..rows {
        let row = &stored.row(i)[..dim];
        vectors.push(row);
        sq_norms.push(kernels::dot_f64(row, row));
    }
    (vectors, sq_norms)
}

/// The format version of a segment's bytes, if they start like one.
fn version(bytes: &[u8]) -> Option<u8> {
    match bytes.get(..8)? {
        m if m == MAGIC => Some(3),
        m if m == MAGIC_V2 => Some(2),
        m if m == MAGIC_V1 => Some(1),
        _ => None,
    }
}

/// Writes `graph` and `meta` to `path` and fsyncs it. The caller has written the
/// graph's full runs to vector files ([`Arena::write_runs`]) and writes to a temporary
/// name and renames, so a segment file is either whole or absent.
pub(crate) fn write(path: &Path, graph: &Hnsw, meta: &[u8]) -> std::io::Result<()> {
    let (state, vectors, inv_norms, layer0) = graph.state();
    let files = vectors.run_files();
    if files.len() != vectors.rows() / vectors.per_run() {
        return Err(std::io::Error::other("a full run has no vector file yet"));
    }
    let runs = RunTable {
        rows_per_run: vectors.per_run() as u64,
        files,
    };
    let runs = postcard::to_allocvec(&runs).map_err(std::io::Error::other)?;
    let state = postcard::to_allocvec(&state).map_err(std::io::Error::other)?;
    let parts: [&[u8]; 6] = [
        bytes_of(vectors.tail()),
        bytes_of(inv_norms),
        bytes_of(layer0),
        &state,
        meta,
        &runs,
    ];
    let mut sections = [Section::default(); 6];
    // The header's size depends on the offsets it holds; postcard's varints make it at
    // most this large, so sections start after a fixed reserve.
    let reserve = 16 + 6 * 24;
    let mut at = (reserve as u64).next_multiple_of(ALIGN);
    for (s, part) in sections.iter_mut().zip(parts) {
        *s = Section {
            offset: at,
            len: part.len() as u64,
            crc: crc32fast::hash(part),
        };
        at = (at + s.len).next_multiple_of(ALIGN);
    }
    let header = postcard::to_allocvec(&Header { sections }).map_err(std::io::Error::other)?;
    assert!(
        16 + header.len() <= reserve,
        "segment header outgrew its reserve"
    );

    let file = File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    out.write_all(&(header.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(&header).to_le_bytes())?;
    out.write_all(&header)?;
    let mut written = 16 + header.len() as u64;
    for (s, part) in sections.iter().zip(parts) {
        out.write_all(&vec![0; (s.offset - written) as usize])?;
        out.write_all(part)?;
        written = s.offset + s.len;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    crate::fsync::file(&file)
}

/// Maps a file read-only.
fn map_file(path: &Path) -> std::io::Result<Arc<Mmap>> {
    let file = File::open(path)?;
    // SAFETY: segments and vector files are immutable once in place; tristore never
    // writes to one again, only deletes it after no newer segment names it.
    Ok(Arc::new(unsafe { Mmap::map(&file) }?))
}

/// Opens a segment: maps it and the vector files it names, verifies every checksum, and
/// returns the graph (its vectors still in the maps) and the index's meta blob. Rows of
/// a segment that names no vector files (formats 1 and 2) form runs of as many rows as
/// fit in `run_bytes`.
pub(crate) fn read(path: &Path, run_bytes: u64) -> Result<(Hnsw, Vec<u8>), String> {
    let map = map_file(path).map_err(|e| e.to_string())?;
    let bad = |why: String| {
        format!("not a valid segment ({why}); restore the index directory from a backup")
    };
    let format = version(&map).filter(|_| map.len() >= 16);
    let Some(format) = format else {
        return Err(bad("wrong header".into()));
    };
    let header_len = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes")) as usize;
    let header_crc = u32::from_le_bytes(map[12..16].try_into().expect("4 bytes"));
    let header = map
        .get(16..16 + header_len)
        .ok_or_else(|| bad("header runs past the end".into()))?;
    if crc32fast::hash(header) != header_crc {
        return Err(bad("header checksum mismatch".into()));
    }
    let sections: Vec<Section> = match format {
        3 => postcard::from_bytes::<Header>(header).map(|h| h.sections.to_vec()),
        _ => postcard::from_bytes::<HeaderV2>(header).map(|h| h.sections.to_vec()),
    }
    .map_err(|e| bad(format!("header: {e}")))?;
    let mut slices: Vec<&[u8]> = Vec::with_capacity(6);
    for (s, name) in sections.iter().zip(NAMES) {
        let range = usize::try_from(s.offset)
            .ok()
            .zip(usize::try_from(s.offset + s.len).ok());
        let bytes = range
            .and_then(|(a, b)| map.get(a..b))
            .ok_or_else(|| bad(format!("section {name} runs past the end")))?;
        slices.push(bytes);
    }
    let check = |k: usize| -> Result<(), String> {
        if crc32fast::hash(slices[k]) == sections[k].crc {
            Ok(())
        } else {
            Err(bad(format!("section {}: checksum mismatch", NAMES[k])))
        }
    };
    let mut state: GraphState = check(3).and_then(|()| {
        match format {
            1 => postcard::from_bytes::<GraphStateV1>(slices[3]).map(GraphState::from),
            _ => postcard::from_bytes(slices[3]),
        }
        .map_err(|e| bad(format!("section graph: {e}")))
    })?;
    let lifted = format == 1 && state.metric == Metric::DotProduct;
    let width = state.dim + usize::from(lifted);
    if state.dim == 0 {
        return Err(bad("section graph: no dimensions".into()));
    }
    let table = match format {
        3 => check(5).and_then(|()| {
            postcard::from_bytes::<RunTable>(slices[5])
                .map_err(|e| bad(format!("section runs: {e}")))
        })?,
        _ => RunTable {
            rows_per_run: rows_per_run(width, run_bytes) as u64,
            files: Vec::new(),
        },
    };
    let per_run = usize::try_from(table.rows_per_run)
        .ok()
        .filter(|r| r.is_power_of_two() && *r <= 1 << 30)
        .ok_or_else(|| bad("section runs: rows per run is not a power of two".into()))?;
    let rows = state.upper.len();
    let in_files = table
        .files
        .len()
        .checked_mul(per_run)
        .filter(|&n| n <= rows);
    let Some(in_files) = in_files else {
        return Err(bad("section runs names more rows than the graph has".into()));
    };
    let tail_rows = rows - in_files;
    if Some(sections[0].len) != tail_rows.checked_mul(width * 4).map(|b| b as u64) {
        return Err(bad("section vectors has the wrong size".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::with_capacity(table.files.len());
    for (k, f) in table.files.iter().enumerate() {
        let name = vector_file_name(k, f.generation);
        let map = map_file(&dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        if map.len() != per_run * width * 4 {
            return Err(bad(format!(
                "{name} has {} bytes, not one run's",
                map.len()
            )));
        }
        files.push((name, map, *f));
    }
    // Every checksum at once: at a million 768-dim rows they cover 3 GB, most of the
    // time an open takes.
    let mut checks: Vec<(String, &[u8], u32)> = [0, 1, 2, 4]
        .into_iter()
        .map(|k| (format!("section {}", NAMES[k]), slices[k], sections[k].crc))
        .collect();
    checks.extend(
        files
            .iter()
            .map(|(name, map, f)| (name.clone(), &map[..], f.crc)),
    );
    checks.par_iter().try_for_each(|(name, bytes, crc)| {
        if crc32fast::hash(bytes) == *crc {
            Ok(())
        } else {
            Err(bad(format!("{name}: checksum mismatch")))
        }
    })?;
    let words = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    };
    let inv_norms: Vec<f32> = words(slices[1]).into_iter().map(f32::from_bits).collect();
    let layer0 = pages::copied(
        slices[2]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))),
    );
    let meta = slices[4].to_vec();
    let mut runs = Vec::with_capacity(files.len());
    for (name, map, f) in files {
        let rows = Mapped::new(map, 0, per_run, width)
            .ok_or_else(|| bad(format!("{name} cannot be mapped")))?;
        runs.push((rows, f));
    }
    let tail = Mapped::new(map.clone(), sections[0].offset as usize, tail_rows, width)
        .ok_or_else(|| bad("section vectors cannot be mapped".into()))?;
    let mut vectors = Arena::from_mapped(width, per_run, runs, tail)
        .ok_or_else(|| bad("section runs does not fit the vector files".into()))?;
    if lifted {
        (vectors, state.sq_norms) = without_lift(&vectors, rows, state.dim);
    }
    let graph = Hnsw::from_parts(state, vectors, inv_norms, layer0)
        .ok_or_else(|| bad("the graph's parts do not fit together".into()))?;
    Ok((graph, meta))
}

/// Recomputes the header's and every section's checksum of an edited segment, so that a
/// fuzzer's edits reach the decoders behind the checksums. Leaves bytes whose header
/// does not parse unchanged.
#[doc(hidden)]
pub fn reseal(bytes: &mut [u8]) {
    let Some(format) = version(bytes).filter(|_| bytes.len() >= 16) else {
        return;
    };
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let Some(header) = bytes.get(16..16 + header_len) else {
        return;
    };
    let crcs = |sections: &mut [Section]| {
        for s in sections {
            let start = (s.offset as usize).min(bytes.len());
            let end = (s.offset.saturating_add(s.len) as usize).min(bytes.len());
            s.crc = crc32fast::hash(&bytes[start..end]);
        }
    };
    let encoded = if format == 3 {
        postcard::from_bytes::<Header>(header)
            .ok()
            .and_then(|mut h| {
                crcs(&mut h.sections);
                postcard::to_allocvec(&h).ok()
            })
    } else {
        postcard::from_bytes::<HeaderV2>(header)
            .ok()
            .and_then(|mut h| {
                crcs(&mut h.sections);
                postcard::to_allocvec(&h).ok()
            })
    };
    if let Some(encoded) = encoded.filter(|e| e.len() == header_len) {
        bytes[16..16 + header_len].copy_from_slice(&encoded);
        let crc = crc32fast::hash(&encoded);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}
