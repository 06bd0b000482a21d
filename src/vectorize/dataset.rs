//! Benchmark datasets in the big-ann format, synthetic clustered datasets with exact
//! ground truth, and the measurements `tristore bench vectors` and the peer bench share.
//!
//! A dataset directory holds (all little-endian):
//! `base.fbin` and `query.fbin`: u32 rows, u32 dim, rows × dim f32;
//! `gt.bin`: u32 queries, u32 k, queries × k i32 row numbers best first, then as many
//! f32 scores.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use super::kernels;

/// Base vectors, queries and each query's true nearest neighbours.
pub struct Dataset {
    /// Dimensions.
    pub dim: usize,
    /// Base vectors, row-major.
    pub base: Vec<f32>,
    /// Query vectors, row-major.
    pub queries: Vec<f32>,
    /// Per query: the row numbers of its nearest base vectors, best first.
    pub truth: Vec<Vec<u32>>,
}

fn read_u32s(bytes: &[u8], at: usize, what: &str) -> std::io::Result<(usize, usize)> {
    let word = |i: usize| {
        bytes
            .get(at + i * 4..at + i * 4 + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    };
    word(0).zip(word(1)).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what}: shorter than its 8-byte header"),
        )
    })
}

/// Reads an `.fbin` file: (dimensions, rows × dim floats).
pub fn read_fbin(path: &Path) -> std::io::Result<(usize, Vec<f32>)> {
    let bytes = std::fs::read(path)?;
    let (rows, dim) = read_u32s(&bytes, 0, &path.display().to_string())?;
    let want = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(8));
    if want != Some(bytes.len()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: header says {rows} x {dim} floats, the file has {} bytes",
                path.display(),
                bytes.len()
            ),
        ));
    }
    let floats = bytes[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok((dim, floats))
}

fn write_fbin(path: &Path, dim: usize, rows: &[f32]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&((rows.len() / dim) as u32).to_le_bytes())?;
    out.write_all(&(dim as u32).to_le_bytes())?;
    for x in rows {
        out.write_all(&x.to_le_bytes())?;
    }
    out.flush()
}

impl Dataset {
    /// Loads `base.fbin`, `query.fbin` and `gt.bin` from `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Dataset> {
        let (dim, base) = read_fbin(&dir.join("base.fbin"))?;
        let (qdim, queries) = read_fbin(&dir.join("query.fbin"))?;
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        if qdim != dim {
            return Err(bad(format!(
                "query.fbin has {qdim} dimensions, base.fbin {dim}"
            )));
        }
        let gt_path = dir.join("gt.bin");
        let gt = std::fs::read(&gt_path)?;
        let (nq, k) = read_u32s(&gt, 0, &gt_path.display().to_string())?;
        if nq != queries.len() / dim || gt.len() < 8 + nq * k * 4 {
            return Err(bad(format!(
                "{}: {nq} x {k} ids do not match {} queries",
                gt_path.display(),
                queries.len() / dim
            )));
        }
        let rows = base.len() / dim;
        let ids: Vec<u32> = gt[8..8 + nq * k * 4]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as u32)
            .collect();
        if ids.iter().any(|&i| i as usize >= rows) {
            return Err(bad(format!(
                "{}: an id is outside base.fbin's {rows} rows",
                gt_path.display()
            )));
        }
        Ok(Dataset {
            dim,
            base,
            queries,
            truth: ids.chunks(k.max(1)).map(<[u32]>::to_vec).collect(),
        })
    }

    /// Writes the dataset to `dir` (created if needed) in the format [`Dataset::load`]
    /// reads, so that the peers' script can run on the same data. Scores in `gt.bin` are
    /// cosine similarities.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_fbin(&dir.join("base.fbin"), self.dim, &self.base)?;
        write_fbin(&dir.join("query.fbin"), self.dim, &self.queries)?;
        let k = self.truth.first().map_or(0, Vec::len);
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("gt.bin"))?);
        out.write_all(&(self.truth.len() as u32).to_le_bytes())?;
        out.write_all(&(k as u32).to_le_bytes())?;
        for row in &self.truth {
            row.iter()
                .try_for_each(|&i| out.write_all(&(i as i32).to_le_bytes()))?;
        }
        for (q, row) in self.queries.chunks_exact(self.dim).zip(&self.truth) {
            for &i in row {
                out.write_all(&kernels::dot(q, self.row(i)).to_le_bytes())?;
            }
        }
        out.flush()
    }

    /// Base rows.
    pub fn len(&self) -> usize {
        self.base.len() / self.dim
    }

    /// Whether there are no base rows.
    pub fn is_empty(&self) -> bool {
        self.base.is_empty()
    }

    /// Base row `i`.
    pub fn row(&self, i: u32) -> &[f32] {
        &self.base[i as usize * self.dim..(i as usize + 1) * self.dim]
    }

    /// Query rows.
    pub fn query_rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.queries.chunks_exact(self.dim)
    }

    /// `n` unit vectors around `clusters` centres, like sentence embeddings: each centre
    /// has its own spread along a few random directions, so neighbourhoods are
    /// anisotropic and the nearest neighbours are clearly nearer than the average point.
    /// Queries come from the same distribution; ground truth is exact (cosine, `k` per
    /// query), computed in parallel.
    pub fn synthetic(
        n: usize,
        dim: usize,
        queries: usize,
        clusters: usize,
        k: usize,
        seed: u64,
    ) -> Dataset {
        let mut rng = Gauss::new(seed);
        let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vector(dim, 1.0)).collect();
        // Per cluster: 4 principal directions with their own scales, plus isotropic noise.
        let axes: Vec<Vec<(Vec<f32>, f32)>> = (0..clusters)
            .map(|_| {
                (0..4)
                    .map(|j| (rng.vector(dim, 1.0), 0.6 / (j + 1) as f32))
                    .collect()
            })
            .collect();
        let point = |rng: &mut Gauss| {
            let c = rng.below(clusters);
            let mut v: Vec<f32> = centres[c]
                .iter()
                .zip(rng.vector(dim, 0.9))
                .map(|(a, b)| a + b)
                .collect();
            for (axis, scale) in &axes[c] {
                let t = rng.next() * scale;
                v.iter_mut().zip(axis).for_each(|(x, a)| *x += t * a);
            }
            let norm = kernels::dot(&v, &v).sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        };
        let base: Vec<f32> = (0..n).flat_map(|_| point(&mut rng)).collect();
        let queries: Vec<f32> = (0..queries).flat_map(|_| point(&mut rng)).collect();
        let mut d = Dataset {
            dim,
            base,
            queries,
            truth: Vec::new(),
        };
        d.truth = d
            .queries
            .par_chunks_exact(dim)
            .map(|q| {
                let mut scored: Vec<(f32, u32)> = (0..n as u32)
                    .map(|i| (-kernels::dot(q, d.row(i)), i))
                    .collect();
                let k = k.min(scored.len());
                if k > 0 {
                    scored.select_nth_unstable_by(k - 1, |a, b| {
                        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                    });
                }
                scored.truncate(k);
                scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                scored.into_iter().map(|s| s.1).collect()
            })
            .collect();
        d
    }
}

/// A seeded normal generator (xorshift64* and Box-Muller): synthetic datasets need no
/// dependency and are the same on every machine.
struct Gauss(u64);

impl Gauss {
    fn new(seed: u64) -> Self {
        Gauss(seed | 1)
    }

    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }

    fn vector(&mut self, dim: usize, scale: f32) -> Vec<f32> {
        let s = scale / (dim as f32).sqrt();
        (0..dim).map(|_| self.next() * s).collect()
    }
}

/// Recall and speed of one search setting.
#[derive(Debug, Clone, Copy)]
pub struct QueryStats {
    /// Fraction of the true k nearest found.
    pub recall: f64,
    /// Queries per second, one thread, back to back.
    pub qps: f64,
    /// Queries per CPU-second of the querying thread: less disturbed than `qps` when
    /// other work shares the machine (it still pays for shared caches and memory).
    pub per_cpu_second: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
}

/// Runs every query through `search` (returning base row numbers, best first) on this
/// thread, and scores the answers against the ground truth at `k`.
pub fn measure(
    dataset: &Dataset,
    k: usize,
    mut search: impl FnMut(&[f32]) -> Vec<u32>,
) -> QueryStats {
    let mut latencies = Vec::with_capacity(dataset.truth.len());
    let mut hits = 0usize;
    let (start, cpu) = (Instant::now(), thread_cpu_seconds());
    for (q, truth) in dataset.query_rows().zip(&dataset.truth) {
        let t = Instant::now();
        let got = search(q);
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        let want = &truth[..k.min(truth.len())];
        hits += got.iter().take(k).filter(|i| want.contains(i)).count();
    }
    let (total, cpu) = (start.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu);
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    QueryStats {
        recall: hits as f64 / (dataset.truth.len() * k).max(1) as f64,
        qps: dataset.truth.len() as f64 / total,
        per_cpu_second: dataset.truth.len() as f64 / cpu.max(1e-9),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    }
}

/// Queries per second with `threads` threads each running every query through
/// `search` at once: how query throughput scales with cores.
pub fn throughput(
    dataset: &Dataset,
    threads: usize,
    search: impl Fn(&[f32]) -> Vec<u32> + Sync,
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for q in dataset.query_rows() {
                    std::hint::black_box(search(q));
                }
            });
        }
    });
    (threads * dataset.truth.len()) as f64 / start.elapsed().as_secs_f64()
}

/// CPU seconds this process has used (user + system), for rates per CPU-second.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Bytes this process has passed to `write` and its kin so far (Linux's
/// `/proc/self/io` `wchar`), or `None` where that is not available.
pub fn bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|n| n.trim().parse().ok())
}

/// CPU seconds the calling thread has used.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime writes into the struct we pass and reads nothing else.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_sets_round_trip_through_the_file_format() {
        let d = Dataset::synthetic(300, 16, 5, 4, 10, 7);
        assert_eq!((d.len(), d.truth.len(), d.truth[0].len()), (300, 5, 10));
        // Truth is best first: the scores descend.
        let q = d.query_rows().next().unwrap();
        let scores: Vec<f32> = d.truth[0]
            .iter()
            .map(|&i| kernels::dot(q, d.row(i)))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]));
        let dir = tempfile::tempdir().unwrap();
        d.save(dir.path()).unwrap();
        let back = Dataset::load(dir.path()).unwrap();
        assert_eq!(
            (back.dim, &back.base, &back.queries, &back.truth),
            (d.dim, &d.base, &d.queries, &d.truth)
        );
        // A perfect search has recall 1.
        let mut rows = d.truth.iter();
        assert_eq!(
            measure(&d, 10, |_| rows.next().unwrap().clone()).recall,
            1.0
        );
        std::fs::write(dir.path().join("base.fbin"), [1, 0, 0, 0, 4, 0, 0, 0]).unwrap();
        let e = Dataset::load(dir.path())
            .err()
            .expect("a short file is refused");
        assert!(e.to_string().contains("header says 1 x 4"), "{e}");
    }
}
