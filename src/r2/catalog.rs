//! The R2 catalog (`<data>/r2/catalog.redb`): buckets, objects, multipart uploads, parts.
//!
//! ```text
//! buckets            bucket name        -> BucketRecord
//! objects/<bucket>   object key         -> ObjectRecord   (one table per bucket: keys sort as R2 lists them)
//! uploads            upload id          -> UploadRecord
//! parts              (upload id, part)  -> PartRecord
//! bucket_config      (bucket, kind)     -> JSON           (CORS rules, lifecycle rules)
//! ```
//! Values are postcard-encoded, except bucket configuration, which is JSON so that a
//! rule can gain a field without a migration. Every blob an object or part names was
//! durable before the transaction that wrote the row committed.

use redb::TableDefinition;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::blobs::BlobRef;
use super::error::R2Error;
use super::object::HttpMetadata;
use super::seal::Sealed;

pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
pub(crate) const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");
pub(crate) const BUCKET_CONFIG: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("bucket_config");

/// The objects table named `name` (see [`objects_table_name`]); keys are the object
/// keys' UTF-8 bytes, so that a list can seek past every key under a prefix.
pub(crate) fn objects_table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub(crate) fn objects_table_name(bucket: &str) -> String {
    format!("objects/{bucket}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BucketRecord {
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub bucket: String,
    pub key: String,
    #[serde(with = "super::object::stored::http")]
    pub http: HttpMetadata,
    pub custom: Vec<(String, String)>,
    pub storage_class: String,
    pub initiated: i64,
    /// How every part of the upload is sealed: kept after the record, where a row
    /// written before encryption existed has nothing (see [`UploadRecord::encode`]).
    #[serde(skip)]
    pub sealed: Option<Sealed>,
}

impl UploadRecord {
    /// The postcard-encoded record, then the postcard-encoded [`Sealed`] if any.
    pub fn encode(&self, op: &'static str) -> Result<Vec<u8>, R2Error> {
        let mut row = encode(op, self)?;
        if let Some(sealed) = &self.sealed {
            row.extend(encode(op, sealed)?);
        }
        Ok(row)
    }

    pub fn decode(op: &'static str, bytes: &[u8]) -> Result<UploadRecord, R2Error> {
        let corrupt =
            |e: postcard::Error| R2Error::internal(op, format!("catalog row is corrupt: {e}"));
        let (mut record, rest) =
            postcard::take_from_bytes::<UploadRecord>(bytes).map_err(corrupt)?;
        if !rest.is_empty() {
            record.sealed = Some(decode(op, rest)?);
        }
        Ok(record)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub blob: BlobRef,
    /// The part's ETag digest: MD5 of the content, or for an SSE-C part the start of
    /// its keyed address (see `bucket::ssec_etag`).
    pub md5: [u8; 16],
    pub uploaded: i64,
}

pub(crate) fn encode<T: Serialize>(op: &'static str, value: &T) -> Result<Vec<u8>, R2Error> {
    postcard::to_allocvec(value)
        .map_err(|e| R2Error::internal(op, format!("encoding a catalog row: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(op: &'static str, bytes: &[u8]) -> Result<T, R2Error> {
    postcard::from_bytes(bytes)
        .map_err(|e| R2Error::internal(op, format!("catalog row is corrupt: {e}")))
}

/// Copies every table of the snapshot `from` into `to`, a new catalog.
pub(crate) fn copy_all(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), R2Error> {
    use crate::catalog_file::copy_table;
    use redb::TableHandle;
    const OP: &str = "backup";
    copy_table(from, to, BUCKETS).or_r2(OP)?;
    copy_table(from, to, UPLOADS).or_r2(OP)?;
    copy_table(from, to, PARTS).or_r2(OP)?;
    copy_table(from, to, BUCKET_CONFIG).or_r2(OP)?;
    for table in from.list_tables().or_r2(OP)? {
        if table.name().starts_with("objects/") {
            copy_table(from, to, objects_table(table.name())).or_r2(OP)?;
        }
    }
    Ok(())
}

/// Maps any catalog failure to R2's internal error, keeping redb's explanation.
pub(crate) trait OrR2<T> {
    fn or_r2(self, op: &'static str) -> Result<T, R2Error>;
}

impl<T, E: Into<redb::Error>> OrR2<T> for Result<T, E> {
    fn or_r2(self, op: &'static str) -> Result<T, R2Error> {
        self.map_err(|e| R2Error::internal(op, format!("catalog: {}", e.into())))
    }
}
