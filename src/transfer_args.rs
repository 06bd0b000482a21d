//! The command line of `tristore pull` and `tristore push` (the copying itself is
//! [`tristore::transfer`]).

use clap::Args;
use tristore::r2::presign::Credentials;
use tristore::transfer::{self, Api, Direction, Options, Remote, Selection, S3};
use tristore::Store;

/// Where the remote account is and what to copy.
#[derive(Args)]
pub struct TransferArgs {
    /// The v4 REST API (another tristore: http://127.0.0.1:8790/client/v4).
    #[arg(
        long,
        default_value = "https://api.cloudflare.com/client/v4",
        env = "CLOUDFLARE_API_BASE_URL"
    )]
    api_base: String,
    /// The Cloudflare account id.
    #[arg(long, env = "CLOUDFLARE_ACCOUNT_ID")]
    account_id: String,
    /// An API token with D1 and Vectorize edit rights on the account.
    #[arg(long, env = "CLOUDFLARE_API_TOKEN", hide_env_values = true)]
    api_token: String,
    /// R2's S3 endpoint (default: https://<account-id>.r2.cloudflarestorage.com).
    #[arg(long, env = "R2_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// An R2 API token's access key id (R2 is copied only with S3 keys).
    #[arg(long, env = "R2_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// Its secret access key.
    #[arg(long, env = "R2_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// Copy this D1 database (repeatable). With no --d1, --vectorize or --r2, everything
    /// is copied.
    #[arg(long = "d1", value_name = "NAME")]
    d1: Vec<String>,
    /// Copy this Vectorize index (repeatable).
    #[arg(long = "vectorize", value_name = "NAME")]
    vectorize: Vec<String>,
    /// Copy this R2 bucket (repeatable).
    #[arg(long = "r2", value_name = "BUCKET")]
    r2: Vec<String>,
    /// Remove on the destination what the source lacks (objects, vectors, and a
    /// database's differing contents). Without it nothing is ever removed.
    #[arg(long)]
    delete: bool,
}

/// Runs the copy, printing progress on standard error and the summary on standard
/// output.
pub fn run(
    store: &Store,
    direction: Direction,
    args: TransferArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let api = Api::new(&args.api_base, &args.account_id, &args.api_token)?;
    let s3 = match (&args.s3_access_key_id, &args.s3_secret_access_key) {
        (Some(id), Some(secret)) => {
            let endpoint = args
                .s3_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{}.r2.cloudflarestorage.com", args.account_id));
            Some(S3::new(&endpoint, Credentials::new(id, secret))?)
        }
        (None, None) => None,
        _ => {
            return Err(
                "give both --s3-access-key-id and --s3-secret-access-key, or neither".into(),
            )
        }
    };
    let selection = Selection {
        d1: args.d1,
        vectorize: args.vectorize,
        r2: args.r2,
    };
    let options = Options {
        delete: args.delete,
    };
    let verb = match direction {
        Direction::Pull => "pull",
        Direction::Push => "push",
    };
    let report = transfer::run(
        store,
        &Remote { api, s3 },
        direction,
        &selection,
        &options,
        &|line| eprintln!("{line}"),
    )
    .map_err(|e| {
        format!(
            "{verb} stopped: {e}. What was copied before stays; run the command again to continue"
        )
    })?;
    println!("{verb}: d1 databases: {}", report.d1);
    println!("{verb}: vectors: {}", report.vectors);
    println!("{verb}: r2 objects: {}", report.objects);
    Ok(())
}
