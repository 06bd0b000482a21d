//! tristore's HNSW graph against hnsw_rs on the same data in the same run: build rate
//! per CPU-second, then recall@10, queries per second and latency at each ef.
//!
//! `TRISTORE_BENCH_DATASET=DIR cargo bench --bench vectors_peers` runs on a big-ann
//! dataset directory (write one with `tristore bench vectors --save-dataset DIR`);
//! without it, on a synthetic 20k x 768 clustered set. Both graphs use M = 16 and
//! efConstruction = 200 and compare by inner product on unit vectors (= cosine).

use std::time::Instant;

use hnsw_rs::prelude::{DistDot, Hnsw as PeerHnsw};
use tristore::vectorize::dataset::{cpu_seconds, measure, Dataset};
use tristore::vectorize::hnsw::{Hnsw, HnswParams, Metric};

const EFS: [usize; 5] = [16, 32, 64, 128, 256];

fn main() {
    let data = match std::env::var_os("TRISTORE_BENCH_DATASET") {
        Some(dir) => Dataset::load(dir.as_ref()).expect("dataset"),
        None => Dataset::synthetic(20_000, 768, 300, 100, 10, 42),
    };
    let n = data.len();
    println!(
        "{n} x {}, {} queries, {} threads",
        data.dim,
        data.truth.len(),
        rayon::current_num_threads()
    );
    let rows: Vec<&[f32]> = (0..n as u32).map(|i| data.row(i)).collect();

    let (t, cpu) = (Instant::now(), cpu_seconds());
    let mut ours = Hnsw::new(data.dim, Metric::Cosine, HnswParams::default());
    ours.insert_batch(&rows);
    report_build("tristore", n, t, cpu);

    let (t, cpu) = (Instant::now(), cpu_seconds());
    let peer: PeerHnsw<f32, DistDot> = PeerHnsw::new(16, n, 16, 200, DistDot {});
    let with_ids: Vec<(&[f32], usize)> = rows.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    peer.parallel_insert_slice(&with_ids);
    report_build("hnsw_rs", n, t, cpu);

    println!(
        "{:>10} {:>5} {:>8} {:>9} {:>9} {:>9}",
        "library", "ef", "recall", "q/s", "p50 us", "p99 us"
    );
    for ef in EFS {
        let s = measure(&data, 10, |q| {
            ours.search(q, 10, ef).into_iter().map(|r| r.0).collect()
        });
        println!(
            "{:>10} {ef:>5} {:>8.4} {:>9.0} {:>9.1} {:>9.1}",
            "tristore", s.recall, s.qps, s.p50_us, s.p99_us
        );
        let s = measure(&data, 10, |q| {
            peer.search(q, 10, ef)
                .into_iter()
                .map(|r| r.d_id as u32)
                .collect()
        });
        println!(
            "{:>10} {ef:>5} {:>8.4} {:>9.0} {:>9.1} {:>9.1}",
            "hnsw_rs", s.recall, s.qps, s.p50_us, s.p99_us
        );
    }
}

fn report_build(name: &str, n: usize, wall: Instant, cpu: f64) {
    let cpu = cpu_seconds() - cpu;
    println!(
        "{name}: build {:.1} s wall, {:.1} CPU s, {:.0} vectors per CPU-second",
        wall.elapsed().as_secs_f64(),
        cpu,
        n as f64 / cpu
    );
}
