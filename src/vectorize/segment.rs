//! Segments: an index's whole state at one mutation, in one immutable, checksummed file
//! that opening maps rather than reads.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! 0   magic "TRIVSEG2"
//! 8   header length (u32)    12  CRC-32 of the header (u32)
//! 16  header (postcard): five sections, each {offset, length, CRC-32}
//!     sections, each starting on a 64-byte boundary:
//!     vectors    slots × dimensions f32 rows, used in place through the map
//!     inv_norms  f32 per slot (cosine only)
//!     layer0     u32 lists, (2M + 1) per slot
//!     graph      postcard GraphState (levels, upper layers, entry, tombstones, and
//!                for dot product each row's squared norm)
//!     meta       the index's own postcard blob (ids, metadata, metadata indexes)
//! ```
//!
//! Every section's checksum is verified on open, so a damaged file is refused with its
//! name and the section, never half-loaded.
//!
//! Format 1 (`TRIVSEG1`) is still read: it stored Φ² of the dot-product lift in the
//! graph section and each dot-product row with its lifted coordinate appended. Such rows
//! are copied into memory without it (and their norms computed) on open; the next
//! checkpoint writes format 2.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::arena::{Arena, Mapped};
use super::hnsw::{GraphState, Hnsw, HnswParams, Metric};
use super::kernels;

const MAGIC: &[u8; 8] = b"TRIVSEG2";
const MAGIC_V1: &[u8; 8] = b"TRIVSEG1";
const ALIGN: u64 = 64;
const NAMES: [&str; 5] = ["vectors", "inv_norms", "layer0", "graph", "meta"];

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Section {
    offset: u64,
    len: u64,
    crc: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    sections: [Section; 5],
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
    let mut vectors = Arena::new(dim);
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
        m if m == MAGIC => Some(2),
        m if m == MAGIC_V1 => Some(1),
        _ => None,
    }
}

/// The bytes of an f32 or u32 slice as stored (the format is little-endian, and so is
/// every host tristore maps segments on; see [`Mapped::new`]).
fn bytes_of<T: Copy>(words: &[T]) -> &[u8] {
    // SAFETY: f32 and u32 have no padding and any byte is a valid u8; the length is the
    // slice's size in bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// Writes `graph` and `meta` to `path` and fsyncs it. The caller writes to a temporary
/// name and renames, so a segment file is either whole or absent.
pub(crate) fn write(path: &Path, graph: &Hnsw, meta: &[u8]) -> std::io::Result<()> {
    let (state, vectors, inv_norms, layer0) = graph.state();
    let state = postcard::to_allocvec(&state).map_err(std::io::Error::other)?;
    let parts: [Vec<&[u8]>; 5] = [
        vectors.parts().iter().map(|p| bytes_of(p)).collect(),
        vec![bytes_of(inv_norms)],
        vec![bytes_of(layer0)],
        vec![&state],
        vec![meta],
    ];
    let mut sections = [Section::default(); 5];
    // The header's size depends on the offsets it holds; postcard's varints make it at
    // most this large, so sections start after a fixed reserve.
    let reserve = 16 + 5 * 24;
    let mut at = (reserve as u64).next_multiple_of(ALIGN);
    for (s, part) in sections.iter_mut().zip(&parts) {
        let len: u64 = part.iter().map(|p| p.len() as u64).sum();
        let mut crc = crc32fast::Hasher::new();
        part.iter().for_each(|p| crc.update(p));
        *s = Section {
            offset: at,
            len,
            crc: crc.finalize(),
        };
        at = (at + len).next_multiple_of(ALIGN);
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
    for (s, part) in sections.iter().zip(&parts) {
        out.write_all(&vec![0; (s.offset - written) as usize])?;
        part.iter().try_for_each(|p| out.write_all(p))?;
        written = s.offset + s.len;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    crate::fsync::file(&file)
}

/// Opens a segment: maps it, verifies every checksum, and returns the graph (its vectors
/// still in the map) and the index's meta blob.
pub(crate) fn read(path: &Path) -> Result<(Hnsw, Vec<u8>), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: segments are immutable once renamed into place; tristore never writes to
    // one again, only deletes it after a newer one exists.
    let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?);
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
    let header: Header = postcard::from_bytes(header).map_err(|e| bad(format!("header: {e}")))?;
    let mut slices: Vec<&[u8]> = Vec::with_capacity(5);
    for (s, name) in header.sections.iter().zip(NAMES) {
        let range = usize::try_from(s.offset)
            .ok()
            .zip(usize::try_from(s.offset + s.len).ok());
        let bytes = range
            .and_then(|(a, b)| map.get(a..b))
            .ok_or_else(|| bad(format!("section {name} runs past the end")))?;
        if crc32fast::hash(bytes) != s.crc {
            return Err(bad(format!("section {name}: checksum mismatch")));
        }
        slices.push(bytes);
    }
    let words = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    };
    let mut state: GraphState = match format {
        1 => postcard::from_bytes::<GraphStateV1>(slices[3]).map(GraphState::from),
        _ => postcard::from_bytes(slices[3]),
    }
    .map_err(|e| bad(format!("section graph: {e}")))?;
    let inv_norms: Vec<f32> = words(slices[1]).into_iter().map(f32::from_bits).collect();
    let layer0 = words(slices[2]);
    let meta = slices[4].to_vec();
    let lifted = format == 1 && state.metric == Metric::DotProduct;
    let width = state.dim + usize::from(lifted);
    let rows = state.upper.len();
    let s = header.sections[0];
    if state.dim == 0 || Some(s.len) != rows.checked_mul(width * 4).map(|b| b as u64) {
        return Err(bad("section vectors has the wrong size".into()));
    }
    let mapped = Mapped::new(map.clone(), s.offset as usize, rows, width)
        .ok_or_else(|| bad("section vectors cannot be mapped".into()))?;
    let mut vectors = Arena::from_mapped(width, mapped);
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
    if bytes.len() < 16 || version(bytes).is_none() {
        return;
    }
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let Some(Ok(mut header)) = bytes
        .get(16..16 + header_len)
        .map(postcard::from_bytes::<Header>)
    else {
        return;
    };
    for s in header.sections.iter_mut() {
        let start = (s.offset as usize).min(bytes.len());
        let end = (s.offset.saturating_add(s.len) as usize).min(bytes.len());
        s.crc = crc32fast::hash(&bytes[start..end]);
    }
    let Ok(encoded) = postcard::to_allocvec(&header) else {
        return;
    };
    if encoded.len() == header_len {
        bytes[16..16 + header_len].copy_from_slice(&encoded);
        let crc = crc32fast::hash(&encoded);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}
