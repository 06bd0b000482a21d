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
    /// Instead, measure what metering costs: D1 point queries and R2 4 KiB GETs on this
    /// server and on a second one over the same store with metering off
    /// (`serve --no-metering`), in rounds that alternate which goes first.
    #[arg(long, conflicts_with = "tls")]
    unmetered: bool,
    /// Instead, measure what TLS costs: the same two operations on this server and on a
    /// second one over the same store serving HTTPS (a self-signed certificate), in
    /// alternating rounds.
    #[arg(long)]
    tls: bool,
}

/// Rounds of a two-server comparison; each alternates which server goes first, since
/// the second run of a pair profits from the first's warm caches.
const PAIRED_ROUNDS: usize = 4;

/// Prints each round of runs of the two cheapest operations against `with` and
/// `without` (a server with and without `what`), and the median ratio of their rates.
fn paired_cost(
    what: &str,
    with: &Emulator,
    without: &Emulator,
    clients: usize,
    duration: Duration,
) {
    for op in [Op::D1PointQuery, Op::S3Get4K] {
        let mut ratios = Vec::new();
        for round in 0..PAIRED_ROUNDS {
            let mut pair: [&Emulator; 2] = [with, without];
            if round % 2 == 1 {
                pair.reverse();
            }
            let rates: Vec<f64> = pair
                .iter()
                .map(|target| {
                    let outcome = load::run(*target, &[op], clients, duration, &|_, _| {});
                    row(target.name(), op, clients, &outcome);
                    outcome.per_second()
                })
                .collect();
            let (on, off) = if round % 2 == 1 {
                (rates[1], rates[0])
            } else {
                (rates[0], rates[1])
            };
            ratios.push(on / off);
        }
        ratios.sort_by(f64::total_cmp);
        let median = (ratios[1] + ratios[2]) / 2.0;
        println!(
            "\n{}: request rate with / without {what}, median of {PAIRED_ROUNDS} rounds: {median:.3} ({:+.1}%)\n",
            op.name(),
            (median - 1.0) * 100.0
        );
    }
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
    let second_options = options.clone();
    let server = start(store.clone(), options)?;
    eprintln!(
        "provisioning: 10,000 rows, {} vectors, 128 objects",
        args.vectors
    );
    let tristore = Emulator::prepare(
        &store,
        server.addr,
        server.s3_addr,
        credentials.clone(),
        args.vectors,
    )?;
    // The second server of a paired comparison, over the same store.
    let second = |options: ServerOptions| -> Result<_, Box<dyn std::error::Error>> {
        let server = start(store.clone(), options)?;
        let target = Emulator::prepare(
            &store,
            server.addr,
            server.s3_addr,
            credentials.clone(),
            args.vectors,
        )?;
        Ok((server, target))
    };
    let paired = if args.unmetered {
        let (server, target) = second(ServerOptions {
            metering: false,
            ..second_options
        })?;
        Some((
            "metering",
            server,
            target.labelled("tristore, metering off"),
        ))
    } else if args.tls {
        let cert = tristore::server::tls::self_signed(dir.path())?;
        let (server, target) = second(ServerOptions {
            tls: Some(tristore::server::tls::config_from_pem(
                &cert.cert, &cert.key,
            )?),
            ..second_options
        })?;
        let target = target.labelled("tristore, HTTPS").over_tls(&cert.cert)?;
        Some(("TLS", server, target))
    } else {
        None
    };
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
    if let Some((what, second_server, second)) = paired {
        // Metering's cost: metered (the default) against unmetered; TLS's: HTTPS
        // against plain HTTP.
        let (with, without) = match what {
            "TLS" => (&second, &tristore),
            _ => (&tristore, &second),
        };
        paired_cost(what, with, without, args.clients, duration);
        second_server.shutdown()?;
        server.shutdown()?;
        return Ok(());
    }
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
