//! `tristore bench vectors`: builds a Vectorize index on a big-ann dataset (or a
//! synthetic one) through the public API and prints build rate, memory, open time,
//! recall / speed per ef, and filtered queries.

pub mod load;

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use tristore::vectorize::dataset::{
    bytes_written, cpu_seconds, measure, throughput, Dataset, QueryStats,
};
use tristore::vectorize::{
    IndexConfig, MetadataIndexType, Metric, Op, QueryOptions, VectorizeIndex, VectorizeVector,
};
use tristore::{Store, StoreOptions};

#[derive(Args)]
pub struct VectorBench {
    /// A big-ann dataset directory (base.fbin, query.fbin, gt.bin). Without it a
    /// synthetic clustered cosine dataset is generated.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Synthetic: base vectors.
    #[arg(long, default_value_t = 100_000)]
    vectors: usize,
    /// Synthetic: dimensions.
    #[arg(long, default_value_t = 768)]
    dims: usize,
    /// Synthetic: queries.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Synthetic: clusters (fewer, larger clusters make neighbours harder to find).
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Synthetic: seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the dataset here (for the peers' script) before benchmarking.
    #[arg(long)]
    save_dataset: Option<PathBuf>,
    /// Search widths to sweep.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    efs: Vec<usize>,
    /// Neighbours per query scored.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Query threads for the scaling measurement (queries per second on 1 thread, then
    /// on each count up to this, at ef 64).
    #[arg(long, default_value_t = 2)]
    query_threads: usize,
    /// Vectors per upsert call (the HTTP API allows 5,000).
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Bytes of vectors per vector file (default: the index's default). A size larger
    /// than the index keeps every row in the segment, which then rewrites them all at
    /// each checkpoint, as segments did before vector files.
    #[arg(long)]
    vector_file_bytes: Option<u64>,
    /// Keep the index's data directory here instead of a temporary one. If it already
    /// holds the index this dataset built, the build is skipped and only the queries,
    /// the reopening and the memory are measured (for comparing query paths quickly).
    #[arg(long)]
    index_dir: Option<PathBuf>,
    /// Skip the filtered queries (computing their exact answers takes most of a run
    /// on a reused index).
    #[arg(long)]
    no_filtered: bool,
    /// Walk the graph on the f32 vectors, not on their byte codes (see
    /// `VectorizeOptions::quantized_walk_from`).
    #[arg(long)]
    walk_on_vectors: bool,
}

fn progress(what: &str, done: usize, total: usize, since: Instant) {
    eprintln!(
        "  {what}: {done}/{total} ({:.0} s)",
        since.elapsed().as_secs_f64()
    );
}

pub fn vectors(args: VectorBench) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let data = match &args.dataset {
        Some(dir) => {
            eprintln!("loading {}", dir.display());
            Dataset::load(dir)?
        }
        None => {
            eprintln!(
                "generating {} x {} clustered vectors ({} clusters) and {} queries with exact ground truth",
                args.vectors, args.dims, args.clusters, args.queries
            );
            Dataset::synthetic(
                args.vectors,
                args.dims,
                args.queries,
                args.clusters,
                args.k.max(10),
                args.seed,
            )
        }
    };
    if let Some(dir) = &args.save_dataset {
        data.save(dir)?;
        eprintln!("dataset written to {}", dir.display());
    }
    let (n, dim) = (data.len(), data.dim);
    println!(
        "dataset: {n} x {dim}, {} queries, k = {}, {} threads",
        data.truth.len(),
        args.k,
        rayon::current_num_threads()
    );

    let temporary;
    let work = match &args.index_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let mut options = StoreOptions::default();
    if let Some(bytes) = args.vector_file_bytes {
        options.vectorize_options.vector_file_bytes = bytes;
    }
    if args.walk_on_vectors {
        options.vectorize_options.quantized_walk_from = None;
    }
    let store = Store::open_with(&work, options.clone())?;
    let built = match store.vectorize().index("bench") {
        Ok(index) if index.describe().vector_count == n => {
            println!(
                "build: skipped, reusing the index in {} (it holds {n} vectors)",
                work.display()
            );
            index
        }
        _ => build(&store, &data, &args)?,
    };
    let index = built;
    let to_rows = |m: tristore::vectorize::VectorizeMatches| -> Vec<u32> {
        m.matches
            .iter()
            .map(|x| x.id.parse().unwrap_or(u32::MAX))
            .collect()
    };
    let top = QueryOptions {
        top_k: args.k,
        ..QueryOptions::default()
    };
    println!(
        "{:>9} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "ef", "recall", "q/s", "q/CPU-s", "p50 us", "p99 us"
    );
    let row = |label: String, s: QueryStats| {
        println!(
            "{label:>9} {:>8.4} {:>9.0} {:>9.0} {:>9.1} {:>9.1}",
            s.recall, s.qps, s.per_cpu_second, s.p50_us, s.p99_us
        );
    };
    for &ef in &args.efs {
        let s = measure(&data, args.k, |q| {
            to_rows(index.query_with_ef(q, &top, ef).expect("query"))
        });
        row(ef.to_string(), s);
    }

    // Scaling: the same queries on 1..=query_threads threads at once.
    let one = throughput(&data, 1, |q| {
        to_rows(index.query_with_ef(q, &top, 64).expect("query"))
    });
    for threads in 2..=args.query_threads {
        let many = throughput(&data, threads, |q| {
            to_rows(index.query_with_ef(q, &top, 64).expect("query"))
        });
        println!(
            "threads: ef 64 on {threads} threads {many:.0} q/s, 1 thread {one:.0} q/s: {:.2}x",
            many / one
        );
    }

    // Filtered: 1%, 10% and 50% of the rows (1, 10, 50 buckets), truth by exact scan of
    // the matches.
    let filtered_runs = if args.no_filtered { 0 } else { 3 };
    for (label, filter, keep) in [
        (
            "1%",
            json!({"bucket": 7}),
            (|i: usize| i % 100 == 7) as fn(usize) -> bool,
        ),
        ("10%", json!({"bucket": {"$lt": 10}}), |i: usize| {
            i % 100 < 10
        }),
        ("50%", json!({"bucket": {"$lt": 50}}), |i: usize| {
            i % 100 < 50
        }),
    ]
    .into_iter()
    .take(filtered_runs)
    {
        let members: Vec<u32> = (0..n as u32).filter(|&i| keep(i as usize)).collect();
        let truth = data
            .query_rows()
            .map(|q| {
                let mut s: Vec<(f32, u32)> = members
                    .iter()
                    .map(|&i| (-tristore::vectorize::kernels::dot(q, data.row(i)), i))
                    .collect();
                s.sort_by(|a, b| a.0.total_cmp(&b.0));
                s.into_iter().take(args.k).map(|x| x.1).collect()
            })
            .collect();
        let filtered = Dataset {
            dim,
            base: Vec::new(),
            queries: data.queries.clone(),
            truth,
        };
        let opts = QueryOptions {
            filter: Some(filter),
            ..top.clone()
        };
        // Every ef, like the unfiltered rows: the target compares rates at equal recall.
        for &ef in &args.efs {
            let s = measure(&filtered, args.k, |q| {
                to_rows(index.query_with_ef(q, &opts, ef).expect("query"))
            });
            row(format!("f{label} {ef}"), s);
        }
    }

    // Open: write a segment, drop everything, reopen and answer one query.
    index.checkpoint()?;
    drop(index);
    drop(store);
    let t = Instant::now();
    let store = Store::open_with(&work, options)?;
    let index = store.vectorize().index("bench")?;
    let opened = t.elapsed().as_secs_f64();
    index.query(data.query_rows().next().unwrap_or(&[]), &top)?;
    println!(
        "open: {:.3} s to map the segment and load ids and metadata, {:.3} s to the first answer (page cache warm)",
        opened,
        t.elapsed().as_secs_f64()
    );
    let memory = index.memory_bytes();
    let raw = n * dim * 4;
    let links = n * (2 * 16 + 1) * 4;
    println!(
        "memory after reopening: {:.0} bytes per vector (vectors, mapped, + byte codes if walked on + graph + ids and metadata); raw f32 {:.0} + layer-0 links {:.0}; ratio {:.3}",
        memory as f64 / n as f64,
        (raw / n) as f64,
        (links / n) as f64,
        memory as f64 / (raw + links) as f64
    );

    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Builds the index "bench" on `data` through `upsert` (replacing one left by an earlier
/// run) and prints the build's rate and the bytes it wrote.
fn build(
    store: &Store,
    data: &Dataset,
    args: &VectorBench,
) -> Result<VectorizeIndex, Box<dyn std::error::Error>> {
    let (n, dim) = (data.len(), data.dim);
    if store.vectorize().index("bench").is_ok() {
        store.vectorize().delete("bench")?;
    }
    store.vectorize().create(
        "bench",
        "",
        IndexConfig {
            dimensions: dim,
            metric: Metric::Cosine,
        },
    )?;
    let index = store.vectorize().index("bench")?;
    index.create_metadata_index("bucket", MetadataIndexType::Number)?;

    // Every vector carries bucket = row % 100, for the filtered queries.
    let (wall, cpu, written) = (Instant::now(), cpu_seconds(), bytes_written());
    for start in (0..n).step_by(args.batch) {
        let end = (start + args.batch).min(n);
        let batch: Vec<VectorizeVector> = (start..end)
            .map(|i| {
                VectorizeVector::new(i.to_string(), data.row(i as u32).to_vec())
                    .metadata(json!({"bucket": i % 100}))
            })
            .collect();
        index.write_vectors(Op::Upsert, &batch, args.batch)?;
        if (end / args.batch).is_multiple_of(4) || end == n {
            progress("build", end, n, wall);
        }
    }
    let (build_wall, build_cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "build: {:.1} s wall, {:.1} CPU s, {:.0} vectors per CPU-second (through upsert: WAL fsync and checkpoints included)",
        build_wall,
        build_cpu,
        n as f64 / build_cpu
    );
    if let (Some(before), Some(after)) = (written, bytes_written()) {
        let rows = (n * dim * 4) as f64;
        println!(
            "build wrote {:.2} GB: {:.2}x the vectors' bytes (log, segments and vector files)",
            (after - before) as f64 / 1e9,
            (after - before) as f64 / rows
        );
    }
    Ok(index)
}
