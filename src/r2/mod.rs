//! R2: a content-addressed, crash-safe object store with the Worker binding's semantics.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use tristore::r2::{R2GetOptions, R2PutOptions, R2Range};
//!
//! let store = tristore::Store::open(dir.path())?;
//! store.r2().create_bucket("metacogna-vault")?;
//! let bucket = store.r2().bucket("metacogna-vault")?;
//! let put = bucket.put("user-1/doc-1/a.txt", b"hello world", &R2PutOptions::default())?.unwrap();
//! assert_eq!(put.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
//!
//! let range = R2GetOptions { range: Some(R2Range::Suffix(5)), ..Default::default() };
//! let got = bucket.get("user-1/doc-1/a.txt", &range)?.unwrap();
//! assert_eq!(got.bytes()?, b"world");
//! # Ok(()) }
//! ```
//!
//! Objects are rows in a redb catalog that name content-addressed blob files
//! (see docs/design.md for the layout, the write order and garbage collection).

mod blobs;
mod bucket;
mod bucket_config;
mod catalog;
mod collector;
pub mod conditional;
pub mod cors;
mod error;
mod group_commit;
pub mod lifecycle;
mod limits;
pub mod list;
mod multipart;
mod object;
pub mod presign;
pub mod range;
mod seal;
mod store;

pub use blobs::{BlobReader, HashAlgorithm};
pub use bucket::{ExpectedChecksum, R2Bucket, R2GetOptions, R2ObjectBody, R2PutOptions};
pub(crate) use catalog::copy_all as copy_catalog;
pub use collector::{Collector, Housekeeping, HousekeepingReport};
pub use conditional::{EtagCondition, R2Conditional};
pub use cors::CorsRule;
pub use error::{R2Error, R2ErrorKind};
pub use lifecycle::{LifecycleAge, LifecycleReport, LifecycleRule};
pub use limits::R2Limits;
pub use list::{R2ListOptions, R2Objects};
pub use multipart::{PartInfo, R2MultipartOptions, R2MultipartUpload, R2UploadedPart};
pub(crate) use object::now_ms;
pub use object::{iso8601_millis, Checksums, HttpMetadata, R2Object, ReturnedRange};
pub use range::R2Range;
pub use seal::EncryptionKey;
pub(crate) use seal::KEY_CHECK_FILE;

/// Entry points for the fuzz targets (`fuzz/`). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::io::Read;

    use super::seal::{self, EncryptionKey, SealReader};

    /// `plain` sealed under `key`, as a blob file holds it.
    pub fn seal(key: &EncryptionKey, plain: &[u8]) -> Vec<u8> {
        seal::seal(key, plain)
    }

    /// Reads `sealed` as a blob of `size` content bytes from `offset` on.
    pub fn read_sealed(
        key: &EncryptionKey,
        sealed: &[u8],
        size: u64,
        offset: u64,
    ) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        SealReader::open(std::io::Cursor::new(sealed), key, size, offset)?.read_to_end(&mut out)?;
        Ok(out)
    }
}
pub(crate) use store::{blobs_named, BlobHold};
pub use store::{validate_bucket_name, BucketInfo, GcReport, R2Store};
