//! `tristore pull` and `tristore push`: copying D1 databases, Vectorize indexes and R2
//! buckets between the local data directory and a Cloudflare-compatible account (the
//! real one, or another tristore), through the same public APIs wrangler and the AWS
//! SDKs use: D1's REST export and import, Vectorize's v2 REST API, R2's S3 API.
//!
//! Every copy is idempotent, which is what makes it resumable: each run compares the
//! two sides and copies only what differs (an R2 object with the same size and ETag, a
//! Vectorize index with the same vector ids, a D1 database with the same tables and row
//! counts is skipped), so a run interrupted at any point is finished by running it
//! again. Nothing on the destination is removed unless [`Options::delete`] is set; the
//! source is only read. See `docs/design.md` ("Pull and push").

mod api;
mod d1;
pub mod http;
mod r2;
mod s3;
mod vectorize;

use crate::Store;

pub use api::Api;
pub use s3::S3;

/// Which way a copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Remote to local.
    Pull,
    /// Local to remote.
    Push,
}

/// What to copy: named databases, indexes and buckets; all of a kind when every list is
/// empty.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// D1 databases by name.
    pub d1: Vec<String>,
    /// Vectorize indexes by name.
    pub vectorize: Vec<String>,
    /// R2 buckets by name.
    pub r2: Vec<String>,
}

impl Selection {
    fn everything(&self) -> bool {
        self.d1.is_empty() && self.vectorize.is_empty() && self.r2.is_empty()
    }
}

/// How to copy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Remove on the destination what the source does not have (objects, vectors, a
    /// database's differing contents). Off by default: a copy only adds and updates.
    pub delete: bool,
}

/// What one kind of store's copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items written to the destination (databases, vectors, objects).
    pub copied: u64,
    /// Items left alone because the destination already had them equal.
    pub skipped: u64,
    /// Items removed from the destination (only with `--delete`).
    pub deleted: u64,
    /// Bytes of SQL dumps and object bodies copied (vectors are counted, not measured).
    pub bytes: u64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} copied, {} skipped (equal), {} deleted, {} bytes",
            self.copied, self.skipped, self.deleted, self.bytes
        )
    }
}

/// What a whole run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// D1 databases.
    pub d1: Counts,
    /// Vectors.
    pub vectors: Counts,
    /// R2 objects.
    pub objects: Counts,
}

/// A copy that could not finish: what failed and what to do about it. The source is
/// untouched; what was copied before the failure stays, and rerunning the command
/// continues from there.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransferError(pub String);

impl TransferError {
    fn new(message: impl Into<String>) -> Self {
        TransferError(message.into())
    }
}

impl From<crate::Error> for TransferError {
    fn from(e: crate::Error) -> Self {
        TransferError(format!("local store: {e}"))
    }
}

impl From<crate::r2::R2Error> for TransferError {
    fn from(e: crate::r2::R2Error) -> Self {
        TransferError(format!("local R2: {e}"))
    }
}

impl From<crate::vectorize::VectorizeError> for TransferError {
    fn from(e: crate::vectorize::VectorizeError) -> Self {
        TransferError(format!("local Vectorize: {e}"))
    }
}

impl From<crate::d1::D1Error> for TransferError {
    fn from(e: crate::d1::D1Error) -> Self {
        TransferError(format!("local D1: {e}"))
    }
}

/// Result of a transfer step.
pub type Result<T> = std::result::Result<T, TransferError>;

/// The remote account: its REST API (D1, Vectorize) and its S3 endpoint (R2).
pub struct Remote {
    /// The v4 REST API.
    pub api: Api,
    /// The S3 API; `None` when no S3 keys were given (then R2 is not copied).
    pub s3: Option<S3>,
}

/// Copies what `selection` names between `store` and `remote`, in `direction`,
/// printing progress with `progress`.
pub fn run(
    store: &Store,
    remote: &Remote,
    direction: Direction,
    selection: &Selection,
    options: &Options,
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let mut report = Report::default();
    let all = selection.everything();
    let d1_names = match (all, direction) {
        (false, _) => selection.d1.clone(),
        (true, Direction::Pull) => d1::remote_names(&remote.api)?,
        (true, Direction::Push) => store.d1().list()?.into_iter().map(|d| d.name).collect(),
    };
    for name in &d1_names {
        d1::copy(
            store,
            &remote.api,
            direction,
            name,
            options,
            &mut report.d1,
            progress,
        )?;
    }
    let index_names = match (all, direction) {
        (false, _) => selection.vectorize.clone(),
        (true, Direction::Pull) => vectorize::remote_names(&remote.api)?,
        (true, Direction::Push) => store
            .vectorize()
            .list()?
            .into_iter()
            .map(|i| i.name)
            .collect(),
    };
    for name in &index_names {
        vectorize::copy(
            store,
            &remote.api,
            direction,
            name,
            options,
            &mut report.vectors,
            progress,
        )?;
    }
    let bucket_names = match (all, direction) {
        (false, _) => selection.r2.clone(),
        (true, _) if remote.s3.is_none() => {
            progress("r2: skipped (no S3 access keys given: pass --s3-access-key-id and --s3-secret-access-key)");
            Vec::new()
        }
        (true, Direction::Pull) => remote.s3.as_ref().expect("checked above").buckets()?,
        (true, Direction::Push) => store
            .r2()
            .list_buckets()?
            .into_iter()
            .map(|b| b.name)
            .collect(),
    };
    if !bucket_names.is_empty() {
        let s3 = remote.s3.as_ref().ok_or_else(|| {
            TransferError::new(
                "copying R2 buckets needs the S3 API: pass --s3-access-key-id and --s3-secret-access-key (an R2 API token's keys)",
            )
        })?;
        for name in &bucket_names {
            r2::copy(
                store,
                s3,
                direction,
                name,
                options,
                &mut report.objects,
                progress,
            )?;
        }
    }
    Ok(report)
}
