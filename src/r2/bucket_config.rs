//! A bucket's configuration documents (`bucket_config` in the catalog): its CORS rules
//! and its lifecycle rules, one JSON row each.
//!
//! A row is written only by a transaction that finds its bucket, and [`forget`] drops a
//! bucket's rows in the transaction that deletes the bucket, so a bucket created again
//! under the same name never inherits the old one's rules.

use redb::{ReadableTable, TableError, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::bucket::R2Bucket;
use super::catalog::{OrR2, BUCKETS, BUCKET_CONFIG};
use super::error::R2Error;
use super::store::no_such_bucket;

/// Which document a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cors,
    Lifecycle,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Cors, Kind::Lifecycle];

    fn name(self) -> &'static str {
        match self {
            Kind::Cors => "cors",
            Kind::Lifecycle => "lifecycle",
        }
    }
}

impl R2Bucket {
    /// The stored document of `kind`, if one was written.
    pub(crate) fn config<T: DeserializeOwned>(
        &self,
        op: &'static str,
        kind: Kind,
    ) -> Result<Option<T>, R2Error> {
        let txn = self.inner.catalog.begin_read().or_r2(op)?;
        if txn
            .open_table(BUCKETS)
            .or_r2(op)?
            .get(self.name.as_str())
            .or_r2(op)?
            .is_none()
        {
            return Err(no_such_bucket(op, &self.name));
        }
        let table = match txn.open_table(BUCKET_CONFIG) {
            Ok(t) => t,
            // The first write creates the table: until then no bucket has a row.
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e).or_r2(op),
        };
        let Some(row) = table.get((self.name.as_str(), kind.name())).or_r2(op)? else {
            return Ok(None);
        };
        serde_json::from_slice(row.value())
            .map(Some)
            .map_err(|e| R2Error::internal(op, format!("catalog row is corrupt: {e}")))
    }

    /// Replaces the document of `kind`, or removes it (`None`), in one durable
    /// transaction.
    pub(crate) fn set_config<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        kind: Kind,
        value: Option<&T>,
    ) -> Result<(), R2Error> {
        let json = value
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| R2Error::internal(op, format!("encoding a catalog row: {e}")))?;
        let txn = self.inner.begin_write(op)?;
        {
            if txn
                .open_table(BUCKETS)
                .or_r2(op)?
                .get(self.name.as_str())
                .or_r2(op)?
                .is_none()
            {
                return Err(no_such_bucket(op, &self.name));
            }
            let mut table = txn.open_table(BUCKET_CONFIG).or_r2(op)?;
            let key = (self.name.as_str(), kind.name());
            match &json {
                Some(bytes) => {
                    table.insert(key, bytes.as_slice()).or_r2(op)?;
                }
                None => {
                    table.remove(key).or_r2(op)?;
                }
            }
        }
        txn.commit().or_r2(op)
    }

    /// Drops every document, as a bucket has when it is new.
    pub(crate) fn clear_config(&self, op: &'static str) -> Result<(), R2Error> {
        for kind in Kind::ALL {
            self.set_config::<()>(op, kind, None)?;
        }
        Ok(())
    }
}

/// Drops every document of `bucket`, inside the transaction that deletes it.
pub(crate) fn forget(txn: &WriteTransaction, bucket: &str) -> Result<(), R2Error> {
    const OP: &str = "deleteBucket";
    let mut table = txn.open_table(BUCKET_CONFIG).or_r2(OP)?;
    for kind in Kind::ALL {
        table.remove((bucket, kind.name())).or_r2(OP)?;
    }
    Ok(())
}
