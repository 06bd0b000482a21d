//! `R2Store`: buckets and garbage collection over `<data>/r2/`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redb::{ReadableTable, ReadableTableMetadata, TableHandle};
use serde::Serialize;

use super::blobs::{BlobRef, BlobStore};
use super::bucket::R2Bucket;
use super::catalog::{
    decode, encode, objects_table, objects_table_name, BucketRecord, OrR2, PartRecord,
    UploadRecord, BUCKETS, PARTS, UPLOADS,
};
use super::error::{R2Error, R2ErrorKind};
use super::limits::R2Limits;
use super::object::ObjectRecord;
use super::seal::{sealed_len, EncryptionKey, Sealed};

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub catalog: crate::catalog_file::CatalogFile,
    pub blobs: BlobStore,
    pub limits: R2Limits,
    /// `false` only in the benchmark mode that skips fsync (see `StoreOptions`).
    pub durable: bool,
    /// The key new content is encrypted at rest with, if the store has one.
    pub store_key: Option<EncryptionKey>,
    /// Backups copying blobs now: while there is one, collection removes no blob (a
    /// backup's snapshot may name a blob that a later write released).
    pub backups: std::sync::atomic::AtomicUsize,
    /// Object writes waiting for, or applied to, the catalog transaction they share.
    pub group_writer: super::group_commit::GroupWriter,
}

impl Inner {
    /// A catalog write transaction, durable on commit unless the store was opened in
    /// the benchmark-only relaxed mode.
    pub fn begin_write(&self, op: &'static str) -> Result<redb::WriteTransaction, R2Error> {
        let mut txn = self.catalog.begin_write().or_r2(op)?;
        if !self.durable {
            txn.set_durability(redb::Durability::None);
        }
        Ok(txn)
    }

    /// The key new content is sealed with and how its row records that: the request's
    /// SSE-C key, else the store's key, else none.
    pub fn sealing(&self, customer: Option<&EncryptionKey>) -> Option<(EncryptionKey, Sealed)> {
        match customer {
            Some(key) => Some((key.clone(), Sealed::Customer { key_md5: key.md5() })),
            None => self.store_key.clone().map(|key| (key, Sealed::Store)),
        }
    }

    /// The key that opens content sealed as `sealed`, given the request's SSE-C key
    /// (`what` names the object or upload in errors). S3's rules: an SSE-C object needs
    /// its key, and SSE-C parameters on anything else are an error, never ignored.
    pub fn unsealing(
        &self,
        op: &'static str,
        what: &str,
        sealed: Option<Sealed>,
        customer: Option<&EncryptionKey>,
    ) -> Result<Option<EncryptionKey>, R2Error> {
        match (sealed, customer) {
            (None, None) => Ok(None),
            (Some(Sealed::Customer { key_md5 }), Some(key)) if key.md5() == key_md5 => {
                Ok(Some(key.clone()))
            }
            (Some(Sealed::Customer { .. }), Some(_)) => Err(R2Error::new(
                op,
                R2ErrorKind::AccessDenied,
                format!("The SSE-C key is not the one the {what} was written with (compare its MD5 with ssecKeyMd5 / x-amz-server-side-encryption-customer-key-MD5)."),
            )),
            (Some(Sealed::Customer { .. }), None) => Err(R2Error::new(
                op,
                R2ErrorKind::InvalidRequest,
                format!("The {what} was stored using a form of Server Side Encryption. The correct parameters must be provided: send its SSE-C key."),
            )),
            (None | Some(Sealed::Store), Some(_)) => Err(R2Error::new(
                op,
                R2ErrorKind::InvalidRequest,
                format!("The encryption parameters are not applicable to this {what}: it was not written with an SSE-C key, so send none."),
            )),
            (Some(Sealed::Store), None) => self.store_key.clone().map(Some).ok_or_else(|| {
                R2Error::internal(
                    op,
                    format!("the {what} is encrypted at rest and this store was opened without its key: start tristore with --encryption-key-file"),
                )
            }),
        }
    }

    /// To call with the row a write transaction is replacing or removing, before it
    /// commits: see [`BlobStore::release`].
    pub fn release(
        &self,
        op: &'static str,
        old: Option<redb::AccessGuard<'_, &'static [u8]>>,
    ) -> Result<(), R2Error> {
        let Some(old) = old else { return Ok(()) };
        let record = super::object::ObjectRecord::decode(op, old.value())?;
        if record.inline.is_some() {
            // Its content goes with the row: no blob file for a reader to be opening.
            return Ok(());
        }
        self.blobs
            .release(&record.parts)
            .map_err(|e| R2Error::internal(op, format!("releasing blobs: {e}")))
    }
}

/// The R2 side of a [`Store`](crate::Store): buckets, and collection of unreferenced blobs.
#[derive(Clone)]
pub struct R2Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for R2Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("R2Store")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// A bucket as R2's REST API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketInfo {
    /// The name.
    pub name: String,
    /// Creation time, ISO 8601.
    pub creation_date: String,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs referenced by an object or a part.
    pub live_blobs: usize,
    /// Unreferenced blobs removed.
    pub deleted_blobs: usize,
    /// Bytes they held.
    pub deleted_bytes: u64,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub young_blobs: usize,
    /// Temporary files no write was streaming into, removed.
    pub deleted_temp_files: usize,
}

/// R2's bucket name rule: 3-63 characters, lowercase letters, digits and hyphens,
/// starting and ending with a letter or digit.
pub fn validate_bucket_name(name: &str) -> Result<(), R2Error> {
    let b = name.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(R2Error::new(
            "createBucket",
            R2ErrorKind::InvalidBucketName,
            format!("The specified bucket name {name:?} is not valid: use 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"),
        ))
    }
}

impl R2Store {
    pub(crate) fn open(
        dir: &Path,
        limits: R2Limits,
        durable: bool,
        inline_max: u64,
        store_key: Option<EncryptionKey>,
    ) -> Result<R2Store, R2Error> {
        const OP: &str = "open";
        super::seal::check_store_key(dir, store_key.as_ref())
            .map_err(|e| R2Error::internal(OP, e))?;
        let blobs = BlobStore::open(dir.to_path_buf(), durable, inline_max)
            .map_err(|e| R2Error::internal(OP, format!("{}: {e}", dir.display())))?;
        let path = dir.join("catalog.redb");
        let catalog = crate::catalog_file::CatalogFile::open(&path)
            .map_err(|e| R2Error::internal(OP, format!("{}: {e}", path.display())))?;
        let txn = catalog.begin_write().or_r2(OP)?;
        txn.open_table(BUCKETS).or_r2(OP)?;
        txn.open_table(UPLOADS).or_r2(OP)?;
        txn.open_table(PARTS).or_r2(OP)?;
        txn.commit().or_r2(OP)?;
        Ok(R2Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                catalog,
                blobs,
                limits,
                durable,
                store_key,
                backups: Default::default(),
                group_writer: Default::default(),
            }),
        })
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) -> Result<BucketInfo, R2Error> {
        const OP: &str = "createBucket";
        validate_bucket_name(name)?;
        let record = BucketRecord {
            created_at: crate::store::now_iso8601(),
        };
        let txn = self.inner.begin_write(OP)?;
        {
            let mut buckets = txn.open_table(BUCKETS).or_r2(OP)?;
            if buckets.get(name).or_r2(OP)?.is_some() {
                return Err(R2Error::new(
                    OP,
                    R2ErrorKind::BucketAlreadyExists,
                    format!("The bucket {name} already exists"),
                ));
            }
            buckets
                .insert(name, encode(OP, &record)?.as_slice())
                .or_r2(OP)?;
            txn.open_table(objects_table(&objects_table_name(name)))
                .or_r2(OP)?;
        }
        txn.commit().or_r2(OP)?;
        Ok(BucketInfo {
            name: name.to_owned(),
            creation_date: record.created_at,
        })
    }

    /// Every bucket, by name.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>, R2Error> {
        const OP: &str = "listBuckets";
        let txn = self.inner.catalog.begin_read().or_r2(OP)?;
        let buckets = txn.open_table(BUCKETS).or_r2(OP)?;
        let mut out = Vec::new();
        for entry in buckets.iter().or_r2(OP)? {
            let (name, value) = entry.or_r2(OP)?;
            let record: BucketRecord = decode(OP, value.value())?;
            out.push(BucketInfo {
                name: name.value().to_owned(),
                creation_date: record.created_at,
            });
        }
        Ok(out)
    }

    /// Deletes an empty bucket; a bucket with objects or uploads in progress is refused.
    pub fn delete_bucket(&self, name: &str) -> Result<(), R2Error> {
        const OP: &str = "deleteBucket";
        let table_name = objects_table_name(name);
        let txn = self.inner.begin_write(OP)?;
        {
            let mut buckets = txn.open_table(BUCKETS).or_r2(OP)?;
            if buckets.remove(name).or_r2(OP)?.is_none() {
                return Err(no_such_bucket(OP, name));
            }
            let objects = txn.open_table(objects_table(&table_name)).or_r2(OP)?;
            let uploads = txn.open_table(UPLOADS).or_r2(OP)?;
            let mut busy = !objects.is_empty().or_r2(OP)?;
            for entry in uploads.iter().or_r2(OP)? {
                let (_, v) = entry.or_r2(OP)?;
                busy |= decode::<UploadRecord>(OP, v.value())?.bucket == name;
            }
            if busy {
                return Err(R2Error::new(OP, R2ErrorKind::BucketNotEmpty, format!("The bucket {name} is not empty: delete its objects and abort its uploads first")));
            }
        }
        txn.delete_table(objects_table(&table_name)).or_r2(OP)?;
        super::bucket_config::forget(&txn, name)?;
        txn.commit().or_r2(OP)
    }

    /// A handle on bucket `name`.
    pub fn bucket(&self, name: &str) -> Result<R2Bucket, R2Error> {
        const OP: &str = "bucket";
        let txn = self.inner.catalog.begin_read().or_r2(OP)?;
        if txn
            .open_table(BUCKETS)
            .or_r2(OP)?
            .get(name)
            .or_r2(OP)?
            .is_none()
        {
            return Err(no_such_bucket(OP, name));
        }
        Ok(R2Bucket {
            inner: Arc::clone(&self.inner),
            name: name.to_owned(),
            table: objects_table_name(name),
        })
    }

    /// Mark-and-sweep: removes blobs no object or part references and that are older
    /// than `grace`, and the temporary files no write is streaming into (leftovers of
    /// failed writes and of a process that died). Placing blobs pauses while it marks
    /// and sweeps, so a blob being committed is never taken for garbage; bodies keep
    /// streaming in meanwhile. The grace period spares blobs that readers may still be
    /// about to open (an object read while it is deleted).
    pub fn gc(&self, grace: Duration) -> Result<GcReport, R2Error> {
        const OP: &str = "gc";
        let io = |e: std::io::Error| R2Error::internal(OP, format!("collecting garbage: {e}"));
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map(|t| t <= cutoff)
                .unwrap_or(false)
        };
        // Listed before the guard is taken: a blob placed after the listing is simply
        // not a candidate, and writers are not held up by the directory walk.
        let mut candidates = Vec::new();
        for shard in read_dir(&self.inner.blobs.blobs_dir()).map_err(io)? {
            for blob in read_dir(&shard).map_err(io)? {
                let name = blob.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if let Some(hash) = parse_hash(name) {
                    candidates.push((hash, blob));
                }
            }
        }
        let mut report = GcReport::default();
        let mut swept_shards = HashSet::new();
        {
            let _exclusive = self.inner.blobs.exclusive();
            let live = self.live_blobs()?;
            report.live_blobs = live.len();
            let backing_up = self.inner.backups.load(Ordering::SeqCst) > 0;
            for (hash, blob) in candidates {
                if live.contains(&hash) {
                    continue;
                }
                if backing_up || !old(&blob) {
                    report.young_blobs += 1;
                    continue;
                }
                let size = std::fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
                if remove_if_present(&blob).map_err(io)? {
                    report.deleted_blobs += 1;
                    report.deleted_bytes += size;
                    swept_shards.insert(blob.parent().map(Path::to_path_buf));
                }
            }
        }
        // A removal a crash undoes only brings garbage back, so the directories are
        // synced after the guard is released.
        for shard in swept_shards.into_iter().flatten() {
            crate::fsutil::sync_dir(&shard).map_err(|e| R2Error::internal(OP, e))?;
        }
        for tmp in read_dir(&self.inner.blobs.tmp_dir()).map_err(io)? {
            if !self.inner.blobs.is_receiving(&tmp) && remove_if_present(&tmp).map_err(io)? {
                report.deleted_temp_files += 1;
            }
        }
        Ok(report)
    }

    /// Aborts the multipart uploads started at least `max_age` ago, as R2's default
    /// lifecycle rule does after 7 days; their parts are left for [`gc`](Self::gc).
    /// Returns how many were aborted.
    pub fn expire_uploads(&self, max_age: Duration) -> Result<usize, R2Error> {
        const OP: &str = "expireUploads";
        let age = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = super::now_ms().saturating_sub(age);
        let txn = self.inner.begin_write(OP)?;
        let expired = {
            let mut uploads = txn.open_table(UPLOADS).or_r2(OP)?;
            let mut expired = Vec::new();
            for entry in uploads.iter().or_r2(OP)? {
                let (id, value) = entry.or_r2(OP)?;
                if decode::<UploadRecord>(OP, value.value())?.initiated <= cutoff {
                    expired.push(id.value().to_owned());
                }
            }
            for id in &expired {
                uploads.remove(id.as_str()).or_r2(OP)?;
                super::multipart::remove_parts(OP, &txn, id)?;
            }
            expired.len()
        };
        txn.commit().or_r2(OP)?;
        Ok(expired)
    }

    /// Every blob hash an object or a part names.
    fn live_blobs(&self) -> Result<HashSet<[u8; 32]>, R2Error> {
        const OP: &str = "gc";
        let txn = self.inner.catalog.begin_read().or_r2(OP)?;
        Ok(blobs_named(OP, &txn)?.into_iter().map(|b| b.hash).collect())
    }

    /// Stops collection from removing blobs until the hold is dropped. Taken under the
    /// collector's guard, so a collection already marking finishes first, and any
    /// catalog snapshot taken after this names only blobs that stay.
    pub(crate) fn hold_blobs(&self) -> BlobHold {
        let _exclusive = self.inner.blobs.exclusive();
        self.inner.backups.fetch_add(1, Ordering::SeqCst);
        BlobHold {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A write transaction that is never committed: while it is held no other R2 write
    /// can begin, so a snapshot read under it is the state at one instant.
    pub(crate) fn pause_writes(&self) -> Result<redb::WriteTransaction, R2Error> {
        self.inner.catalog.begin_write().or_r2("backup")
    }

    /// The catalog as it is now, and stays for as long as the transaction is held.
    pub(crate) fn snapshot(&self) -> Result<redb::ReadTransaction, R2Error> {
        self.inner.catalog.begin_read().or_r2("backup")
    }

    /// The R2 directory (`<data>/r2`).
    pub(crate) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file of the blob `hash`.
    pub(crate) fn blob_path(&self, hash: &[u8; 32]) -> PathBuf {
        self.inner.blobs.path_of(hash)
    }

    /// Checks that every blob the catalog names (for an object or an upload's part)
    /// exists with the recorded size, and that every inline object's content matches
    /// its BLAKE3; returns the problems found (empty when consistent).
    pub fn fsck(&self) -> Result<Vec<String>, R2Error> {
        const OP: &str = "fsck";
        let txn = self.inner.catalog.begin_read().or_r2(OP)?;
        let mut problems = Vec::new();
        // A sealed blob's file is longer than its content (see `seal`).
        let check = |owner: &str, blob: BlobRef, sealed: bool| {
            let path = self.inner.blobs.path_of(&blob.hash);
            let expected = BlobFile::of(blob, sealed).len;
            match std::fs::metadata(&path) {
                Ok(m) if m.len() == expected => None,
                Ok(m) => Some(format!(
                    "{owner}: blob {} has {} bytes, expected {expected}",
                    path.display(),
                    m.len(),
                )),
                Err(e) => Some(format!("{owner}: blob {}: {e}", path.display())),
            }
        };
        for_each_object(OP, &txn, |table, key, record| {
            let owner = format!("{table} {}", String::from_utf8_lossy(key));
            let sealed = record.sealed.is_some();
            match &record.inline {
                // Decoding checked the length; plain content must still match its
                // address (sealed content's address is keyed: not checkable here).
                Some(body) if !sealed => {
                    if record.parts.first().map(|p| p.hash) != Some(*blake3::hash(body).as_bytes())
                    {
                        problems.push(format!("{owner}: inline content does not match its BLAKE3"));
                    }
                }
                Some(_) => {}
                None => problems.extend(
                    record
                        .parts
                        .into_iter()
                        .filter_map(|p| check(&owner, p, sealed)),
                ),
            }
        })?;
        let uploads = txn.open_table(UPLOADS).or_r2(OP)?;
        for entry in txn.open_table(PARTS).or_r2(OP)?.iter().or_r2(OP)? {
            let (k, v) = entry.or_r2(OP)?;
            let (upload, number) = k.value();
            let part: PartRecord = decode(OP, v.value())?;
            let sealed = match uploads.get(upload).or_r2(OP)? {
                Some(row) => UploadRecord::decode(OP, row.value())?.sealed.is_some(),
                None => false,
            };
            problems.extend(check(
                &format!("upload {upload} part {number}"),
                part.blob,
                sealed,
            ));
        }
        Ok(problems)
    }
}

/// While this lives, collection removes no blob (see [`R2Store::hold_blobs`]).
pub(crate) struct BlobHold {
    inner: Arc<Inner>,
}

impl Drop for BlobHold {
    fn drop(&mut self) {
        self.inner.backups.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A blob file: its name (the content address) and its length on disk, which is
/// longer than the content for a sealed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlobFile {
    pub hash: [u8; 32],
    pub len: u64,
}

impl BlobFile {
    fn of(blob: BlobRef, sealed: bool) -> BlobFile {
        let len = if sealed {
            sealed_len(blob.size)
        } else {
            blob.size
        };
        BlobFile {
            hash: blob.hash,
            len,
        }
    }
}

/// Every blob file an object or an upload's part of the snapshot `txn` names, once each.
pub(crate) fn blobs_named(
    op: &'static str,
    txn: &redb::ReadTransaction,
) -> Result<Vec<BlobFile>, R2Error> {
    let mut named = HashSet::new();
    for_each_object(op, txn, |_, _, record| {
        if record.inline.is_none() {
            let sealed = record.sealed.is_some();
            named.extend(record.parts.iter().map(|&p| BlobFile::of(p, sealed)))
        }
    })?;
    let uploads = txn.open_table(UPLOADS).or_r2(op)?;
    for entry in txn.open_table(PARTS).or_r2(op)?.iter().or_r2(op)? {
        let (k, v) = entry.or_r2(op)?;
        let sealed = match uploads.get(k.value().0).or_r2(op)? {
            Some(row) => UploadRecord::decode(op, row.value())?.sealed.is_some(),
            None => false,
        };
        named.insert(BlobFile::of(
            decode::<PartRecord>(op, v.value())?.blob,
            sealed,
        ));
    }
    Ok(named.into_iter().collect())
}

/// Calls `f(table name, key, record)` for every object of every bucket.
fn for_each_object(
    op: &'static str,
    txn: &redb::ReadTransaction,
    mut f: impl FnMut(&str, &[u8], ObjectRecord),
) -> Result<(), R2Error> {
    let names: Vec<String> = txn
        .list_tables()
        .or_r2(op)?
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with("objects/"))
        .collect();
    for name in names {
        let table = txn.open_table(objects_table(&name)).or_r2(op)?;
        for entry in table.iter().or_r2(op)? {
            let (k, v) = entry.or_r2(op)?;
            f(&name, k.value(), ObjectRecord::decode(op, v.value())?);
        }
    }
    Ok(())
}

pub(super) fn no_such_bucket(op: &'static str, name: &str) -> R2Error {
    R2Error::new(
        op,
        R2ErrorKind::NoSuchBucket,
        format!("The specified bucket {name} does not exist."),
    )
}

/// Removes `path`; `false` if it was already gone (a write finished with it meanwhile).
fn remove_if_present(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn parse_hash(name: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(name, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_removes_no_blob_while_a_backup_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = R2Store::open(dir.path(), R2Limits::default(), true, 0, None).unwrap();
        store.create_bucket("bkt").unwrap();
        let bucket = store.bucket("bkt").unwrap();
        bucket
            .put("k", vec![7u8; 1000], &Default::default())
            .unwrap();
        let hold = store.hold_blobs();
        // The snapshot a backup copies from names the blob; then the object goes.
        let snapshot = store.snapshot().unwrap();
        bucket.delete(&["k"]).unwrap();
        let blobs = blobs_named("test", &snapshot).unwrap();
        assert_eq!(blobs.len(), 1);
        let held = store.gc(Duration::ZERO).unwrap();
        assert_eq!((held.deleted_blobs, held.young_blobs), (0, 1));
        assert!(store.blob_path(&blobs[0].hash).exists());
        drop(hold);
        assert_eq!(store.gc(Duration::ZERO).unwrap().deleted_blobs, 1);
    }
}
