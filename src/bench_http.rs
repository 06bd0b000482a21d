//! `tristore bench http`: requests per second and latency through the emulator's HTTP
//! surface, each operation on its own with N concurrent clients, then all of them mixed
//! (with every answer's body and every acknowledged write checked). With `--miniflare URL` the same
//! D1 and R2 operations also run against Miniflare (the Worker in
//! `bench/miniflare_http.mjs`), in the same run.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use crate::bench::load::{self, Emulator, MiniflareWorker, Op, Outcome, Target};
use clap::Args;
use tristore::server::{start, ServerOptions};
use tristore::Store;

#[derive(Args)]
pub struct HttpBench {
    /// Concurrent clients (each a thread with keep-alive connections).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per operation.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Vectors in the bench index (768 dimensions, cosine).
    #[arg(long, default_value_t = 20_000)]
    vectors: usize,
    /// A running `bench/miniflare_http.mjs` (e.g. http://127.0.0.1:8787) to compare with.
    #[arg(long)]
    miniflare: Option<String>,
}

fn row(target: &str, op: Op, clients: usize, o: &Outcome) {
    println!(
        "| {target} | {} | {clients} | {} | {:.0} | {:.2} | {:.2} | {} |",
        op.name(),
        o.ok,
        o.per_second(),
        o.quantile_ms(0.5),
        o.quantile_ms(0.99),
        o.errors
    );
    for e in &o.first_errors {
        eprintln!("  error: {e}");
    }
}

pub fn http(args: HttpBench) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    let options = ServerOptions {
        port: 0,
        s3_port: 0,
        ..Default::default()
    };
    let credentials = options.s3_credentials.clone();
    let server = start(store.clone(), options)?;
    eprintln!(
        "provisioning: 10,000 rows, {} vectors, 128 objects",
        args.vectors
    );
    let tristore = Emulator::prepare(
        &store,
        server.addr,
        server.s3_addr,
        credentials,
        args.vectors,
    )?;
    let miniflare = match &args.miniflare {
        Some(url) => {
            let authority = url.trim_start_matches("http://").trim_end_matches('/');
            let addr = authority
                .to_socket_addrs()?
                .next()
                .ok_or("--miniflare must be http://host:port")?;
            Some(MiniflareWorker::prepare(addr)?)
        }
        None => None,
    };
    let duration = Duration::from_secs_f64(args.seconds);
    println!("| server | operation | clients | requests | req/s | p50 ms | p99 ms | errors |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for op in Op::ALL {
        // Interleave the servers per operation, so drift in machine load hits both.
        let mut targets: Vec<&dyn Target> = vec![&tristore];
        if let Some(m) = &miniflare {
            targets.push(m);
        }
        for target in targets {
            if target.request(op, 0, 0).is_none() {
                continue;
            }
            eprintln!("running {} on {}", op.name(), target.name());
            let outcome = load::run(target, &[op], args.clients, duration, &|_, _| {});
            row(target.name(), op, args.clients, &outcome);
        }
    }
    eprintln!("running the mixed load on tristore");
    let report = load::mixed(&store, &tristore, args.clients, duration)?;
    let o = &report.outcome;
    println!(
        "| tristore | mixed (all of the above) | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
        args.clients,
        o.ok,
        o.per_second(),
        o.quantile_ms(0.5),
        o.quantile_ms(0.99),
        o.errors
    );
    let (inserts, puts, upserts) = report.writes();
    println!(
        "\nmixed: {inserts} inserts, {puts} puts and {upserts} upserts acknowledged, {} lost \
         afterwards; {} answers checked, {} wrong",
        report.lost.len(),
        report.reads_checked,
        report.wrong_answers
    );
    for problem in report.first_wrong.iter().chain(report.lost.iter().take(5)) {
        eprintln!("  {problem}");
    }
    server.shutdown()?;
    if !report.lost.is_empty() || report.wrong_answers > 0 || o.errors > 0 {
        return Err("the mixed load lost acknowledged writes, had errors or wrong answers".into());
    }
    Ok(())
}
