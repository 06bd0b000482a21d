//! 64 concurrent HTTP clients mixing D1 writes and queries, vector queries and upserts,
//! and S3 GET / PUT against one emulator: no request fails, every answer holds what is
//! stored (GET bytes, the queried row, matches scored against the vectors they name),
//! every acknowledged write is there afterwards, and still there, byte for byte, once
//! the server is shut down and the store reopened from the same directory.

// The load generator is a client: it lives with `tristore bench` in the binary crate.
#[path = "../src/bench/load.rs"]
mod load;

use std::sync::Arc;
use std::time::Duration;

use load::{mixed, verify, Emulator};
use tristore::server::{start, ServerOptions};
use tristore::Store;

#[test]
fn sixty_four_clients_mixing_every_store_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let options = ServerOptions {
        port: 0,
        s3_port: 0,
        ..Default::default()
    };
    let credentials = options.s3_credentials.clone();
    let server = start(store.clone(), options).unwrap();
    let target = Emulator::prepare(&store, server.addr, server.s3_addr, credentials, 1000).unwrap();
    let report = mixed(&store, &target, 64, Duration::from_secs(3)).unwrap();
    let o = &report.outcome;
    let (inserts, puts, upserts) = report.writes();
    println!(
        "{} ok, {} errors; {} answers checked; {inserts} inserts, {puts} puts, {upserts} upserts acknowledged",
        o.ok, o.errors, report.reads_checked,
    );
    assert_eq!(o.errors, 0, "failures: {:#?}", o.first_errors);
    assert_eq!(
        report.wrong_answers, 0,
        "wrong answers: {:#?}",
        report.first_wrong
    );
    assert!(report.reads_checked > 0, "{report:?}");
    assert!(inserts > 0 && puts > 0 && upserts > 0, "{report:?}");
    assert!(report.lost.is_empty(), "lost: {:#?}", report.lost);
    // Through the server: each upserted vector is found by a query for its values.
    let problems = target.query_back(&report.acknowledged);
    assert!(problems.is_empty(), "{problems:#?}");

    // Durability across a restart: everything acknowledged is in the reopened store.
    server.shutdown().unwrap();
    drop(target);
    let store = Arc::try_unwrap(store)
        .unwrap_or_else(|_| panic!("the server still holds the store after shutdown"));
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    let lost = verify(&reopened, &report.acknowledged).unwrap();
    assert!(lost.is_empty(), "lost across the restart: {lost:#?}");
}
