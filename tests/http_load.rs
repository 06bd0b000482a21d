//! 64 concurrent HTTP clients mixing D1 writes and queries, vector queries and S3 GET /
//! PUT against one emulator: no request fails and every acknowledged write is there
//! afterwards.

use std::sync::Arc;
use std::time::Duration;

use tristore::server::load::{mixed, Emulator};
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
    println!(
        "{} ok, {} errors, {:.0} req/s, p99 {:.1} ms; {} inserts, {} puts acknowledged",
        o.ok,
        o.errors,
        o.per_second(),
        o.quantile_ms(0.99),
        report.inserts,
        report.puts
    );
    assert_eq!(o.errors, 0, "failures: {:#?}", o.first_errors);
    assert!(report.inserts > 0 && report.puts > 0, "{report:?}");
    assert_eq!(report.lost_inserts, 0);
    assert_eq!(report.lost_puts, 0);
    server.shutdown().unwrap();
}
