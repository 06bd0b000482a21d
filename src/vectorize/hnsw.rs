//! An HNSW graph (Malkov & Yashunin) over a flat arena: vectors in one [`Arena`], layer-0
//! neighbour lists inline in one `Vec<u32>` with a fixed stride, upper layers (about one
//! node in M) in small per-node lists, and a generation-tagged visited array.
//!
//! Deletes leave tombstones: a deleted node stays traversable (so the graph stays
//! connected), its neighbours are re-linked around it, it is never returned, and its slot
//! is reused by the next insert. Distances are "lower is closer" everywhere inside the
//! graph; the index maps them to Vectorize's scores.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{mpsc, Mutex, OnceLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::arena::{rows_per_run, Arena, DEFAULT_RUN_BYTES};
use super::bitset::Bitset;
use super::codes::Codes;
use super::kernels;

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// 1 − cosine similarity. Vectors are stored as given, with their inverse norms.
    #[serde(rename = "cosine")]
    Cosine,
    /// Squared Euclidean distance.
    #[serde(rename = "euclidean")]
    Euclidean,
    /// Negated dot product.
    #[serde(rename = "dot-product")]
    DotProduct,
}

/// Graph distances at or below this are duplicates of the base vector (cosine
/// distances of identical vectors come out as ±1e-7, not 0).
const TWIN_DISTANCE: f64 = 1e-6;

/// Below this, an f32 dot product or squared distance may have lost digits to
/// subnormal products; it is recomputed in f64 (as is one past `f32::MAX`).
const F32_TRUSTED_MIN: f32 = 1e-30;

/// How many duplicates of itself a node links to.
const TWIN_LINKS: usize = 2;

/// Candidates explored per query when the caller does not say (Vectorize has no knob).
pub const DEFAULT_EF_SEARCH: usize = 128;

/// Build parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours per node on upper layers (layer 0 keeps twice as many).
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Seed of the level generator, so that builds are reproducible.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            seed: 0x5eed,
        }
    }
}

/// A candidate: distance and slot, ordered by distance (ties by slot). The distance is
/// f64 because dot-product distances between stored vectors are squares of norms, which
/// leave f32's range for norms past ~1.8e19 (float32 values go up to 3.4e38).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f64, u32);

impl Eq for Near {}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Marks nodes seen during one search; bumping the generation clears it in O(1).
struct Visited {
    marks: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn reset(&mut self, len: usize) {
        if self.marks.len() < len {
            self.marks.resize(len, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.generation = 1;
        }
    }

    /// Marks `slot`; returns whether it was unmarked.
    #[inline]
    fn insert(&mut self, slot: u32) -> bool {
        let m = &mut self.marks[slot as usize];
        let fresh = *m != self.generation;
        *m = self.generation;
        fresh
    }
}

/// A vector in the form the graph compares: for cosine, with the factor that normalises
/// it; for dot product, a query scaled to unit length, or a stored row with its squared
/// norm (which gives its extra coordinate, see [`Hnsw`]).
struct Probe<'c> {
    /// A query walking on byte codes: its own code, and the graph's codes.
    code: Option<(Vec<i8>, &'c Codes)>,
    v: Vec<f32>,
    scale: f32,
    /// Dot product: `Some(|x|²)` for a stored row, `None` for a query.
    lifted: Option<f64>,
}

/// Everything that defines a graph, for writing it to a segment and reading it back.
#[derive(Serialize, Deserialize)]
pub(crate) struct GraphState {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) params: HnswParams,
    pub(crate) entry: Option<u32>,
    pub(crate) max_level: usize,
    pub(crate) rng: u64,
    /// Per slot: its neighbour lists on layers 1..=level.
    pub(crate) upper: Vec<Vec<Vec<u32>>>,
    pub(crate) deleted: Vec<u32>,
    /// Dot product only: |x|² per slot.
    pub(crate) sq_norms: Vec<f64>,
}

/// The graph.
///
/// Dot product is not a metric, and HNSW's pruning assumes one: on vectors of unequal
/// norms a plain graph reached only ~0.75 recall. So for that metric the graph is built
/// over lifted vectors: each stored `x` gets an extra coordinate `e(x) = sqrt(Φ² − |x|²)`
/// (Φ the largest live norm) and each query a zero; then `|q' − x'|² = |q|² + Φ² − 2 q·x`,
/// so Euclidean order over the lifted forms is exactly descending dot-product order.
///
/// Nothing lifted is stored: the extra coordinate is derived from `|x|²` (kept per slot
/// in f64) whenever two stored vectors are compared, with the difference of two extra
/// coordinates taken in a form that keeps its digits when Φ dwarfs both norms, so one
/// very long vector cannot drown every other distance in rounding. A query is compared
/// by its inner product alone, which orders candidates as the lifted distance does at
/// any Φ; the results' scores are recomputed exactly in f64. Φ follows the longest live
/// vector both ways: it grows with an insert and shrinks (before the next insert) when
/// the longest one is deleted. Links made under another Φ stay usable for navigation.
pub struct Hnsw {
    dim: usize,
    /// Φ² of the dot-product lift: the largest live `|x|²`, unless `phi2_stale`.
    phi2: f64,
    /// The vector that set Φ was deleted; Φ is recomputed before the next insert (a
    /// larger Φ is still a valid lift meanwhile).
    phi2_stale: bool,
    metric: Metric,
    params: HnswParams,
    /// The rows, as given.
    vectors: Arena,
    /// Cosine only: 1 / |row| per slot (0 for a zero vector).
    inv_norms: Vec<f32>,
    /// Dot product only: |row|² per slot, in f64 (it overflows f32 past norms of ~1.8e19).
    sq_norms: Vec<f64>,
    /// Per slot: neighbour count, then `2 * m` neighbour slots.
    layer0: Vec<u32>,
    /// Per slot: its neighbour lists on layers 1..=level (empty for level-0 nodes).
    upper: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    max_level: usize,
    rng: u64,
    deleted: Bitset,
    /// Deleted slots, reused by inserts (most recent first).
    free: Vec<u32>,
    visited: Mutex<Vec<Visited>>,
    /// Cosine only: the rows' byte codes, which queries walk (see [`Codes`]).
    codes: OnceLock<Codes>,
    /// The background fit of codes for rows the graph already held (see
    /// [`Hnsw::walk_codes`]).
    fitting: Mutex<Fit>,
    /// Walk on codes once the graph holds this many rows (see
    /// [`Hnsw::set_quantized_walk`]).
    codes_from: Option<usize>,
}

impl Hnsw {
    /// An empty graph for `dim`-dimensional vectors.
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Self {
        Hnsw {
            dim,
            phi2: 0.0,
            phi2_stale: false,
            metric,
            params,
            vectors: Arena::new(dim, rows_per_run(dim, DEFAULT_RUN_BYTES)),
            inv_norms: Vec::new(),
            sq_norms: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            entry: None,
            max_level: 0,
            rng: params.seed | 1,
            deleted: Bitset::new(0),
            free: Vec::new(),
            visited: Mutex::new(Vec::new()),
            codes: OnceLock::new(),
            fitting: Mutex::new(Fit::Idle),
            codes_from: None,
        }
    }

    /// Rebuilds a graph from its parts (see [`Hnsw::state`]); `None` if they disagree.
    pub(crate) fn from_parts(
        state: GraphState,
        vectors: Arena,
        inv_norms: Vec<f32>,
        layer0: Vec<u32>,
    ) -> Option<Self> {
        // Parameters a valid build never has would make later inserts misbehave (M = 1
        // divides by ln 1 when drawing levels).
        if !(2..=128).contains(&state.params.m)
            || state.dim == 0
            || state.params.ef_construction == 0
        {
            return None;
        }
        let mut g = Hnsw::new(state.dim, state.metric, state.params);
        let slots = state.upper.len();
        let stride = g.stride0();
        let cosine = state.metric == Metric::Cosine;
        let dot = state.metric == Metric::DotProduct;
        let consistent = vectors.rows() == slots
            && layer0.len() == slots * stride
            && (!cosine || inv_norms.len() == slots)
            && state.sq_norms.len() == if dot { slots } else { 0 }
            && state.sq_norms.iter().all(|n| n.is_finite() && *n >= 0.0)
            && state.entry.is_none_or(|e| (e as usize) < slots)
            && state.deleted.iter().all(|&d| (d as usize) < slots)
            && layer0.chunks_exact(stride).all(|row| {
                (row[0] as usize) < stride
                    && row[1..=row[0] as usize]
                        .iter()
                        .all(|&n| (n as usize) < slots)
            })
            && state
                .upper
                .iter()
                .flatten()
                .flatten()
                .all(|&n| (n as usize) < slots)
            && state
                .upper
                .iter()
                .all(|levels| levels.len() <= state.max_level)
            // The descent from the entry point walks every level down from the top, and
            // a link on level l leads to a node that has level l.
            && state
                .entry
                .map_or(state.max_level == 0, |e| state.upper[e as usize].len() == state.max_level)
            && state.upper.iter().all(|levels| {
                levels.iter().enumerate().all(|(l, list)| {
                    list.iter().all(|&n| state.upper[n as usize].len() > l)
                })
            });
        if !consistent {
            return None;
        }
        g.entry = state.entry;
        g.max_level = state.max_level;
        g.rng = state.rng;
        g.vectors = vectors;
        g.inv_norms = inv_norms;
        g.layer0 = layer0;
        g.upper = state.upper;
        g.deleted = Bitset::new(slots);
        for &d in &state.deleted {
            g.deleted.insert(d);
        }
        g.free = state.deleted;
        g.sq_norms = state.sq_norms;
        g.phi2_stale = true;
        g.refresh_phi();
        Some(g)
    }

    /// The graph's parts: its state, and its rows, inverse norms and layer-0 lists.
    pub(crate) fn state(&self) -> (GraphState, &Arena, &[f32], &[u32]) {
        let state = GraphState {
            dim: self.dim,
            metric: self.metric,
            params: self.params,
            entry: self.entry,
            max_level: self.max_level,
            rng: self.rng,
            upper: self.upper.clone(),
            deleted: self.free.clone(),
            sq_norms: self.sq_norms.clone(),
        };
        (state, &self.vectors, &self.inv_norms, &self.layer0)
    }

    /// Keeps the rows in runs of as many as fit in `bytes` (see [`super::arena`]);
    /// only an empty graph takes a new run size.
    pub(crate) fn set_run_bytes(&mut self, bytes: u64) {
        if self.slots() == 0 {
            self.vectors = Arena::new(self.dim, rows_per_run(self.dim, bytes));
        }
    }

    /// The names of the vector files that hold rows as they are now.
    pub(crate) fn vector_file_names(&self) -> Vec<String> {
        self.vectors.file_names()
    }

    /// The rows, to write their full runs to vector files.
    pub(crate) fn vectors_mut(&mut self) -> &mut Arena {
        &mut self.vectors
    }

    /// Dimensions of the vectors.
    pub fn dims(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of slots, deleted ones included.
    pub fn slots(&self) -> usize {
        self.upper.len()
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.slots() - self.free.len()
    }

    /// Whether no vector is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live slots.
    pub fn live(&self) -> Bitset {
        let mut set = Bitset::full(self.slots());
        set.subtract(&self.deleted);
        set
    }

    /// Neighbours per node on layer 0 (the graph's degree).
    pub fn degree(&self) -> usize {
        2 * self.params.m
    }

    /// Whether `slot` holds a deleted vector.
    pub fn is_deleted(&self, slot: u32) -> bool {
        self.deleted.contains(slot)
    }

    /// Bytes the graph occupies, mapped vectors included.
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self
            .upper
            .iter()
            .map(|l| l.capacity() * 24 + l.iter().map(|n| n.capacity() * 4).sum::<usize>())
            .sum();
        self.vectors.memory_bytes()
            // Codes still being fitted count as what they will take.
            + self.codes.get().map_or_else(
                || match *self.fitting.lock().unwrap_or_else(|p| p.into_inner()) {
                    Fit::Running(_) => self.vectors.rows() * (self.dim + (self.dim.div_ceil(64) + 1) * 8),
                    Fit::Idle | Fit::Failed => 0,
                },
                Codes::memory_bytes,
            )
            + self.inv_norms.capacity() * 4
            + self.sq_norms.capacity() * 8
            + self.layer0.capacity() * 4
            + self.upper.capacity() * 24
            + upper
    }

    /// The vector stored in `slot`, as it was given.
    pub fn vector(&self, slot: u32) -> &[f32] {
        &self.row(slot)[..self.dim]
    }

    #[inline]
    fn row(&self, slot: u32) -> &[f32] {
        self.vectors.row(slot as usize)
    }

    /// Distance from a probe to a stored slot.
    #[inline]
    fn dist(&self, p: &Probe, slot: u32) -> f64 {
        if let Some((q, codes)) = &p.code {
            return -f64::from(kernels::codes_dot(q, codes.row(slot)));
        }
        let x = self.row(slot);
        match self.metric {
            Metric::Cosine => {
                f64::from(1.0 - kernels::dot(&p.v, x) * p.scale * self.inv_norms[slot as usize])
            }
            Metric::Euclidean => f64::from(kernels::l2_squared(&p.v, x)),
            Metric::DotProduct => match p.lifted {
                Some(n) => self.lifted_dist(&p.v, n, x, self.sq_norms[slot as usize]),
                None => -wide_dot(&p.v, x),
            },
        }
    }

    /// Distances from a probe to `slots`, in order, into `out`; for cosine four rows at
    /// a time (see [`kernels::dot4`]), each exactly what [`Hnsw::dist`] gives.
    fn dists(&self, p: &Probe, slots: &[u32], out: &mut Vec<f64>) {
        out.clear();
        if let Some((q, codes)) = &p.code {
            let fours = slots.len() / 4 * 4;
            for c in slots[..fours].chunks_exact(4) {
                let rows = [c[0], c[1], c[2], c[3]].map(|s| codes.row(s));
                out.extend(kernels::codes_dot4(q, rows).map(|d| -f64::from(d)));
            }
            out.extend(slots[fours..].iter().map(|&s| self.dist(p, s)));
            return;
        }
        let fours = if self.metric == Metric::Cosine {
            slots.len() / 4 * 4
        } else {
            0
        };
        for c in slots[..fours].chunks_exact(4) {
            let rows = [
                self.row(c[0]),
                self.row(c[1]),
                self.row(c[2]),
                self.row(c[3]),
            ];
            let dots = kernels::dot4(&p.v, rows);
            out.extend(
                c.iter()
                    .zip(dots)
                    .map(|(&s, d)| f64::from(1.0 - d * p.scale * self.inv_norms[s as usize])),
            );
        }
        out.extend(slots[fours..].iter().map(|&s| self.dist(p, s)));
    }

    /// Distance between two stored slots, without copying either row.
    #[inline]
    fn dist_between(&self, a: u32, b: u32) -> f64 {
        let (x, y) = (self.row(a), self.row(b));
        match self.metric {
            Metric::Cosine => f64::from(
                1.0 - kernels::dot(x, y) * self.inv_norms[a as usize] * self.inv_norms[b as usize],
            ),
            Metric::Euclidean => f64::from(kernels::l2_squared(x, y)),
            Metric::DotProduct => {
                self.lifted_dist(x, self.sq_norms[a as usize], y, self.sq_norms[b as usize])
            }
        }
    }

    /// `|x' − y'|²` between two lifted rows: the Euclidean part, plus the difference of
    /// the extra coordinates written as `(|y|² − |x|²) / (e(x) + e(y))`, which is exact
    /// to rounding where `e(x) − e(y)` would cancel to nothing (when Φ dwarfs the norms).
    fn lifted_dist(&self, x: &[f32], x_sq: f64, y: &[f32], y_sq: f64) -> f64 {
        // A tombstone can be longer than a Φ that shrank after it was deleted: it is
        // put on the sphere's rim (extra coordinate 0), which only bends navigation.
        let (ex, ey) = (
            (self.phi2 - x_sq).max(0.0).sqrt(),
            (self.phi2 - y_sq).max(0.0).sqrt(),
        );
        let de = if ex + ey > 0.0 {
            (y_sq - x_sq) / (ex + ey)
        } else {
            0.0
        };
        wide_l2(x, y) + de * de
    }

    /// A stored slot as a probe (to measure from it).
    fn probe_of(&self, slot: u32) -> Probe<'_> {
        Probe {
            code: None,
            v: self.row(slot).to_vec(),
            scale: self.inv_norms.get(slot as usize).copied().unwrap_or(1.0),
            lifted: self.sq_norms.get(slot as usize).copied(),
        }
    }

    /// A query as a probe: its inverse norm for cosine; for dot product, scaled to unit
    /// length, which keeps the order of its inner products and keeps them within the
    /// stored norms (so f32 sums do not overflow however long the query is).
    fn query_probe(&self, vector: &[f32]) -> Probe<'_> {
        assert_eq!(
            vector.len(),
            self.dim,
            "vector has {} dimensions, the graph {}",
            vector.len(),
            self.dim
        );
        let mut v = vector.to_vec();
        let mut scale = 1.0;
        match self.metric {
            Metric::Cosine => scale = inverse_norm(vector),
            Metric::DotProduct => {
                let norm = kernels::dot_f64(vector, vector).sqrt();
                if norm > 0.0 {
                    v.iter_mut()
                        .for_each(|x| *x = (f64::from(*x) / norm) as f32);
                }
            }
            Metric::Euclidean => {}
        }
        Probe {
            code: None,
            v,
            scale,
            lifted: None,
        }
    }

    fn stride0(&self) -> usize {
        2 * self.params.m + 1
    }

    fn neighbours(&self, slot: u32, level: usize) -> &[u32] {
        if level == 0 {
            let base = slot as usize * self.stride0();
            let count = self.layer0[base] as usize;
            &self.layer0[base + 1..base + 1 + count]
        } else {
            &self.upper[slot as usize][level - 1]
        }
    }

    fn set_neighbours(&mut self, slot: u32, level: usize, list: &[u32]) {
        if level == 0 {
            let base = slot as usize * self.stride0();
            self.layer0[base] = list.len() as u32;
            self.layer0[base + 1..base + 1 + list.len()].copy_from_slice(list);
        } else {
            let l = &mut self.upper[slot as usize][level - 1];
            l.clear();
            l.extend_from_slice(list);
        }
    }

    fn level_of(&self, slot: u32) -> usize {
        self.upper[slot as usize].len()
    }

    fn cap(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.params.m
        } else {
            self.params.m
        }
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*; level ~ floor(-ln(U) / ln(M)).
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let bits = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let u = ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-u.ln()) / (self.params.m as f64).ln()) as usize
    }

    /// Writes `vector` into `slot`'s row and its norm, growing Φ if it is the longest.
    fn store_row(&mut self, slot: u32, vector: &[f32]) {
        let s = slot as usize;
        if s == self.vectors.rows() {
            self.vectors.push(vector);
        } else {
            self.vectors.row_mut(s).copy_from_slice(vector);
        }
        match self.metric {
            Metric::Cosine => {
                set_or_push(&mut self.inv_norms, s, inverse_norm(vector));
                self.update_codes(s);
            }
            Metric::DotProduct => {
                let sq = kernels::dot_f64(vector, vector);
                set_or_push(&mut self.sq_norms, s, sq);
                self.phi2 = self.phi2.max(sq);
            }
            Metric::Euclidean => {}
        }
    }

    /// Walks queries on byte codes of the rows (cosine graphs only, see [`Codes`]) once
    /// the graph holds `from` rows; `None` walks on the rows themselves. Codes for rows
    /// the graph already holds are fitted in the background once queries come (see
    /// [`Hnsw::walk_codes`]).
    pub fn set_quantized_walk(&mut self, from: Option<usize>) {
        self.settle_codes();
        self.codes_from = from.filter(|_| self.metric == Metric::Cosine);
        self.codes = OnceLock::new();
    }

    /// The codes queries walk on, if they are ready. The first query that finds them
    /// missing starts their fit on a thread of its own, on one core: an index just
    /// opened answers at once (on its rows), and a 1M x 768 fit does not slow the
    /// opening of the rest of the store, which on every core it did (2.0 s against
    /// 0.9 s to the first answer).
    fn walk_codes(&self) -> Option<&Codes> {
        if let Some(codes) = self.codes.get() {
            return Some(codes);
        }
        let from = self.codes_from?;
        if self.vectors.rows() < from.max(1) {
            return None;
        }
        let mut fit = self.fitting.lock().unwrap_or_else(|p| p.into_inner());
        match &*fit {
            Fit::Idle => *fit = Fit::Running(self.start_fit()),
            Fit::Running(rx) => match rx.try_recv() {
                Ok(codes) => {
                    let _ = self.codes.set(codes);
                    *fit = Fit::Idle;
                }
                Err(mpsc::TryRecvError::Empty) => {}
                // The fit panicked: walk on the rows rather than try again per query.
                Err(mpsc::TryRecvError::Disconnected) => *fit = Fit::Failed,
            },
            Fit::Failed => {}
        }
        self.codes.get()
    }

    /// What [`Hnsw::scan`] of `candidates` slots keeping `depth` costs, in the walk's
    /// measurements of a row. Measured on MiniLM and the hard set (docs/benchmarks.md):
    /// a row's byte code, read in order and fetched ahead, costs about half a walk's
    /// measurement; reading bits first halves that again. (Measured when bits were
    /// counted; estimating from them costs up to twice as much a row, and buys recall
    /// 1.0 where counting gave 0.99: not measured again against walks.)
    pub fn scan_cost(&self, candidates: usize, depth: usize) -> usize {
        if self.walk_codes().is_none() {
            candidates
        } else if scans_bits(self.dim, candidates, depth) {
            candidates / 4
        } else {
            candidates / 2
        }
    }

    /// Fits codes for the rows held now, on a thread of its own with a pool of one.
    fn start_fit(&self) -> mpsc::Receiver<Codes> {
        let (tx, rx) = mpsc::channel();
        let (dim, rows) = (self.dim, self.vectors.rows());
        let (vectors, inv_norms) = (self.vectors.clone(), self.inv_norms.clone());
        std::thread::spawn(move || {
            let fit = || Codes::fit(dim, rows, &|s| vectors.row(s), &inv_norms);
            let codes = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
                Ok(pool) => pool.install(fit),
                Err(_) => fit(),
            };
            let _ = tx.send(codes);
        });
        rx
    }

    /// Waits for a background fit, so that a change to the rows reaches the codes.
    fn settle_codes(&mut self) {
        let fit = std::mem::replace(
            self.fitting.get_mut().unwrap_or_else(|p| p.into_inner()),
            Fit::Idle,
        );
        if let Fit::Running(rx) = fit {
            if let Ok(codes) = rx.recv() {
                self.codes = OnceLock::from(codes);
            }
        }
    }

    /// Brings slot `s`'s code in line with its row: encodes it, or fits all codes anew
    /// when the graph reaches the size that starts them or has doubled since.
    fn update_codes(&mut self, s: usize) {
        let Some(from) = self.codes_from else {
            return;
        };
        self.settle_codes();
        let rows = self.vectors.rows();
        match self.codes.get_mut() {
            Some(codes) if !codes.stale(rows) => {
                codes.set(s, self.vectors.row(s), self.inv_norms[s]);
            }
            _ if rows >= from.max(1) => {
                let vectors = &self.vectors;
                let codes = Codes::fit(self.dim, rows, &|s| vectors.row(s), &self.inv_norms);
                self.codes = OnceLock::from(codes);
            }
            _ => {}
        }
    }

    /// Brings Φ back to the longest live vector once the one that set it is deleted, so
    /// that links made from now on get the lift's full resolution again.
    fn refresh_phi(&mut self) {
        if !self.phi2_stale {
            return;
        }
        self.phi2_stale = false;
        self.phi2 = self
            .sq_norms
            .iter()
            .enumerate()
            .filter(|&(s, _)| !self.deleted.contains(s as u32))
            .map(|(_, &n)| n)
            .fold(0.0, f64::max);
    }

    /// Search results as callers get them: the graph's distances, except for dot
    /// product, whose order so far rests on f32 sums: there each result is scored with
    /// its exact negated inner product in f64 and the list re-sorted.
    fn results(&self, query: &[f32], found: Vec<Near>, k: usize) -> Vec<(u32, f64)> {
        let mut out: Vec<(u32, f64)> = found
            .into_iter()
            .take(k)
            .map(|n| match self.metric {
                Metric::DotProduct => (n.1, -kernels::dot_f64(query, self.vector(n.1))),
                _ => (n.1, n.0),
            })
            .collect();
        if self.metric == Metric::DotProduct {
            out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        }
        out
    }

    /// A new slot at a random level, unlinked.
    fn allocate(&mut self, vector: &[f32]) -> u32 {
        let slot = self.slots() as u32;
        let level = self.random_level();
        self.store_row(slot, vector);
        self.layer0.resize(self.layer0.len() + self.stride0(), 0);
        self.upper.push(vec![Vec::new(); level]);
        self.deleted.grow(self.slots());
        slot
    }

    /// Adds a vector; returns its slot (a deleted one's, if any).
    pub fn insert(&mut self, vector: &[f32]) -> u32 {
        self.refresh_phi();
        if let Some(slot) = self.free.pop() {
            self.reuse(slot, vector);
            return slot;
        }
        let slot = self.allocate(vector);
        let found = self.candidates(slot);
        self.connect(slot, found, &[]);
        slot
    }

    /// Adds many vectors, in chunks whose work runs in parallel: each member's search
    /// and choice of neighbours (against the graph as it was, plus the chunk's earlier
    /// members, which the searches could not see), then the back-links, grouped by the
    /// node that receives them. Only writing the chosen lists is sequential. Returns the
    /// slots, in order.
    pub fn insert_batch(&mut self, vectors: &[&[f32]]) -> Vec<u32> {
        self.refresh_phi();
        let mut slots = Vec::with_capacity(vectors.len());
        let mut rest = vectors;
        while let (Some(_), Some(v)) = (self.free.last(), rest.first()) {
            slots.push(self.insert(v));
            rest = &rest[1..];
        }
        if self.entry.is_none() {
            if let Some(v) = rest.first() {
                slots.push(self.insert(v));
                rest = &rest[1..];
            }
        }
        let chunk = 32 * rayon::current_num_threads().max(1);
        for group in rest.chunks(chunk) {
            let new: Vec<u32> = group.iter().map(|v| self.allocate(v)).collect();
            let chosen: Vec<Vec<Vec<u32>>> = (new.par_iter().enumerate())
                .map(|(i, &s)| self.choose(s, self.candidates(s), &new[..i]))
                .collect();
            let mut incoming: BTreeMap<(u32, usize), Vec<u32>> = BTreeMap::new();
            for (&slot, lists) in new.iter().zip(&chosen) {
                self.adopt(slot, lists);
                for (l, list) in lists.iter().enumerate() {
                    for &n in list {
                        incoming.entry((n, l)).or_default().push(slot);
                    }
                }
            }
            let incoming: Vec<((u32, usize), Vec<u32>)> = incoming.into_iter().collect();
            let relinked: Vec<Vec<u32>> = (incoming.par_iter())
                .map(|&((node, l), ref from)| self.with_links(node, l, from))
                .collect();
            for (((node, l), _), list) in incoming.iter().zip(relinked) {
                self.set_neighbours(*node, *l, &list);
            }
            slots.extend(new);
        }
        slots
    }

    /// For a stored but unlinked `slot`: the nearest nodes on each of its levels that the
    /// graph already has, found by the usual descent (read-only).
    fn candidates(&self, slot: u32) -> Vec<Vec<Near>> {
        let level = self.level_of(slot);
        let mut out = vec![Vec::new(); level + 1];
        let Some(mut entry) = self.entry else {
            return out;
        };
        let p = self.probe_of(slot);
        let mut entry_dist = self.dist(&p, entry);
        for l in (level + 1..=self.max_level).rev() {
            (entry, entry_dist) = self.greedy(&p, entry, entry_dist, l);
        }
        let mut entries = vec![Near(entry_dist, entry)];
        for l in (0..=level.min(self.max_level)).rev() {
            // A reused slot can be the entry point, so the search may find the slot
            // itself: it still serves as the next level's entry, but is no candidate.
            let found = self.search_layer(&p, &entries, self.params.ef_construction, l, None);
            out[l] = found.iter().copied().filter(|n| n.1 != slot).collect();
            entries = found;
        }
        out
    }

    /// Links `slot` to its chosen neighbours on each level and them back to it; `also`
    /// are nodes the candidate search could not see.
    fn connect(&mut self, slot: u32, found: Vec<Vec<Near>>, also: &[u32]) {
        let lists = self.choose(slot, found, also);
        self.adopt(slot, &lists);
        for (l, list) in lists.iter().enumerate() {
            for &n in list {
                let linked = self.with_links(n, l, &[slot]);
                self.set_neighbours(n, l, &linked);
            }
        }
    }

    /// The neighbours `slot` takes on each of its levels: the heuristic's pick among
    /// the candidates `found` and `also` (read-only, so a batch's members choose in
    /// parallel).
    fn choose(&self, slot: u32, mut found: Vec<Vec<Near>>, also: &[u32]) -> Vec<Vec<u32>> {
        let p = self.probe_of(slot);
        (found.iter_mut().enumerate())
            .map(|(l, candidates)| {
                for &other in also {
                    if self.level_of(other) >= l {
                        candidates.push(Near(self.dist(&p, other), other));
                    }
                }
                candidates.sort();
                candidates.dedup_by_key(|n| n.1);
                let chosen = self.select(candidates, self.params.m);
                chosen.iter().map(|n| n.1).collect()
            })
            .collect()
    }

    /// Gives `slot` its lists, and makes it the entry point if it tops the graph.
    fn adopt(&mut self, slot: u32, lists: &[Vec<u32>]) {
        for (l, list) in lists.iter().enumerate() {
            self.set_neighbours(slot, l, list);
        }
        let level = self.level_of(slot);
        if self.entry.is_none() || level > self.max_level {
            self.max_level = level;
            self.entry = Some(slot);
        }
    }

    /// `node`'s list on `level` with links to `new` added: appended while the list has
    /// room, pruned with the heuristic among old and new once they overflow it.
    fn with_links(&self, node: u32, level: usize, new: &[u32]) -> Vec<u32> {
        let mut list = self.neighbours(node, level).to_vec();
        for &n in new {
            if !list.contains(&n) {
                list.push(n);
            }
        }
        if list.len() <= self.cap(level) {
            return list;
        }
        self.pruned(node, level, list)
    }

    /// Replaces `node`'s list on `level` with `candidates` (see [`Hnsw::pruned`]).
    fn relink(&mut self, node: u32, level: usize, candidates: Vec<u32>) {
        let list = self.pruned(node, level, candidates);
        self.set_neighbours(node, level, &list);
    }

    /// `candidates` as `node`'s list on `level`, pruned by the heuristic only when they
    /// overflow the list. Pruning a list that fits would drop back-links that other
    /// nodes depend on to be reached at all (the model test found islands that way after
    /// deletes in small graphs), so, as in [`Hnsw::with_links`], only a full list prunes.
    fn pruned(&self, node: u32, level: usize, candidates: Vec<u32>) -> Vec<u32> {
        let mut near: Vec<Near> = candidates
            .into_iter()
            .filter(|&c| c != node)
            .map(|c| Near(self.dist_between(node, c), c))
            .collect();
        near.sort();
        near.dedup_by_key(|n| n.1);
        let cap = self.cap(level);
        let kept = if near.len() <= cap {
            near
        } else {
            self.select(&near, cap)
        };
        kept.iter().map(|n| n.1).collect()
    }

    /// The neighbour-selection heuristic: take candidates nearest first, skipping one
    /// that is closer to an already chosen neighbour than to the base node; this keeps
    /// links spread across clusters. `sorted` must be in ascending distance.
    ///
    /// Duplicates of the base (the same chunk embedded twice) get special treatment,
    /// found the hard way by the model and crash tests: a twin is exactly as far from
    /// every candidate as the base is, so letting it prune cuts the base off from the
    /// rest of the graph, and letting twins fill the list turns a group of copies into
    /// an island. So at most [`TWIN_LINKS`] twins are linked, and twins prune nothing.
    /// A tie with a chosen neighbour keeps the candidate, for the same reason.
    fn select(&self, sorted: &[Near], m: usize) -> Vec<Near> {
        // The newest twins: a new copy then links to the copies before it, and they
        // (keeping their newest twins too) link back, so a group of copies stays one
        // connected chain rather than all pointing at the oldest.
        let mut chosen: Vec<Near> = sorted
            .iter()
            .copied()
            .filter(|c| c.0 <= TWIN_DISTANCE)
            .collect();
        chosen.sort_by_key(|c| std::cmp::Reverse(c.1));
        chosen.truncate(TWIN_LINKS.min(m));
        let twins = chosen.len();
        for &c in sorted.iter().filter(|c| c.0 > TWIN_DISTANCE) {
            if chosen.len() == m {
                break;
            }
            if chosen[twins..]
                .iter()
                .all(|k| self.dist_between(c.1, k.1) >= c.0)
            {
                chosen.push(c);
            }
        }
        chosen
    }

    /// Deletes `slot`: it becomes a tombstone (still traversed, never returned, its slot
    /// reused by the next insert), and each neighbour that linked to it is re-linked
    /// among its other neighbours and the tombstone's.
    pub fn delete(&mut self, slot: u32) {
        if self.deleted.contains(slot) {
            return;
        }
        self.deleted.insert(slot);
        self.free.push(slot);
        if self
            .sq_norms
            .get(slot as usize)
            .is_some_and(|&n| n >= self.phi2)
        {
            self.phi2_stale = true;
        }
        for l in 0..=self.level_of(slot) {
            let around: Vec<u32> = self.neighbours(slot, l).to_vec();
            for &n in &around {
                let theirs = self.neighbours(n, l);
                if !theirs.contains(&slot) {
                    continue;
                }
                let candidates: Vec<u32> = theirs
                    .iter()
                    .chain(&around)
                    .copied()
                    .filter(|&c| c != slot && c != n && !self.deleted.contains(c))
                    .collect();
                self.relink(n, l, candidates);
            }
        }
    }

    /// Puts a new vector into a deleted slot: the old neighbours are re-linked around the
    /// changed vector, then the slot is linked afresh at its old level. Nodes that still
    /// link to the tombstone (those it did not link back) reached the old neighbours
    /// through it, so the slot keeps as many of those as its lists have room for.
    fn reuse(&mut self, slot: u32, vector: &[f32]) {
        let old: Vec<Vec<u32>> = (0..=self.level_of(slot))
            .map(|l| self.neighbours(slot, l).to_vec())
            .collect();
        self.store_row(slot, vector);
        self.deleted.remove(slot);
        for (l, around) in old.iter().enumerate() {
            for &n in around {
                let candidates: Vec<u32> = self
                    .neighbours(n, l)
                    .iter()
                    .chain(around)
                    .copied()
                    .collect();
                self.relink(n, l, candidates);
            }
        }
        let found = self.candidates(slot);
        self.connect(slot, found, &[]);
        for (l, around) in old.iter().enumerate() {
            let mut list = self.neighbours(slot, l).to_vec();
            for &n in around {
                if list.len() == self.cap(l) {
                    break;
                }
                if n != slot && !list.contains(&n) {
                    list.push(n);
                }
            }
            self.set_neighbours(slot, l, &list);
        }
    }

    fn greedy(&self, p: &Probe, mut best: u32, mut best_dist: f64, level: usize) -> (u32, f64) {
        loop {
            let mut moved = false;
            for &n in self.neighbours(best, level) {
                let d = self.dist(p, n);
                if d < best_dist {
                    (best, best_dist) = (n, d);
                    moved = true;
                }
            }
            if !moved {
                return (best, best_dist);
            }
        }
    }

    /// Best-first search of one layer; returns up to `ef` nodes in ascending distance.
    /// `admit` says which nodes may be returned, and whether a rejected neighbour is
    /// measured (a stepping stone) or hopped over (see [`Admit`]).
    fn search_layer(
        &self,
        p: &Probe,
        entries: &[Near],
        ef: usize,
        level: usize,
        admit: Option<&Admit<'_>>,
    ) -> Vec<Near> {
        let mut pool = self.visited.lock().unwrap_or_else(|p| p.into_inner());
        let mut visited = pool.pop().unwrap_or(Visited {
            marks: Vec::new(),
            generation: 0,
        });
        drop(pool);
        visited.reset(self.slots());
        let mut frontier: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::new();
        let mut best: BinaryHeap<Near> = BinaryHeap::new();
        let ok = |s: u32| admit.is_none_or(|a| (a.accept)(s));
        let hop = admit.is_some_and(|a| a.hop);
        for &e in entries {
            if visited.insert(e.1) {
                frontier.push(std::cmp::Reverse(e));
                if ok(e.1) {
                    best.push(e);
                }
            }
        }
        let (mut reached, mut hopped) = (Vec::with_capacity(self.degree()), Vec::new());
        let mut measured = Vec::with_capacity(2 * self.degree());
        // The bound on what is worth expanding: the worst accepted result once there are
        // `ef` of them. Before that, everything is.
        while let Some(std::cmp::Reverse(c)) = frontier.pop() {
            if best.len() >= ef && best.peek().is_some_and(|w| c.0 > w.0) {
                break;
            }
            let list = self.neighbours(c.1, level);
            reached.clear();
            if hop {
                // Accepted neighbours first, then accepted neighbours of rejected ones, up
                // to two neighbour lists' worth. A node hopped through is marked visited,
                // so what the cap cuts from its list is not reached through it again: with
                // one list's worth, walks at 10% selectivity lost 0.5-1 point of recall@10
                // at every ef and were 1.3-1.5x slower to a given recall (docs/benchmarks.md).
                hopped.clear();
                for &n in list {
                    if ok(n) {
                        if visited.insert(n) {
                            reached.push(n);
                        }
                    } else if reached.len() + hopped.len() < self.degree() && visited.insert(n) {
                        kernels::prefetch(self.neighbours(n, level));
                        hopped.push(n);
                    }
                }
                for &n in &hopped {
                    for &m in self.neighbours(n, level) {
                        if reached.len() >= 2 * self.degree() {
                            break;
                        }
                        if ok(m) && visited.insert(m) {
                            reached.push(m);
                        }
                    }
                }
            } else {
                reached.extend(list.iter().copied().filter(|&n| visited.insert(n)));
            }
            for &n in &reached {
                match &p.code {
                    Some((_, codes)) => kernels::prefetch(codes.row(n)),
                    None => kernels::prefetch(self.row(n)),
                }
            }
            self.dists(p, &reached, &mut measured);
            for (&n, &d) in reached.iter().zip(&measured) {
                if best.len() < ef || best.peek().is_some_and(|w| d < w.0) {
                    frontier.push(std::cmp::Reverse(Near(d, n)));
                    if ok(n) {
                        best.push(Near(d, n));
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
        }
        self.visited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(visited);
        best.into_sorted_vec()
    }

    /// The `k` nearest live slots to `query` with their distances, ascending, exploring
    /// `ef` candidates (at least `k`).
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(u32, f64)> {
        self.search_filtered(query, k, ef, None)
    }

    /// Like [`Hnsw::search`], returning only slots in `allowed`.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&Bitset>,
    ) -> Vec<(u32, f64)> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let mut p = self.query_probe(query);
        if let Some(codes) = self.walk_codes() {
            p.code = Some((codes.query(&p.v), codes));
        }
        let mut cur = (entry, self.dist(&p, entry));
        for l in (1..=self.max_level).rev() {
            cur = self.greedy(&p, cur.0, cur.1, l);
        }
        let accept = |s: u32| !self.deleted.contains(s) && allowed.is_none_or(|a| a.contains(s));
        let accepted = allowed.map(Bitset::count);
        let admit = Admit {
            accept: &accept,
            hop: accepted.is_some_and(|n| self.hops_for(n)),
        };
        let (start, ef) = ([Near(cur.1, cur.0)], ef.max(k));
        let mut found = self.search_layer(&p, &start, ef, 0, Some(&admit));
        if admit.hop && found.len() < ef.min(accepted.unwrap_or(0)) {
            // The walk ran out of accepted slots two hops away before it had ef of them,
            // and there are more: a small or scattered selection. Walk again measuring
            // every node, as stepping stones.
            let admit = Admit {
                hop: false,
                ..admit
            };
            found = self.search_layer(&p, &start, ef, 0, Some(&admit));
        }
        if p.code.take().is_some() {
            // Distances between codes only ordered the walk: the candidates it found are
            // ranked, and scored, on their rows.
            for n in &mut found {
                n.0 = self.dist(&p, n.1);
            }
            found.sort_unstable();
            if found.len() >= ef && found[found.len() - 1].0 - found[0].0 < CODES_BLUR {
                // All ef lie closer together than codes can tell apart, so nearer rows
                // may have been left out for them (many near-copies of one vector):
                // walk on, from them, on the rows.
                found = self.search_layer(&p, &found, ef, 0, Some(&admit));
            }
        }
        self.results(query, found, k)
    }

    /// Whether a filtered search that accepts `accepted` slots hops over rejected
    /// neighbours (see [`Admit::hop`]).
    pub fn hops_for(&self, accepted: usize) -> bool {
        accepted.saturating_mul(HOP_BELOW_ONE_IN) < self.slots()
    }

    /// Exact search over the live slots (the reference, and the plan for small sets).
    pub fn brute_force(&self, query: &[f32], k: usize) -> Vec<(u32, f64)> {
        self.exact(
            query,
            k,
            (0..self.slots() as u32).filter(|&s| !self.deleted.contains(s)),
        )
    }

    /// A scan of the given slots for a query that may return only them: on the byte
    /// codes when the walk uses them (after the bit codes when there are many), keeping
    /// the max(`depth`, `k`) best, which are then ranked and scored on their rows;
    /// [`Hnsw::exact`] otherwise. A scan is bound by fetching what it measures: codes
    /// are a quarter of the rows' bytes, bits a thirty-second.
    pub fn scan(
        &self,
        query: &[f32],
        k: usize,
        depth: usize,
        slots: impl Iterator<Item = u32>,
    ) -> Vec<(u32, f64)> {
        let Some(codes) = self.walk_codes() else {
            return self.exact(query, k, slots);
        };
        if k == 0 {
            return Vec::new();
        }
        let p = self.query_probe(query);
        let q = codes.query(&p.v);
        let depth = depth.max(k);
        let all: Vec<u32> = slots.collect();
        let mut best = BinaryHeap::with_capacity(depth.min(all.len()) + 1);
        let found = if scans_bits(self.dim, all.len(), depth) {
            // Bits first: every row's similarity estimated from its bit code; the
            // `BITS_KEEP` x `depth` best measured on the byte codes, then every other
            // row whose estimate's bound still reaches the k-th best similarity found.
            let estimates = codes.estimates(&p.v, &all);
            // Ties at the cut all go first (copies of one vector estimate the same).
            let cut = estimates.line_reached_by(BITS_KEEP * depth);
            let first: Vec<u32> = all
                .iter()
                .zip(&estimates.similarity)
                .filter(|(_, &e)| e >= cut)
                .map(|(&s, _)| s)
                .collect();
            measure_codes(codes, &q, &first, depth, &mut best);
            let found = self.rescored(&p, &best);
            // A cosine distance is 1 - similarity; with fewer than k found, anything
            // may still be among the k best.
            let reach = found
                .get(k.max(1) - 1)
                .map_or(f32::NEG_INFINITY, |kth| (1.0 - kth.0) as f32);
            let more: Vec<u32> = all
                .iter()
                .zip(estimates.similarity.iter().zip(&estimates.at_most))
                .filter(|(_, (&e, &most))| e < cut && most >= reach)
                .map(|(&s, _)| s)
                .collect();
            if more.is_empty() {
                found
            } else {
                measure_codes(codes, &q, &more, depth, &mut best);
                self.rescored(&p, &best)
            }
        } else {
            measure_codes(codes, &q, &all, depth, &mut best);
            self.rescored(&p, &best)
        };
        if !found.is_empty()
            && found.len() < all.len()
            && found[found.len() - 1].0 - found[0].0 < CODES_BLUR
        {
            // As in a walk (see `CODES_BLUR`): the codes could not order these.
            return self.exact(query, k, all.into_iter());
        }
        self.results(query, found, k)
    }

    /// The slots of `best` (byte-code distances), scored exactly and sorted.
    fn rescored(&self, p: &Probe, best: &BinaryHeap<(i32, u32)>) -> Vec<Near> {
        for &(_, s) in best {
            kernels::prefetch_all(self.row(s));
        }
        let mut found: Vec<Near> = best
            .iter()
            .map(|&(_, s)| Near(self.dist(p, s), s))
            .collect();
        found.sort_unstable();
        found
    }

    /// Exact search over the given slots.
    pub fn exact(
        &self,
        query: &[f32],
        k: usize,
        slots: impl Iterator<Item = u32>,
    ) -> Vec<(u32, f64)> {
        let p = self.query_probe(query);
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(k + 1);
        let (mut batch, mut measured) = (Vec::with_capacity(64), Vec::with_capacity(64));
        let mut slots = slots.peekable();
        while slots.peek().is_some() {
            batch.clear();
            batch.extend(slots.by_ref().take(64));
            self.dists(&p, &batch, &mut measured);
            for (&s, &d) in batch.iter().zip(&measured) {
                if best.len() < k || best.peek().is_some_and(|w| d < w.0) {
                    best.push(Near(d, s));
                    if best.len() > k {
                        best.pop();
                    }
                }
            }
        }
        self.results(query, best.into_sorted_vec(), k)
    }
}

/// Where the background fit of a graph's codes stands.
enum Fit {
    Idle,
    Running(mpsc::Receiver<Codes>),
    Failed,
}

/// What a filtered search may return, and how it walks past what it may not.
struct Admit<'a> {
    /// Whether a slot may be returned.
    accept: &'a dyn Fn(u32) -> bool,
    /// Reach past a rejected neighbour to its own neighbours instead of measuring it
    /// (ACORN's two-hop expansion). When few slots are accepted, most neighbours are
    /// rejected: measuring them as stepping stones is most of a query's work, and a
    /// walk over accepted slots alone falls apart into islands.
    hop: bool,
}

/// Filters that accept fewer than one slot in this many hop over rejected neighbours;
/// above it, enough neighbours are accepted for the graph itself to carry the walk.
const HOP_BELOW_ONE_IN: usize = 4;

/// How many candidates per `ef` a scan measures first on the byte codes, the best by
/// their bits' estimates; the bound then adds what those cannot rule out. On MiniLM's
/// 10% filter the best 8 x 16 estimates held 99.9% of the true top 10 (docs/benchmarks.md),
/// so the bound rarely adds much. Reading a row's bits costs its latency as reading
/// its bytes does: a scan estimates only when it has at least `BITS_KEEP` times as many
/// rows as it measures first (a 1% filter of 430 rows at ef 16 took twice as long with
/// bits).
const BITS_KEEP: usize = 8;

/// Cosine distances closer than this may be ordered wrongly by byte codes. Rounding
/// moves a 768-dim code's distance by about 3e-4 and a 32-dim one's by up to ~1e-3.
/// A walk whose ef re-scored candidates all lie within this of each other walks on
/// over the rows, and such a scan redoes its candidates exactly. On MiniLM and the
/// hard set the 10 nearest of any query spread over at least 0.005 and 0.013 (300
/// queries each), so real queries never pay for it.
const CODES_BLUR: f64 = 4e-3;

/// Whether a scan of `candidates` keeping `depth` estimates from bits first (see
/// [`BITS_KEEP`]). Not below 256 dimensions: there a bit code says too little (at 64,
/// the 80 nearest by bits of 1,000 clustered rows held 63% of the top 10, and the bound
/// would rule little out), and a byte code is a line or four anyway.
fn scans_bits(dim: usize, candidates: usize, depth: usize) -> bool {
    dim >= 256 && candidates >= depth.saturating_mul(BITS_KEEP * BITS_KEEP)
}

/// Measures `slots` on their byte codes against the query code `q`, keeping the
/// `depth` nearest in `best` (a max-heap of negated code dot products). The slots are
/// known ahead, unlike a walk's: rows are fetched a few steps early, so that the scan
/// is bound by bandwidth, not by each row's latency.
fn measure_codes(
    codes: &Codes,
    q: &[i8],
    slots: &[u32],
    depth: usize,
    best: &mut BinaryHeap<(i32, u32)>,
) {
    const AHEAD: usize = 8;
    let mut keep = |d: i32, s: u32| {
        if best.len() < depth || best.peek().is_some_and(|w| d < w.0) {
            best.push((d, s));
            if best.len() > depth {
                best.pop();
            }
        }
    };
    let fours = slots.len() / 4 * 4;
    for (i, c) in slots[..fours].chunks_exact(4).enumerate() {
        for &s in slots.iter().skip(i * 4 + AHEAD).take(4) {
            kernels::prefetch_all(codes.row(s));
        }
        let dots = kernels::codes_dot4(q, [c[0], c[1], c[2], c[3]].map(|s| codes.row(s)));
        for (&s, d) in c.iter().zip(dots) {
            keep(-d, s);
        }
    }
    for &s in &slots[fours..] {
        keep(-kernels::codes_dot(q, codes.row(s)), s);
    }
}

/// `a·b`: the SIMD kernel's f32 sum, or the f64 one where f32 cannot hold it.
#[inline]
fn wide_dot(a: &[f32], b: &[f32]) -> f64 {
    let d = kernels::dot(a, b);
    if d.is_finite() && d.abs() >= F32_TRUSTED_MIN {
        f64::from(d)
    } else {
        kernels::dot_f64(a, b)
    }
}

/// `|a − b|²`: the SIMD kernel's f32 sum, or the f64 one where f32 cannot hold it.
#[inline]
fn wide_l2(a: &[f32], b: &[f32]) -> f64 {
    let d = kernels::l2_squared(a, b);
    if d.is_finite() && d >= F32_TRUSTED_MIN {
        f64::from(d)
    } else {
        kernels::l2_squared_f64(a, b)
    }
}

fn set_or_push<T>(list: &mut Vec<T>, i: usize, value: T) {
    if i == list.len() {
        list.push(value);
    } else {
        list[i] = value;
    }
}

/// 1 / |v|, or 0 for the zero vector (which is then at distance 1 from everything).
fn inverse_norm(v: &[f32]) -> f32 {
    let n = kernels::dot(v, v).sqrt();
    if n > 0.0 {
        1.0 / n
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered data: `n` points around 20 random centres, like embeddings of topics.
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dim).map(|_| next()).collect())
            .collect();
        (0..n)
            .map(|i| centres[i % 20].iter().map(|c| c + 0.25 * next()).collect())
            .collect()
    }

    /// Recall@10 at the default settings on 3,000 clustered points. On this data the
    /// curve is ef 16: 0.68, 32: 0.82, 64: 0.92, 128: 0.97, 256: 1.0 (cosine).
    fn recall(metric: Metric) -> f64 {
        let data = clustered(3000, 64, 42);
        let mut g = Hnsw::new(64, metric, HnswParams::default());
        for v in &data {
            g.insert(v);
        }
        let queries = clustered(100, 64, 99);
        let mut hits = 0;
        for q in &queries {
            let want: Vec<u32> = g.brute_force(q, 10).into_iter().map(|r| r.0).collect();
            let got: Vec<u32> = g
                .search(q, 10, DEFAULT_EF_SEARCH)
                .into_iter()
                .map(|r| r.0)
                .collect();
            hits += got.iter().filter(|s| want.contains(s)).count();
        }
        hits as f64 / (queries.len() * 10) as f64
    }

    #[test]
    fn recall_at_10_is_at_least_095_for_every_metric() {
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::DotProduct] {
            let r = recall(metric);
            assert!(r >= 0.95, "{metric:?}: recall@10 = {r}");
        }
    }

    /// Walking on byte codes: recall as high as on the rows, and every score exactly what
    /// the rows give, for codes that grew with the inserts and for codes fitted in the
    /// background for a graph that already had its rows; filtered walks too.
    #[test]
    fn a_walk_on_byte_codes_finds_what_the_rows_do_and_scores_exactly() {
        let data = clustered(3000, 64, 42);
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let queries = clustered(100, 64, 99);
        let mut grown = Hnsw::new(64, Metric::Cosine, HnswParams::default());
        grown.set_quantized_walk(Some(100));
        for v in &rows {
            grown.insert(v);
        }
        assert!(grown.codes.get().is_some(), "codes start at 100 rows");
        let mut fitted = Hnsw::new(64, Metric::Cosine, HnswParams::default());
        fitted.insert_batch(&rows);
        fitted.set_quantized_walk(Some(100));
        let waited = std::time::Instant::now();
        while fitted.walk_codes().is_none() {
            assert!(
                waited.elapsed().as_secs() < 60,
                "the background fit never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut allowed = Bitset::new(data.len());
        (0..data.len() as u32)
            .step_by(3)
            .for_each(|s| allowed.insert(s));
        for g in [&grown, &fitted] {
            let (mut hits, mut filtered_hits, mut scanned_hits) = (0, 0, 0);
            for q in &queries {
                let exact_score = |slot: u32| g.exact(q, 1, std::iter::once(slot))[0].1;
                let want: Vec<u32> = g.brute_force(q, 10).iter().map(|r| r.0).collect();
                for (slot, d) in g.search(q, 10, DEFAULT_EF_SEARCH) {
                    assert_eq!(d.to_bits(), exact_score(slot).to_bits(), "slot {slot}");
                    hits += usize::from(want.contains(&slot));
                }
                let want: Vec<u32> = g
                    .exact(
                        q,
                        10,
                        (0..data.len() as u32).filter(|&s| allowed.contains(s)),
                    )
                    .iter()
                    .map(|r| r.0)
                    .collect();
                for (slot, d) in g.search_filtered(q, 10, DEFAULT_EF_SEARCH, Some(&allowed)) {
                    assert!(allowed.contains(slot));
                    assert_eq!(d.to_bits(), exact_score(slot).to_bits(), "slot {slot}");
                    filtered_hits += usize::from(want.contains(&slot));
                }
                // Re-ranking no more than topK leaves the codes alone to choose.
                let scanned = g.scan(q, 10, 10, allowed.iter());
                assert_eq!(scanned.len(), 10);
                for (slot, d) in scanned {
                    assert!(allowed.contains(slot));
                    assert_eq!(d.to_bits(), exact_score(slot).to_bits(), "slot {slot}");
                    scanned_hits += usize::from(want.contains(&slot));
                }
            }
            let total = (queries.len() * 10) as f64;
            assert!(
                hits as f64 / total >= 0.95,
                "recall@10 {}",
                hits as f64 / total
            );
            let r = filtered_hits as f64 / total;
            assert!(r >= 0.95, "filtered recall@10 {r}");
            let r = scanned_hits as f64 / total;
            assert!(r >= 0.95, "recall@10 of a scan on codes {r}");
        }
    }

    /// Recall@10 of scans at depth 10 of `allowed` for `queries`; every answer must be
    /// allowed and scored exactly.
    fn scan_recall(g: &Hnsw, queries: &[Vec<f32>], allowed: &[u32]) -> f64 {
        assert!(scans_bits(256, allowed.len(), 10));
        let mut hits = 0;
        for q in queries {
            let want = g.exact(q, 10, allowed.iter().copied());
            for (slot, d) in g.scan(q, 10, 10, allowed.iter().copied()) {
                assert!(allowed.contains(&slot), "slot {slot}");
                let exact = g.exact(q, 1, std::iter::once(slot))[0].1;
                assert_eq!(d.to_bits(), exact.to_bits(), "slot {slot}");
                hits += usize::from(want.iter().any(|w| w.0 == slot));
            }
        }
        hits as f64 / (queries.len() * 10) as f64
    }

    /// At 256 dimensions a scan of 1,000 or 3,000 rows keeping 10 estimates from bits
    /// first. For queries like the rows (here: rows it may not return) the best 80
    /// estimates hold the top 10. Queries unlike every row (from other clusters) are
    /// near none, and their estimates barely tell the rows apart: the scan must measure
    /// what their bounds cannot rule out (keeping the 80 nearest by Hamming distance
    /// alone, recall here was 0.34 over all rows and 0.48 over a third).
    #[test]
    fn a_scan_that_estimates_from_bits_first_keeps_recall() {
        let data = clustered(3000, 256, 7);
        let mut g = Hnsw::new(256, Metric::Cosine, HnswParams::default());
        g.set_quantized_walk(Some(100));
        for v in &data {
            g.insert(v);
        }
        let thirds: Vec<u32> = (0..data.len() as u32).step_by(3).collect();
        let like: Vec<Vec<f32>> = data.iter().skip(1).step_by(60).cloned().collect();
        let recall = scan_recall(&g, &like, &thirds);
        assert!(recall >= 0.95, "queries like the rows: recall@10 {recall}");
        let unlike = clustered(50, 256, 99);
        let all: Vec<u32> = (0..data.len() as u32).collect();
        for allowed in [&all, &thirds] {
            let recall = scan_recall(&g, &unlike, allowed);
            assert!(
                recall >= 0.95,
                "unlike, {} rows: recall@10 {recall}",
                allowed.len()
            );
        }
    }

    /// Copies of one vector have the same bit estimates, so the scan's first cut falls
    /// inside groups of equals. 400 vectors, 5 copies of each: a query for one of them
    /// gets its 5 copies first and 5 rows of other groups (far enough apart that the
    /// scan does not fall back to an exact one), as an exact scan would.
    #[test]
    fn a_scan_among_copies_returns_what_an_exact_scan_does() {
        let mut seed = 3u64;
        let distinct: Vec<Vec<f32>> = (0..400)
            .map(|_| {
                (0..256)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                    })
                    .collect()
            })
            .collect();
        let mut g = Hnsw::new(256, Metric::Cosine, HnswParams::default());
        g.set_quantized_walk(Some(1));
        for i in 0..2000 {
            g.insert(&distinct[i % 400]);
        }
        assert!(scans_bits(256, 2000, 10));
        for q in [0, 7, 399] {
            let got = g.scan(&distinct[q], 10, 10, 0..2000);
            let want = g.exact(&distinct[q], 10, 0..2000);
            assert_eq!(got.len(), 10, "query {q}: {got:?}");
            assert!(got[..5]
                .iter()
                .all(|(s, d)| *s as usize % 400 == q && d.abs() < 1e-6));
            assert!(
                got[9].1 - got[0].1 > CODES_BLUR,
                "no exact fallback: {got:?}"
            );
            let distances = |r: &[(u32, f64)]| r.iter().map(|x| x.1).collect::<Vec<_>>();
            assert_eq!(distances(&got), distances(&want), "query {q}");
        }
    }

    /// 6,000 rows that are the 97 cyclic shifts of one sequence (about 62 copies of
    /// each): codes cannot order rows this close, so a walk or a scan on them ends
    /// among near-copies, and must go on over the rows to reach the exact ones.
    #[test]
    fn a_walk_on_codes_finds_exact_copies_among_near_copies() {
        let row = |i: usize| -> Vec<f32> {
            (0..32)
                .map(|d| ((i * 31 + d) % 97) as f32 / 97.0 - 0.5)
                .collect()
        };
        let mut g = Hnsw::new(32, Metric::Cosine, HnswParams::default());
        g.set_quantized_walk(Some(1));
        for i in 0..6000 {
            g.insert(&row(i));
        }
        assert!(g.codes.get().is_some(), "inserts encode from the first row");
        for i in (0..97).map(|i| i * 7) {
            let found = g.search(&row(i), 5, DEFAULT_EF_SEARCH);
            assert!(found[0].1.abs() < 1e-6, "row {i}: {found:?}");
            let scanned = g.scan(&row(i), 5, 16, (0..6000).filter(|s| s % 2 == 0));
            assert!(scanned[0].1.abs() < 1e-6, "scan, row {i}: {scanned:?}");
        }
    }

    /// A change to the rows while codes are being fitted waits for the fit, then reaches
    /// the codes: a new row and a reused slot are found by their own vectors.
    #[test]
    fn rows_written_during_a_background_fit_reach_the_codes() {
        let data = clustered(2000, 32, 5);
        let mut g = Hnsw::new(32, Metric::Cosine, HnswParams::default());
        g.insert_batch(&data.iter().map(Vec::as_slice).collect::<Vec<_>>());
        g.set_quantized_walk(Some(1));
        assert!(
            g.walk_codes().is_none(),
            "a query starts the fit and walks the rows"
        );
        let new: Vec<f32> = (0..32).map(|i| if i == 3 { 1.0 } else { 0.0 }).collect();
        let slot = g.insert(&new);
        assert!(g.codes.get().is_some(), "the insert waited for the fit");
        assert_eq!(g.search(&new, 1, DEFAULT_EF_SEARCH)[0].0, slot);
        g.delete(7);
        let other: Vec<f32> = (0..32).map(|i| if i == 9 { -1.0 } else { 0.0 }).collect();
        let reused = g.insert(&other);
        assert_eq!(reused, 7, "the deleted slot is reused");
        assert_eq!(g.search(&other, 1, DEFAULT_EF_SEARCH)[0].0, 7);
    }

    #[test]
    fn dot_product_ranks_exactly_and_reports_negated_dot_products() {
        // Norms grow as points arrive, so the transform's radius grows several times.
        let data: Vec<Vec<f32>> = clustered(800, 16, 3)
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.iter().map(|x| x * (1.0 + i as f32 / 100.0)).collect())
            .collect();
        let mut g = Hnsw::new(16, Metric::DotProduct, HnswParams::default());
        for v in &data {
            g.insert(v);
        }
        let q = &data[5];
        let exact = g.brute_force(q, 5);
        let mut by_dot: Vec<(u32, f64)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, -kernels::dot_f64(q, v)))
            .collect();
        by_dot.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(exact, by_dot[..5]);
        let found = g.search(q, 5, DEFAULT_EF_SEARCH);
        assert_eq!(found, by_dot[..5]);
    }

    /// Found by the `vectorize_files` fuzz target: a segment whose levels disagree with
    /// its links or its entry point made the first insert index past a node's levels.
    #[test]
    fn parts_whose_levels_disagree_are_refused() {
        let mut g = Hnsw::new(4, Metric::Cosine, HnswParams::default());
        for v in clustered(300, 4, 7) {
            g.insert(&v);
        }
        let rebuild = |edit: &dyn Fn(&mut GraphState)| {
            let (mut state, vectors, inv_norms, layer0) = g.state();
            edit(&mut state);
            Hnsw::from_parts(state, vectors.clone(), inv_norms.to_vec(), layer0.to_vec())
        };
        assert!(rebuild(&|_| {}).is_some());
        assert!(rebuild(&|s| s.max_level += 1).is_none());
        let low = g.upper.iter().position(Vec::is_empty).unwrap() as u32;
        assert!(rebuild(&|s| {
            let top = s.upper.iter().position(|l| !l.is_empty()).unwrap();
            s.upper[top][0].push(low);
        })
        .is_none());
    }

    #[test]
    fn batch_insert_matches_sequential_quality() {
        let data = clustered(3000, 64, 42);
        let mut g = Hnsw::new(64, Metric::Cosine, HnswParams::default());
        let refs: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
        assert_eq!(g.insert_batch(&refs), (0..3000).collect::<Vec<u32>>());
        let queries = clustered(100, 64, 99);
        let hits: usize = queries
            .iter()
            .map(|q| {
                let want: Vec<u32> = g.brute_force(q, 10).into_iter().map(|r| r.0).collect();
                g.search(q, 10, DEFAULT_EF_SEARCH)
                    .iter()
                    .filter(|r| want.contains(&r.0))
                    .count()
            })
            .sum();
        assert!(
            hits as f64 / 1000.0 >= 0.95,
            "recall {}",
            hits as f64 / 1000.0
        );
    }

    #[test]
    fn deleted_vectors_are_never_returned_and_their_slots_are_reused() {
        let data = clustered(1500, 32, 7);
        let mut g = Hnsw::new(32, Metric::Euclidean, HnswParams::default());
        for v in &data {
            g.insert(v);
        }
        for s in (0..1500).step_by(3) {
            g.delete(s);
        }
        assert_eq!(g.len(), 1000);
        let mut hits = 0;
        for q in data.iter().step_by(15) {
            let want: Vec<u32> = g.brute_force(q, 10).into_iter().map(|r| r.0).collect();
            let got = g.search(q, 10, DEFAULT_EF_SEARCH);
            assert!(got.iter().all(|r| r.0 % 3 != 0), "a deleted slot came back");
            hits += got.iter().filter(|r| want.contains(&r.0)).count();
        }
        assert!(
            hits as f64 / 1000.0 >= 0.95,
            "recall after deletes {}",
            hits as f64 / 1000.0
        );
        // Re-inserting fills the holes instead of growing the graph.
        let fresh = clustered(500, 32, 8);
        for v in &fresh {
            let slot = g.insert(v);
            assert!(slot < 1500 && slot.is_multiple_of(3));
        }
        assert_eq!((g.len(), g.slots()), (1500, 1500));
        let found = g.search(&fresh[10], 1, DEFAULT_EF_SEARCH);
        assert_eq!(g.vector(found[0].0), fresh[10].as_slice());
    }

    /// Found by the model test: nine identical vectors (which a strict pruning test cut
    /// off from the graph), then the entry point's slot reused (whose link search found
    /// only itself).
    #[test]
    fn duplicates_and_a_reused_entry_point_stay_reachable() {
        let mut g = Hnsw::new(4, Metric::Euclidean, HnswParams::default());
        let z: &[f32] = &[0.0; 4];
        g.insert_batch(&[z, z, z, z, z, z, z, z, z, &[-3.0, 3.0, 0.0, -2.0]]);
        g.delete(9);
        g.delete(3);
        g.insert_batch(&[
            &[0.0, -1.0, 0.0, -3.0],
            &[2.0, 2.0, -2.0, 0.0],
            &[-2.0, -3.0, 0.0, 2.0],
        ]);
        let q = [3.0, 1.0, 2.0, 0.0];
        let dists = |r: Vec<(u32, f64)>| r.into_iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(dists(g.search(&q, 11, 128)), dists(g.brute_force(&q, 11)));
    }

    /// Found by the crash test: 97 distinct vectors, each stored ~25 times, cosine,
    /// written 8 at a time with deletes in between. Every stored vector must find a
    /// copy of itself (score 1) through the graph.
    #[test]
    fn groups_of_identical_vectors_stay_reachable() {
        let row = |i: u64| -> Vec<f32> {
            (0..32)
                .map(|d| ((i * 31 + d) % 97) as f32 / 97.0 - 0.5)
                .collect()
        };
        let mut g = Hnsw::new(32, Metric::Cosine, HnswParams::default());
        let mut live = Vec::new();
        for b in 1..320u64 {
            let batch: Vec<Vec<f32>> = (b * 8..b * 8 + 8).map(row).collect();
            live.extend(g.insert_batch(&batch.iter().map(|v| v.as_slice()).collect::<Vec<_>>()));
            if b % 3 == 2 {
                g.delete(live.remove(live.len() - 16));
            }
        }
        for &slot in live.iter().step_by(5) {
            let q = g.vector(slot).to_vec();
            let found = g.search(&q, 5, DEFAULT_EF_SEARCH);
            assert!(
                found.iter().all(|r| r.1.abs() < 1e-5),
                "slot {slot}: {found:?}"
            );
        }
    }

    #[test]
    fn results_are_sorted_and_exact_matches_come_first() {
        let data = clustered(500, 16, 1);
        let mut g = Hnsw::new(16, Metric::Euclidean, HnswParams::default());
        for v in &data {
            g.insert(v);
        }
        let r = g.search(&data[123], 5, 50);
        assert_eq!(r[0], (123, 0.0));
        assert!(r.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(Hnsw::new(4, Metric::Cosine, HnswParams::default())
            .search(&[1.0; 4], 3, 10)
            .is_empty());
    }
}
