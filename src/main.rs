//! The `tristore` command: the emulator (default) and D1 tooling in wrangler's shape.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench;
mod bench_http;
mod transfer_args;

use clap::{Args, Parser, Subcommand};
use tristore::d1::dump::DumpOptions;
use tristore::d1::migrations;
use tristore::usage::{Allowance, FreeTier, Policy, Usage};
use tristore::{defaults, Store};

#[derive(Parser)]
#[command(
    name = "tristore",
    version,
    about = "Cloudflare D1, Vectorize and R2 on your machine"
)]
struct Cli {
    /// The data directory.
    #[arg(
        long,
        global = true,
        default_value = "./.tristore",
        env = "TRISTORE_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// D1 databases kept open when no request is using them; the least recently used
    /// beyond it are closed (each holds about three file descriptors).
    #[arg(
        long,
        global = true,
        default_value_t = tristore::DEFAULT_OPEN_D1_DATABASES,
        value_parser = clap::value_parser!(usize),
        env = "TRISTORE_MAX_OPEN_DATABASES"
    )]
    max_open_databases: usize,
    /// How far back D1 Time Travel reaches, in seconds (D1: 30 days); each database's
    /// history older than this is deleted.
    #[arg(
        long,
        global = true,
        default_value_t = 30 * 24 * 3600,
        value_parser = clap::value_parser!(u64).range(1..),
        env = "TRISTORE_TIME_TRAVEL_WINDOW_SECS"
    )]
    time_travel_window_secs: u64,
    /// Encrypt R2 content at rest (AES-256-GCM) with the key in this file: 32 bytes, raw
    /// or as 64 hexadecimal characters (`openssl rand -hex 32 > key`). Once given, the
    /// data directory opens only with the same key.
    #[arg(long, global = true, env = "TRISTORE_ENCRYPTION_KEY_FILE")]
    encryption_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Provision the embedded default (Metacogna) and serve it over Cloudflare's REST
    /// API (the default command).
    Serve(ServeArgs),
    /// D1 databases: create, list, execute SQL, migrations, export, import and Time Travel.
    D1 {
        #[command(subcommand)]
        command: D1Command,
    },
    /// Vectorize indexes: export and import vectors.
    Vectorize {
        #[command(subcommand)]
        command: VectorizeCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Check every store, and the links between a database's documents, their objects
    /// and their vectors (Metacogna's schema); exits non-zero when anything is wrong.
    Fsck(FsckArgs),
    /// What was used today and this month against Cloudflare's free tier: D1 rows,
    /// Vectorize dimensions, R2 operations, and what is stored.
    Usage {
        /// Print the report as JSON (the shape of GET /cdn-cgi/tristore/usage).
        #[arg(long)]
        json: bool,
    },
    /// Reclaim R2's space now: abort multipart uploads past their expiry, then remove
    /// blobs no object or upload references (a running `serve` does this itself, every
    /// 10 minutes, with the same settings).
    Gc(HousekeepingArgs),
    /// Back up the whole store (D1, R2 and Vectorize at one instant) to a new
    /// directory, also while `tristore serve` runs; a kill or an error leaves no
    /// backup, or a complete one.
    Backup(BackupArgs),
    /// Copy D1 databases, Vectorize indexes and R2 buckets from a Cloudflare account
    /// (or another tristore) into the data directory; resumable, skips what is equal.
    Pull(transfer_args::TransferArgs),
    /// Copy D1 databases, Vectorize indexes and R2 buckets from the data directory to a
    /// Cloudflare account (or another tristore); resumable, skips what is equal.
    Push(transfer_args::TransferArgs),
    /// Restore a backup into the data directory, which must be absent or empty.
    Restore {
        /// The directory `tristore backup` wrote.
        src: PathBuf,
    },
}

#[derive(Args)]
struct BackupArgs {
    /// Where to write the backup: a directory that does not exist yet, or is empty.
    dest: PathBuf,
    /// Ask this running server (http://HOST:PORT) to take the backup. By default the
    /// server named in <data-dir>/server.json is asked if it still runs; otherwise
    /// the data directory is opened here.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The server's --api-token.
    #[arg(long, env = "TRISTORE_API_TOKEN")]
    api_token: Option<String>,
}

#[derive(Args)]
struct FsckArgs {
    /// Remove what nothing points to (vectors whose docId names no document, objects
    /// no document's r2Key names), after printing it.
    #[arg(long)]
    repair: bool,
    /// The database with the `documents` table.
    #[arg(long, default_value = defaults::METACOGNA_DATABASE)]
    database: String,
    /// The index of the documents' chunks.
    #[arg(long, default_value = defaults::METACOGNA_INDEX)]
    index: String,
    /// The bucket of the documents' files.
    #[arg(long, default_value = defaults::METACOGNA_BUCKET)]
    bucket: String,
}

/// What R2 housekeeping removes: the settings `gc` and `serve` share.
#[derive(Args, Clone)]
struct HousekeepingArgs {
    /// Keep unreferenced blobs this many seconds after their object went (a reader may
    /// still be reading one).
    #[arg(long, value_name = "SECONDS", default_value_t = tristore::r2::Housekeeping::default().grace.as_secs())]
    grace: u64,
    /// Also abort, in every bucket, multipart uploads started at least this many seconds
    /// ago, whatever the buckets' lifecycle rules say.
    #[arg(long, value_name = "SECONDS")]
    upload_expiry: Option<u64>,
    /// Do not apply the buckets' lifecycle rules (R2's default rule, which aborts
    /// uploads after 7 days, included).
    #[arg(long)]
    no_lifecycle: bool,
}

impl Default for HousekeepingArgs {
    fn default() -> Self {
        let d = tristore::r2::Housekeeping::default();
        HousekeepingArgs {
            grace: d.grace.as_secs(),
            upload_expiry: d.upload_expiry.map(|e| e.as_secs()),
            no_lifecycle: !d.lifecycle,
        }
    }
}

impl HousekeepingArgs {
    fn settings(&self, interval: std::time::Duration) -> tristore::r2::Housekeeping {
        tristore::r2::Housekeeping {
            interval,
            grace: std::time::Duration::from_secs(self.grace),
            lifecycle: !self.no_lifecycle,
            upload_expiry: self.upload_expiry.map(std::time::Duration::from_secs),
        }
    }
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "TRISTORE_HOST")]
    host: String,
    /// Port of the Cloudflare REST API (0 picks a free one).
    #[arg(long, default_value_t = 8790, env = "TRISTORE_PORT")]
    port: u16,
    /// Require `Authorization: Bearer <token>` with this token (default: any token).
    #[arg(long, env = "TRISTORE_API_TOKEN")]
    api_token: Option<String>,
    /// Port of R2's S3-compatible API (0 picks a free one).
    #[arg(long, default_value_t = 8791, env = "TRISTORE_S3_PORT")]
    s3_port: u16,
    /// Access key id S3 requests must be signed with.
    #[arg(long, default_value = tristore::server::s3::DEFAULT_ACCESS_KEY_ID, env = "TRISTORE_S3_ACCESS_KEY_ID")]
    s3_access_key_id: String,
    /// Secret access key S3 requests must be signed with.
    #[arg(long, default_value = tristore::server::s3::DEFAULT_SECRET_ACCESS_KEY, env = "TRISTORE_S3_SECRET_ACCESS_KEY")]
    s3_secret_access_key: String,
    /// Provision the d1_databases (migrated), vectorize and r2_buckets of this
    /// wrangler.toml / wrangler.json(c) instead of Metacogna's.
    #[arg(long, env = "TRISTORE_CONFIG")]
    config: Option<PathBuf>,
    /// Keep everything in a new temporary directory, removed when the server stops
    /// (instead of --data-dir): for test runs.
    #[arg(long)]
    ephemeral: bool,
    /// Also answer REST requests that name the server by this host name (repeatable);
    /// without an API token only loopback names are answered.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Serve browser requests from this origin, e.g. https://app.example, with CORS
    /// (repeatable); other origins are refused.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Seconds an upload may send nothing before it fails.
    #[arg(long, default_value_t = 30)]
    body_timeout: u64,
    /// Listen on a non-loopback --host even without --api-token or with the default S3
    /// keys (anyone who can reach the port can then read and change everything).
    #[arg(long)]
    allow_exposed: bool,
    /// Seconds between two runs of R2 housekeeping (the first runs at start).
    #[arg(long, value_name = "SECONDS", default_value_t = tristore::r2::Housekeeping::default().interval.as_secs())]
    gc_interval: u64,
    #[command(flatten)]
    housekeeping: HousekeepingArgs,
    /// Past one of Cloudflare's free-tier allowances (`tristore usage` lists them):
    /// count only, log a warning once, or refuse requests as the free plan does.
    #[arg(long, value_enum, default_value = "count", env = "TRISTORE_FREE_TIER")]
    free_tier: Policy,
    /// Change an allowance (repeatable), e.g. d1-rows-read=1000.
    #[arg(long = "free-tier-allowance", value_name = "NAME=VALUE", value_parser = FreeTier::parse_override)]
    free_tier_allowances: Vec<(Allowance, u64)>,
    /// Count nothing (no /metrics, no usage): to measure what counting costs.
    #[arg(long)]
    no_metering: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// HTTPS for both ports.
#[derive(Args, Clone, Default)]
struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        env = "TRISTORE_TLS_CERT"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_cert",
        env = "TRISTORE_TLS_KEY"
    )]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate for localhost made (once) in the data directory.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
}

impl TlsArgs {
    /// The server configuration, and the self-signed certificate to tell clients about.
    fn load(&self, data_dir: &Path) -> Result<TlsSetup, String> {
        use tristore::server::tls;
        let (cert, key, made) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone(), None),
            _ if self.tls_self_signed => {
                let made = tls::self_signed(data_dir).map_err(|e| e.to_string())?;
                (made.cert.clone(), made.key.clone(), Some(made.cert))
            }
            _ => return Ok((None, None)),
        };
        let config = tls::config_from_pem(&cert, &key).map_err(|e| e.to_string())?;
        Ok((Some(config), made))
    }
}

type TlsSetup = (
    Option<std::sync::Arc<rustls::ServerConfig>>,
    Option<PathBuf>,
);

impl Default for ServeArgs {
    fn default() -> Self {
        let options = tristore::server::ServerOptions::default();
        ServeArgs {
            host: options.host,
            port: options.port,
            api_token: options.api_token,
            s3_port: options.s3_port,
            s3_access_key_id: options.s3_credentials.access_key_id,
            s3_secret_access_key: options.s3_credentials.secret_access_key,
            config: None,
            ephemeral: false,
            allow_hosts: Vec::new(),
            cors_origins: Vec::new(),
            body_timeout: options.body_timeout.as_secs(),
            allow_exposed: false,
            gc_interval: options.r2_housekeeping.interval.as_secs(),
            housekeeping: HousekeepingArgs::default(),
            free_tier: options.free_tier.policy,
            free_tier_allowances: Vec::new(),
            no_metering: !options.metering,
            tls: TlsArgs::default(),
        }
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Build a Vectorize index on a dataset and measure build rate, memory, open time,
    /// recall and speed (progress on standard error, results on standard output).
    Vectors(bench::VectorBench),
    /// Requests per second and p50 / p99 latency through the emulator's HTTP surface
    /// with concurrent clients, optionally next to Miniflare.
    Http(bench_http::HttpBench),
}

#[derive(Subcommand)]
enum VectorizeCommand {
    /// Write every vector of an index as NDJSON (id, values, namespace, metadata), the
    /// format `wrangler vectorize insert --file` and the REST API take.
    Export {
        index: String,
        /// Where to write it (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Upsert the vectors of an NDJSON file (as `export` writes it) into an index.
    Import { index: String, file: PathBuf },
}

#[derive(Subcommand)]
enum D1Command {
    /// List databases.
    List,
    /// Create a database.
    Create { name: String },
    /// Show one database.
    Info { database: String },
    /// Delete a database and its file.
    Delete { database: String },
    /// Run SQL: one or more `;`-separated statements, as one transaction.
    Execute {
        database: String,
        /// The SQL to run.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        command: Option<String>,
        /// A file of SQL to run.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Wrangler-compatible migrations.
    Migrations {
        #[command(subcommand)]
        command: MigrationsCommand,
    },
    /// Write a SQL dump of a database.
    Export {
        database: String,
        /// Where to write it (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Leave out the rows.
        #[arg(long)]
        no_data: bool,
        /// Leave out the schema.
        #[arg(long)]
        no_schema: bool,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
    },
    /// Load a SQL dump into a database, all or nothing.
    Import { database: String, file: PathBuf },
    /// Time Travel: bookmarks of past states, and restoring to one.
    TimeTravel {
        #[command(subcommand)]
        command: TimeTravelCommand,
    },
}

#[derive(Subcommand)]
enum TimeTravelCommand {
    /// The current bookmark, or with --timestamp the one of the state at that moment.
    Info {
        database: String,
        /// Unix seconds or RFC 3339 (2026-01-31T12:00:00Z).
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// Restore the database in place; the answer's previous_bookmark undoes it.
    Restore {
        database: String,
        #[arg(
            long,
            conflicts_with = "timestamp",
            required_unless_present = "timestamp"
        )]
        bookmark: Option<String>,
        /// Unix seconds or RFC 3339: restores the state at that moment.
        #[arg(long)]
        timestamp: Option<String>,
    },
}

#[derive(Args)]
struct MigrationSource {
    /// The directory of migration files.
    #[arg(long, default_value = "db/migrations")]
    migrations_dir: PathBuf,
    /// The bookkeeping table.
    #[arg(long, default_value = migrations::DEFAULT_TABLE)]
    migrations_table: String,
}

#[derive(Subcommand)]
enum MigrationsCommand {
    /// Create the next numbered migration file.
    Create {
        database: String,
        message: String,
        #[command(flatten)]
        source: MigrationSource,
    },
    /// List migrations not yet applied.
    List {
        database: String,
        #[command(flatten)]
        source: MigrationSource,
    },
    /// Apply the migrations not yet applied, in order.
    Apply {
        database: String,
        #[command(flatten)]
        source: MigrationSource,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn run(cli: Cli) -> CliResult {
    let r2_encryption_key = match &cli.encryption_key_file {
        Some(path) => {
            let content = std::fs::read(path)
                .map_err(|e| format!("reading the encryption key file {}: {e}", path.display()))?;
            Some(
                tristore::r2::EncryptionKey::from_file_content(&content)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let options = tristore::StoreOptions {
        max_open_d1_databases: Some(cli.max_open_databases.max(1)),
        d1_limits: tristore::d1::D1Limits {
            time_travel_window: std::time::Duration::from_secs(cli.time_travel_window_secs),
            ..Default::default()
        },
        r2_encryption_key,
        ..Default::default()
    };
    let open_at = |dir: &Path| Store::open_with(dir, options.clone());
    let open = || open_at(&cli.data_dir);
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) if args.ephemeral => {
            // Removed when dropped, after the server has stopped.
            let dir = tempfile::Builder::new().prefix("tristore-").tempdir()?;
            serve(open_at(dir.path())?, args)
        }
        Command::Serve(args) => serve(open()?, args),
        Command::D1 { command } => d1(&open()?, command),
        Command::Vectorize { command } => vectorize(&open()?, command),
        Command::Gc(what) => gc(&open()?, &what),
        Command::Fsck(args) => fsck(&open()?, args),
        Command::Usage { json } => usage(open(), &cli.data_dir, json),
        Command::Backup(args) => backup(&cli.data_dir, open, args),
        Command::Pull(args) => {
            transfer_args::run(&open()?, tristore::transfer::Direction::Pull, args)
        }
        Command::Push(args) => {
            transfer_args::run(&open()?, tristore::transfer::Direction::Push, args)
        }
        Command::Restore { src } => {
            let summary = tristore::backup::restore_with(&src, &cli.data_dir, options.clone())?;
            print_json(&summary)?;
            eprintln!(
                "restored {} into {}; check it with: tristore --data-dir {} fsck",
                src.display(),
                summary.path.display(),
                summary.path.display()
            );
            Ok(())
        }
        // Benchmarks work in a temporary directory, not the data directory.
        Command::Bench { command } => match command {
            BenchCommand::Vectors(args) => bench::vectors(args),
            BenchCommand::Http(args) => bench_http::http(args),
        },
    }
}

/// A non-loopback `--host` exposes every database, index and bucket to the network:
/// refused without a token and with the published S3 keys, unless asked for.
fn check_exposure(args: &ServeArgs) -> Result<(), String> {
    let loopback = args.host == "localhost"
        || args
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let default_keys = args.s3_access_key_id == tristore::server::s3::DEFAULT_ACCESS_KEY_ID
        || args.s3_secret_access_key == tristore::server::s3::DEFAULT_SECRET_ACCESS_KEY;
    if loopback || args.allow_exposed || (args.api_token.is_some() && !default_keys) {
        return Ok(());
    }
    Err(format!(
        "--host {} makes tristore reachable from other machines, but {}: set --api-token and your own --s3-access-key-id / --s3-secret-access-key, or pass --allow-exposed if this network is yours alone",
        args.host,
        match (args.api_token.is_none(), default_keys) {
            (true, true) => "no --api-token is set and the S3 keys are the published defaults",
            (true, false) => "no --api-token is set",
            _ => "the S3 keys are the published defaults",
        }
    ))
}

fn serve(store: Store, args: ServeArgs) -> CliResult {
    check_exposure(&args)?;
    raise_open_file_limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let stop = StopSignal::install()?;
    let plan = match &args.config {
        Some(path) => {
            let config = tristore::provision::WranglerConfig::load(path)?;
            let base = path.parent().unwrap_or(Path::new("."));
            tristore::provision::Plan::from_config(&config, base)?
        }
        None => defaults::metacogna_plan(),
    };
    let done = plan.apply(&store)?;
    let provisioned = plan.describe(&store, &done)?;
    // The examples use the first database, index and bucket there are.
    let first_db = store.d1().list_page(0, 1)?.0.into_iter().next();
    let first_index = store.vectorize().list()?.into_iter().next();
    let first_bucket = store.r2().list_buckets()?.into_iter().next();
    let (tls, self_signed) = args.tls.load(store.dir())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let store = std::sync::Arc::new(store);
    let server = tristore::server::start(
        store.clone(),
        tristore::server::ServerOptions {
            host: args.host,
            port: args.port,
            api_token: args.api_token.clone(),
            s3_port: args.s3_port,
            s3_credentials: tristore::r2::presign::Credentials::new(
                &args.s3_access_key_id,
                &args.s3_secret_access_key,
            ),
            plan: plan.clone(),
            browsers: tristore::server::guard::BrowserPolicy {
                allowed_hosts: args.allow_hosts.clone(),
                cors_origins: args.cors_origins.clone(),
                ..Default::default()
            },
            limits: tristore::server::listen::ConnectionLimits::default(),
            body_timeout: std::time::Duration::from_secs(args.body_timeout.max(1)),
            r2_housekeeping: args
                .housekeeping
                .settings(std::time::Duration::from_secs(args.gc_interval.max(1))),
            metering: !args.no_metering,
            free_tier: FreeTier {
                policy: args.free_tier,
                overrides: args.free_tier_allowances.iter().copied().collect(),
            },
            tls,
            ..Default::default()
        },
    )?;
    let base = format!(
        "{scheme}://{}/client/v4/accounts/{}",
        server.addr,
        tristore::server::DEFAULT_ACCOUNT_ID
    );
    println!(
        "tristore {} serving {}{}",
        env!("CARGO_PKG_VERSION"),
        store.dir().display(),
        if args.ephemeral {
            " (temporary: removed on exit)"
        } else {
            ""
        }
    );
    for line in &provisioned {
        println!("  {line}");
    }
    println!();
    println!(
        "Cloudflare API: {scheme}://{}/client/v4  (account id {}; any id works)",
        server.addr,
        tristore::server::DEFAULT_ACCOUNT_ID
    );
    println!(
        "Auth: {}",
        if args.api_token.is_some() {
            "Authorization: Bearer <the --api-token>"
        } else {
            "any bearer token"
        }
    );
    println!(
        "R2 S3 API:      {scheme}://{}  (region auto; access key id {}, secret {})",
        server.s3_addr, args.s3_access_key_id, args.s3_secret_access_key
    );
    let bindings_url = format!(
        "{scheme}://{}{}{}",
        server.addr,
        tristore::server::bindings::PATH,
        match &args.api_token {
            Some(t) => format!("?token={t}"),
            None => String::new(),
        }
    );
    println!("Remote bindings: {bindings_url}  (Workers under Miniflare or the vitest pool)");
    if !args.no_metering {
        println!(
            "Metrics:         {scheme}://{}{}  (Prometheus); usage against the free tier: tristore usage, or GET {}",
            server.addr,
            tristore::server::METRICS_PATH,
            tristore::server::USAGE_PATH,
        );
    }
    println!();
    let reset = format!(
        "{scheme}://{}{}",
        server.addr,
        tristore::server::bindings::RESET_PATH
    );
    for line in vitest_snippet(&bindings_url, &reset, &plan) {
        println!("{line}");
    }
    println!();
    if let Some(cert) = &self_signed {
        let cert = cert.display();
        println!("HTTPS certificate (self-signed, for localhost): {cert}");
        println!("  trust it: AWS_CA_BUNDLE={cert} REQUESTS_CA_BUNDLE={cert} SSL_CERT_FILE={cert} NODE_EXTRA_CA_CERTS={cert}");
        println!();
    }
    println!("Try:");
    if let Some(db) = first_db {
        println!("  curl -s {base}/d1/database/{}/query -H 'Authorization: Bearer x' -d '{{\"sql\": \"SELECT name FROM sqlite_master\"}}'", db.uuid);
    }
    if let Some(index) = first_index {
        println!(
            "  curl -s {base}/vectorize/v2/indexes/{}/info -H 'Authorization: Bearer x'",
            index.name
        );
    }
    println!(
        "  python: cloudflare.Cloudflare(api_token='x', base_url='{scheme}://{}/client/v4')",
        server.addr
    );
    if let Some(bucket) = first_bucket {
        println!(
            "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws s3 ls s3://{} --endpoint-url {scheme}://{} --region auto",
            args.s3_access_key_id, args.s3_secret_access_key, bucket.name, server.s3_addr
        );
    }
    println!(
        "  python: boto3.client('s3', endpoint_url='{scheme}://{}', region_name='auto', aws_access_key_id='{}', aws_secret_access_key='{}')",
        server.s3_addr, args.s3_access_key_id, args.s3_secret_access_key
    );
    println!();
    // Tells `tristore backup` that this process holds the directory, and where to ask.
    tristore::server::backup::ServerFile::write(
        store.dir(),
        &format!("{scheme}://{}", server.addr),
    )?;
    println!("Ctrl-C stops the server.");
    stop.wait();
    eprintln!("stopping: finishing requests in flight");
    let stopped = server.shutdown();
    tristore::server::backup::ServerFile::remove(store.dir());
    stopped?;
    Ok(())
}

/// A `vitest.config.ts` excerpt that points the plan's bindings at tristore.
fn vitest_snippet(url: &str, reset: &str, plan: &tristore::provision::Plan) -> Vec<String> {
    let proxy = format!("remoteProxyConnectionString: new URL(\"{url}\")");
    let mut lines = vec![
        "Point a Worker's bindings here (vitest.config.ts, in cloudflareTest({ ... })):".to_owned(),
        "  remoteBindings: false,".to_owned(),
        "  miniflare: {".to_owned(),
    ];
    // Miniflare's option, the key naming the resource, and (binding, resource) pairs.
    type Section<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let sections: [Section; 3] = [
        (
            "d1Databases",
            "id",
            plan.databases
                .iter()
                .map(|d| (d.binding.as_str(), d.name.as_str()))
                .collect(),
        ),
        (
            "vectorize",
            "index_name",
            plan.indexes
                .iter()
                .map(|i| (i.binding.as_str(), i.name.as_str()))
                .collect(),
        ),
        (
            "r2Buckets",
            "id",
            plan.buckets
                .iter()
                .map(|b| (b.binding.as_str(), b.name.as_str()))
                .collect(),
        ),
    ];
    for (option, key, bindings) in sections.iter().filter(|s| !s.2.is_empty()) {
        lines.push(format!("    {option}: {{"));
        for (binding, name) in bindings {
            lines.push(format!(
                "      {binding}: {{ {key}: \"{name}\", {proxy} }},"
            ));
        }
        lines.push("    },".into());
    }
    lines.push("  },".into());
    lines.push(format!("  (reset between test files: POST {reset})"));
    lines
}

/// Raises the soft limit on open files to the hard one: every connection, database and
/// blob being written holds descriptors, and 1,024 (a common default) is easily reached.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit / setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// SIGINT and SIGTERM, caught from the moment this exists: a signal sent as soon as the
/// banner is out (a test harness, a supervisor) stops the server cleanly instead of
/// killing it, which would leave an `--ephemeral` directory behind.
struct StopSignal {
    runtime: tokio::runtime::Runtime,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> std::io::Result<StopSignal> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _context = runtime.enter();
        let interrupt = signal(SignalKind::interrupt())?;
        let terminate = signal(SignalKind::terminate())?;
        Ok(StopSignal {
            runtime,
            interrupt,
            terminate,
        })
    }

    /// Blocks until one of the two arrives.
    fn wait(mut self) {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        });
    }
}

/// The report from the store itself, or, while the emulator holds it, from what the
/// emulator last saved.
fn usage(store: tristore::Result<Store>, dir: &Path, json: bool) -> CliResult {
    let report = match store {
        Ok(store) => Usage::read(dir)?.report(&store)?,
        Err(e) => {
            eprintln!("({e}: showing the counts the emulator saved, at most a second old, and the stored amounts it measured last)");
            Usage::read(dir)?.saved_report()
        }
    };
    if json {
        return print_json(&report);
    }
    print!("{report}");
    Ok(())
}

/// Through the server that holds the data directory when there is one (only it can
/// read its open catalogs and indexes), else here.
fn backup(
    data_dir: &Path,
    open: impl FnOnce() -> tristore::Result<Store>,
    args: BackupArgs,
) -> CliResult {
    use tristore::server::backup::ServerFile;
    let dest = std::path::absolute(&args.dest)?;
    let token = args.api_token.as_deref();
    let summary = match (&args.server, ServerFile::running(data_dir)) {
        (Some(url), _) => backup_through(url, &dest, token)?,
        (None, Some(server)) => match backup_through(&server.url, &dest, token) {
            Err(BackupThrough::Unreachable(e)) => {
                eprintln!(
                    "({} names {} (pid {}), which does not answer ({e}): backing up here)",
                    data_dir
                        .join(tristore::server::backup::SERVER_FILE)
                        .display(),
                    server.url,
                    server.pid
                );
                backup_here(data_dir, open, &dest)?
            }
            other => other?,
        },
        (None, None) => backup_here(data_dir, open, &dest)?,
    };
    print_json(&summary)?;
    eprintln!(
        "backed up {} D1 databases, {} R2 blobs and {} Vectorize indexes ({} MB) to {}; writes paused {} µs",
        summary.d1_databases,
        summary.r2_blobs,
        summary.vectorize_indexes,
        summary.bytes >> 20,
        summary.path.display(),
        summary.pause_micros
    );
    Ok(())
}

fn backup_here(
    data_dir: &Path,
    open: impl FnOnce() -> tristore::Result<Store>,
    dest: &Path,
) -> Result<tristore::backup::Summary, Box<dyn std::error::Error>> {
    if !data_dir.join("catalog.redb").exists() {
        return Err(format!(
            "{} is not a tristore data directory (it has no catalog.redb): name one with --data-dir",
            data_dir.display()
        )
        .into());
    }
    let store = open().map_err(|e| {
        format!("{e}\n(if a tristore serve holds this directory, name it: tristore backup --server http://HOST:PORT)")
    })?;
    Ok(tristore::backup::backup(&store, dest)?)
}

/// Why a backup through a server failed: unreachable (then one can be taken here), or
/// refused or failed by the server.
#[derive(Debug)]
enum BackupThrough {
    Unreachable(String),
    Failed(String),
}

impl std::fmt::Display for BackupThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupThrough::Unreachable(e) | BackupThrough::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for BackupThrough {}

fn backup_through(
    url: &str,
    dest: &Path,
    token: Option<&str>,
) -> Result<tristore::backup::Summary, BackupThrough> {
    use std::net::ToSocketAddrs;
    let failed = |m: String| BackupThrough::Failed(m);
    let host = url.strip_prefix("http://").ok_or_else(|| {
        failed(format!(
            "{url}: only http:// servers are reached from the command line; for an HTTPS server run: curl --cacert CERT -H 'Content-Type: application/json' -H 'Authorization: Bearer TOKEN' -d '{{\"destination\": \"{}\"}}' {url}{}",
            dest.display(),
            tristore::server::backup::BACKUP_PATH
        ))
    })?;
    let host = host.trim_end_matches('/');
    let addr = host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            failed(format!(
                "{url}: not an address of the form http://HOST:PORT"
            ))
        })?;
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    let body = serde_json::json!({ "destination": dest }).to_string();
    let request = bench::load::Request {
        addr,
        method: "POST",
        target: tristore::server::backup::BACKUP_PATH.into(),
        headers,
        body: std::sync::Arc::from(body.as_bytes()),
        writes: None,
        expect: bench::load::Expect::Status,
        tls: None,
    };
    let answer =
        bench::load::send_once(&request).map_err(|e| BackupThrough::Unreachable(e.to_string()))?;
    let envelope: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    if answer.status != 200 {
        let message = envelope["errors"][0]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
        let hint = match answer.status {
            400 if message.contains("X-Auth-Key") => {
                " (pass the server's --api-token, or set TRISTORE_API_TOKEN)"
            }
            403 => " (pass the server's --api-token, or set TRISTORE_API_TOKEN)",
            _ => "",
        };
        return Err(failed(format!(
            "the server at {url} answered {}: {message}{hint}",
            answer.status
        )));
    }
    serde_json::from_value(envelope["result"].clone()).map_err(|e| {
        failed(format!(
            "the server at {url} answered something unexpected: {e}"
        ))
    })
}

fn vectorize(store: &Store, command: VectorizeCommand) -> CliResult {
    use tristore::vectorize::ndjson;
    match command {
        VectorizeCommand::Export { index, output } => {
            let index = store.vectorize().index(&index)?;
            let written = match output {
                Some(path) => {
                    // Written beside, then renamed: an interrupted export leaves no
                    // partial file under the name asked for.
                    let tmp = path.with_extension("partial");
                    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
                    let n = ndjson::export(&index, &mut file)?;
                    file.into_inner()?.sync_all()?;
                    std::fs::rename(&tmp, &path)?;
                    n
                }
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    let n = ndjson::export(&index, &mut out)?;
                    std::io::Write::flush(&mut out)?;
                    n
                }
            };
            eprintln!("exported {written} vectors");
        }
        VectorizeCommand::Import { index, file } => {
            let index = store.vectorize().index(&index)?;
            let mut input = std::io::BufReader::new(std::fs::File::open(&file)?);
            let n = ndjson::import(&index, &mut input)?;
            eprintln!("imported {n} vectors");
        }
    }
    Ok(())
}

/// Each store's own check, then the links; every problem on its own line.
fn fsck(store: &Store, args: FsckArgs) -> CliResult {
    let mut problems = 0;
    for problem in store.r2().fsck()? {
        println!("r2: {problem}");
        problems += 1;
    }
    for db in store.d1().list()? {
        let rows = store
            .d1()
            .database(&db.uuid)?
            .prepare("PRAGMA quick_check")
            .raw(false)?;
        for row in rows.iter().filter(|r| r[0] != "ok") {
            println!("d1 {}: {}", db.name, row[0]);
            problems += 1;
        }
    }
    let links = tristore::consistency::Links {
        database: args.database,
        index: args.index,
        bucket: args.bucket,
    };
    let present = store.d1().get(&links.database).is_ok()
        && store.vectorize().get(&links.index).is_ok()
        && store.r2().bucket(&links.bucket).is_ok();
    if present {
        let report = tristore::consistency::check(store, &links)?;
        for problem in &report.problems {
            println!("links: {problem}");
        }
        problems += report.problems.len();
        println!(
            "links: {} documents, {} vectors, {} objects checked",
            report.documents, report.vectors, report.objects
        );
        let orphans: Vec<_> = report
            .problems
            .into_iter()
            .filter(|p| p.is_orphan())
            .collect();
        if args.repair && !orphans.is_empty() {
            for orphan in &orphans {
                println!("removing: {orphan}");
            }
            let (vectors, objects) = tristore::consistency::repair(store, &links, &orphans)?;
            println!("removed {vectors} vectors and {objects} objects");
            problems -= orphans.len();
        }
    } else {
        println!(
            "links: not checked (no database {}, index {} and bucket {} together; name them with --database, --index and --bucket)",
            links.database, links.index, links.bucket
        );
    }
    match problems {
        0 => Ok(()),
        n => Err(format!("{n} problems found").into()),
    }
}

fn gc(store: &Store, what: &HousekeepingArgs) -> CliResult {
    // One run: the interval does not matter.
    let report = store.r2().housekeep(&what.settings(Default::default()))?;
    print_json(&report)
}

fn d1(store: &Store, command: D1Command) -> CliResult {
    let dbs = store.d1();
    match command {
        D1Command::List => print_json(&dbs.list()?),
        D1Command::Create { name } => print_json(&dbs.create(&name)?),
        D1Command::Info { database } => print_json(&dbs.get(&database)?),
        D1Command::Delete { database } => {
            dbs.delete(&database)?;
            println!("deleted {database}");
            Ok(())
        }
        D1Command::Execute {
            database,
            command,
            file,
        } => {
            let sql = match (command, file) {
                (Some(sql), _) => sql,
                (None, Some(path)) => read(&path)?,
                (None, None) => unreachable!("clap requires --command or --file"),
            };
            print_json(&dbs.database(&database)?.execute_script(&sql, &[])?)
        }
        D1Command::Migrations { command } => migrations_command(store, command),
        D1Command::Export {
            database,
            output,
            no_data,
            no_schema,
            tables,
        } => {
            let options = DumpOptions {
                no_data,
                no_schema,
                tables,
            };
            let dump = dbs.database(&database)?.export(&options)?;
            match output {
                Some(path) => std::fs::write(&path, dump)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?,
                None => print!("{dump}"),
            }
            Ok(())
        }
        D1Command::Import { database, file } => {
            let summary = dbs.database(&database)?.import(&read(&file)?)?;
            print_json(&summary)
        }
        D1Command::TimeTravel { command } => match command {
            TimeTravelCommand::Info {
                database,
                timestamp,
            } => {
                let bookmark = dbs.database(&database)?.bookmark_at(timestamp.as_deref())?;
                print_json(&serde_json::json!({ "bookmark": bookmark }))
            }
            TimeTravelCommand::Restore {
                database,
                bookmark,
                timestamp,
            } => print_json(
                &dbs.database(&database)?
                    .restore(bookmark.as_deref(), timestamp.as_deref())?,
            ),
        },
    }
}

fn migrations_command(store: &Store, command: MigrationsCommand) -> CliResult {
    match command {
        MigrationsCommand::Create {
            database,
            message,
            source,
        } => {
            store.d1().get(&database)?;
            let path = migrations::create(&source.migrations_dir, &message)?;
            println!("created {}", path.display());
        }
        MigrationsCommand::List { database, source } => {
            let db = store.d1().database(&database)?;
            let all = migrations::load_dir(&source.migrations_dir, None)?;
            let pending = migrations::pending(&db, &all, &source.migrations_table)?;
            if pending.is_empty() {
                println!("no migrations to apply");
            }
            for m in pending {
                println!("{}", m.name);
            }
        }
        MigrationsCommand::Apply { database, source } => {
            let db = store.d1().database(&database)?;
            let all = migrations::load_dir(&source.migrations_dir, None)?;
            let applied = migrations::apply(&db, &all, &source.migrations_table)?;
            if applied.is_empty() {
                println!("no migrations to apply");
            }
            for name in applied {
                println!("applied {name}");
            }
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn print_json(value: &impl serde::Serialize) -> CliResult {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_hosts_need_a_token_and_own_keys_or_an_explicit_yes() {
        let args = |host: &str, token: bool, own_keys: bool, yes: bool| ServeArgs {
            host: host.into(),
            api_token: token.then(|| "t".into()),
            s3_access_key_id: if own_keys {
                "mine".into()
            } else {
                ServeArgs::default().s3_access_key_id
            },
            s3_secret_access_key: if own_keys {
                "secret".into()
            } else {
                ServeArgs::default().s3_secret_access_key
            },
            allow_exposed: yes,
            ..ServeArgs::default()
        };
        for host in ["127.0.0.1", "localhost", "::1"] {
            assert!(
                check_exposure(&args(host, false, false, false)).is_ok(),
                "{host}"
            );
        }
        let refused = check_exposure(&args("0.0.0.0", false, false, false)).unwrap_err();
        assert!(
            refused.contains("--api-token") && refused.contains("--allow-exposed"),
            "{refused}"
        );
        assert!(check_exposure(&args("0.0.0.0", true, false, false)).is_err());
        assert!(check_exposure(&args("0.0.0.0", false, true, false)).is_err());
        assert!(check_exposure(&args("0.0.0.0", true, true, false)).is_ok());
        assert!(check_exposure(&args("192.168.1.5", false, false, true)).is_ok());
    }
}
