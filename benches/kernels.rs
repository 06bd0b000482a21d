//! Distance kernels at Vectorize's dimensions: every implementation this machine can run,
//! side by side (scalar is the portable reference).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tristore::vectorize::kernels;

fn kernels_bench(c: &mut Criterion) {
    for dim in [768usize, 1536] {
        let a: Vec<f32> = (0..dim)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..dim)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut group = c.benchmark_group(format!("kernels_{dim}"));
        group.throughput(Throughput::Bytes((dim * 4 * 2) as u64));
        for (isa, dot, l2) in kernels::available() {
            group.bench_function(BenchmarkId::new("dot", format!("{isa:?}")), |bench| {
                bench.iter(|| dot(std::hint::black_box(&a), std::hint::black_box(&b)))
            });
            group.bench_function(
                BenchmarkId::new("l2_squared", format!("{isa:?}")),
                |bench| bench.iter(|| l2(std::hint::black_box(&a), std::hint::black_box(&b))),
            );
        }
        group.finish();
    }
}

criterion_group!(kernels_group, kernels_bench);
criterion_main!(kernels_group);
