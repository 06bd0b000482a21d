//! Multipart uploads (spec 5.6): parts are blobs of their own; completing writes one
//! object row naming them in order.

use std::io::Read;

use md5::Digest;
use redb::ReadableTable;
use serde::Serialize;

use super::bucket::{ssec_etag, storage_class, write_error, write_object_row, R2Bucket};
use super::catalog::{decode, encode, OrR2, PartRecord, UploadRecord, PARTS, UPLOADS};
use super::conditional::R2Conditional;
use super::error::{R2Error, R2ErrorKind};
use super::object::{new_version, now_ms, Checksums, HttpMetadata, ObjectRecord, R2Object};
use super::seal::{EncryptionKey, Sealed};

/// `R2MultipartOptions`.
#[derive(Debug, Clone, Default)]
pub struct R2MultipartOptions {
    /// HTTP headers the object will carry.
    pub http_metadata: HttpMetadata,
    /// Custom metadata the object will carry.
    pub custom_metadata: Vec<(String, String)>,
    /// `Standard` (default) or `InfrequentAccess`.
    pub storage_class: Option<String>,
    /// SSE-C (`ssecKey`): every part must be sent with this key, and every read of the
    /// object too.
    pub ssec_key: Option<EncryptionKey>,
}

/// `R2UploadedPart`: what `complete` needs back for each part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct R2UploadedPart {
    /// 1..=10000.
    pub part_number: u32,
    /// MD5 hex of the part.
    pub etag: String,
}

/// A stored part, as S3's ListParts describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartInfo {
    /// 1..=10000.
    pub part_number: u32,
    /// MD5 hex of the part.
    pub etag: String,
    /// Bytes.
    pub size: u64,
    /// Upload time, ms since the epoch.
    pub uploaded: i64,
}

/// `R2MultipartUpload`: a handle on one upload.
#[derive(Debug, Clone)]
pub struct R2MultipartUpload {
    bucket: R2Bucket,
    /// The key the object will have.
    pub key: String,
    /// The upload's id.
    pub upload_id: String,
}

impl R2Bucket {
    /// Starts an upload; parts can be sent right away.
    pub fn create_multipart_upload(
        &self,
        key: &str,
        options: &R2MultipartOptions,
    ) -> Result<R2MultipartUpload, R2Error> {
        const OP: &str = "createMultipartUpload";
        self.check_key(OP, key)?;
        self.check_custom_metadata(OP, &options.custom_metadata)?;
        let record = UploadRecord {
            bucket: self.name.clone(),
            key: key.to_owned(),
            http: options.http_metadata.clone(),
            custom: options.custom_metadata.clone(),
            storage_class: storage_class(options.storage_class.as_deref())?,
            initiated: now_ms(),
            sealed: self
                .inner
                .sealing(options.ssec_key.as_ref())
                .map(|(_, sealed)| sealed),
        };
        let upload_id = new_version();
        let txn = self.inner.begin_write(OP)?;
        txn.open_table(UPLOADS)
            .or_r2(OP)?
            .insert(upload_id.as_str(), record.encode(OP)?.as_slice())
            .or_r2(OP)?;
        txn.commit().or_r2(OP)?;
        Ok(self.resume_multipart_upload(key, &upload_id))
    }

    /// A handle on an existing upload; not checked until it is used, as in R2.
    pub fn resume_multipart_upload(&self, key: &str, upload_id: &str) -> R2MultipartUpload {
        R2MultipartUpload {
            bucket: self.clone(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
        }
    }

    /// Uploads in progress in this bucket: (key, upload id, initiated ms), by key.
    pub fn list_multipart_uploads(&self) -> Result<Vec<(String, String, i64)>, R2Error> {
        const OP: &str = "listMultipartUploads";
        let txn = self.inner.catalog.begin_read().or_r2(OP)?;
        let table = txn.open_table(UPLOADS).or_r2(OP)?;
        let mut out = Vec::new();
        for entry in table.iter().or_r2(OP)? {
            let (id, value) = entry.or_r2(OP)?;
            let upload = UploadRecord::decode(OP, value.value())?;
            if upload.bucket == self.name {
                out.push((upload.key, id.value().to_owned(), upload.initiated));
            }
        }
        out.sort();
        Ok(out)
    }
}

impl R2MultipartUpload {
    fn upload(
        &self,
        op: &'static str,
        txn_table: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<UploadRecord, R2Error> {
        let no_such = || {
            R2Error::new(
                op,
                R2ErrorKind::NoSuchUpload,
                "The specified multipart upload does not exist.",
            )
        };
        let record = match txn_table.get(self.upload_id.as_str()).or_r2(op)? {
            Some(v) => UploadRecord::decode(op, v.value())?,
            None => return Err(no_such()),
        };
        if record.bucket != self.bucket.name || record.key != self.key {
            return Err(no_such());
        }
        Ok(record)
    }

    fn check_exists(&self, op: &'static str) -> Result<UploadRecord, R2Error> {
        let txn = self.bucket.inner.catalog.begin_read().or_r2(op)?;
        let table = txn.open_table(UPLOADS).or_r2(op)?;
        self.upload(op, &table)
    }

    /// Uploads part `part_number` (replacing an earlier one of that number) of an
    /// upload created without an SSE-C key.
    pub fn upload_part(
        &self,
        part_number: u32,
        value: impl AsRef<[u8]>,
    ) -> Result<R2UploadedPart, R2Error> {
        let value = value.as_ref();
        self.upload_part_reader(part_number, &mut &value[..], value.len() as u64, None)
    }

    /// Streams `length` bytes from `body` as part `part_number`; `ssec_key` is the
    /// upload's SSE-C key, if it was created with one.
    pub fn upload_part_reader(
        &self,
        part_number: u32,
        body: &mut dyn Read,
        length: u64,
        ssec_key: Option<&EncryptionKey>,
    ) -> Result<R2UploadedPart, R2Error> {
        const OP: &str = "uploadPart";
        let inner = &self.bucket.inner;
        if !(1..=inner.limits.max_parts).contains(&part_number) {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidArgument,
                format!("Part number must be between 1 and {} (inclusive). Actual value was: {part_number}", inner.limits.max_parts),
            ));
        }
        let upload = self.check_exists(OP)?;
        let seal = self.key_for(OP, &upload, ssec_key)?;
        let written = inner
            .blobs
            .write(
                body,
                Some(length),
                inner.limits.max_upload_bytes,
                None,
                false,
                seal.as_ref(),
            )
            .map_err(|e| write_error(OP, e, inner.limits.max_upload_bytes))?;
        // The part's ETag; an SSE-C part's comes from its keyed address (see `put`).
        let etag = match upload.sealed {
            Some(Sealed::Customer { .. }) => ssec_etag(&written.blob),
            _ => written.md5,
        };
        let part = PartRecord {
            blob: written.blob,
            md5: etag,
            uploaded: now_ms(),
        };
        let txn = inner.begin_write(OP)?;
        {
            // Re-check inside the transaction: the upload may have completed meanwhile.
            self.upload(OP, &txn.open_table(UPLOADS).or_r2(OP)?)?;
            txn.open_table(PARTS)
                .or_r2(OP)?
                .insert(
                    (self.upload_id.as_str(), part_number),
                    encode(OP, &part)?.as_slice(),
                )
                .or_r2(OP)?;
        }
        txn.commit().or_r2(OP)?;
        Ok(R2UploadedPart {
            part_number,
            etag: hex::encode(etag),
        })
    }

    /// The key that seals `upload`'s parts, given the request's SSE-C key. A key other
    /// than the upload's is a malformed request (400, as S3 answers a part sent with
    /// it), where a read with another key is refused access (403).
    fn key_for(
        &self,
        op: &'static str,
        upload: &UploadRecord,
        ssec_key: Option<&EncryptionKey>,
    ) -> Result<Option<EncryptionKey>, R2Error> {
        self.bucket
            .inner
            .unsealing(op, "upload", upload.sealed, ssec_key)
            .map_err(|e| match e.kind {
                R2ErrorKind::AccessDenied => R2Error {
                    kind: R2ErrorKind::InvalidRequest,
                    ..e
                },
                _ => e,
            })
    }

    /// Checks an SSE-C key against the one the upload was created with (or none).
    pub fn check_ssec_key(&self, ssec_key: Option<&EncryptionKey>) -> Result<(), R2Error> {
        const OP: &str = "completeMultipartUpload";
        let upload = self.check_exists(OP)?;
        self.key_for(OP, &upload, ssec_key).map(drop)
    }

    /// The parts stored so far, by part number.
    pub fn list_parts(&self) -> Result<Vec<PartInfo>, R2Error> {
        const OP: &str = "listParts";
        let txn = self.bucket.inner.catalog.begin_read().or_r2(OP)?;
        self.upload(OP, &txn.open_table(UPLOADS).or_r2(OP)?)?;
        let parts = txn.open_table(PARTS).or_r2(OP)?;
        let mut out = Vec::new();
        for entry in parts
            .range((self.upload_id.as_str(), 0)..=(self.upload_id.as_str(), u32::MAX))
            .or_r2(OP)?
        {
            let (k, v) = entry.or_r2(OP)?;
            let p: PartRecord = decode(OP, v.value())?;
            out.push(PartInfo {
                part_number: k.value().1,
                etag: hex::encode(p.md5),
                size: p.blob.size,
                uploaded: p.uploaded,
            });
        }
        Ok(out)
    }

    /// Abandons the upload and its parts. Idempotent.
    pub fn abort(&self) -> Result<(), R2Error> {
        const OP: &str = "abortMultipartUpload";
        let txn = self.bucket.inner.begin_write(OP)?;
        {
            let mut uploads = txn.open_table(UPLOADS).or_r2(OP)?;
            if self.upload(OP, &uploads).is_err() {
                return Ok(());
            }
            uploads.remove(self.upload_id.as_str()).or_r2(OP)?;
            remove_parts(OP, &txn, &self.upload_id)?;
        }
        txn.commit().or_r2(OP)
    }

    /// Assembles the listed parts into the object. The list names each part once, in
    /// ascending order of part number (as S3 requires), at most `max_parts` of them.
    /// Every part but the last must be at least the minimum part size and all of them
    /// the same size; the last may be smaller. The ETag is the MD5 of the parts' MD5s,
    /// then `-<count>`.
    pub fn complete(&self, parts: &[R2UploadedPart]) -> Result<R2Object, R2Error> {
        self.complete_if(parts, None)?.ok_or_else(|| {
            R2Error::new(
                "completeMultipartUpload",
                R2ErrorKind::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            )
        })
    }

    /// [`complete`](Self::complete) that stores the object only if `only_if` holds
    /// against the object there now (`Ok(None)` otherwise, and the upload stays open).
    pub fn complete_if(
        &self,
        parts: &[R2UploadedPart],
        only_if: Option<&R2Conditional>,
    ) -> Result<Option<R2Object>, R2Error> {
        const OP: &str = "completeMultipartUpload";
        let inner = &self.bucket.inner;
        if parts.is_empty() {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidPart,
                "You must specify at least one part",
            ));
        }
        // Checked before any part is looked up: a list naming one part many times would
        // otherwise make an object far larger than its upload (and cost a lookup each).
        let max = inner.limits.max_parts;
        if parts.len() > max as usize {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidArgument,
                format!(
                    "An upload has at most {max} parts, but {} were listed.",
                    parts.len()
                ),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ));
        }
        // Everything up to the row's write only reads, so its errors are refusals that
        // leave the group's transaction untouched (see `write_grouped`).
        inner.write_grouped(OP, |txn| {
            let record = match self.completed_record(OP, txn, parts) {
                Ok(record) => record,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let table = &self.bucket.table;
            if !write_object_row(inner, OP, txn, table, &self.key, &record, only_if)? {
                return Ok(Ok(None));
            }
            let mut uploads = txn.open_table(UPLOADS).or_r2(OP)?;
            uploads.remove(self.upload_id.as_str()).or_r2(OP)?;
            remove_parts(OP, txn, &self.upload_id)?;
            Ok(Ok(Some(record.to_object(&self.key))))
        })?
    }

    /// The object row completing the upload with `parts`, checked against the stored
    /// parts as R2 checks them.
    fn completed_record(
        &self,
        op: &'static str,
        txn: &redb::WriteTransaction,
        parts: &[R2UploadedPart],
    ) -> Result<ObjectRecord, R2Error> {
        let inner = &self.bucket.inner;
        // R2's text; which part is wrong is not said, as in R2.
        let invalid_part = || {
            R2Error::new(
                op,
                R2ErrorKind::InvalidPart,
                "One or more of the specified parts could not be found.",
            )
        };
        let upload = self.upload(op, &txn.open_table(UPLOADS).or_r2(op)?)?;
        let stored = txn.open_table(PARTS).or_r2(op)?;
        let mut records = Vec::with_capacity(parts.len());
        for p in parts {
            let record: PartRecord = match stored
                .get((self.upload_id.as_str(), p.part_number))
                .or_r2(op)?
            {
                Some(v) => decode(op, v.value())?,
                None => return Err(invalid_part()),
            };
            if hex::encode(record.md5) != p.etag.trim_matches('"') {
                return Err(invalid_part());
            }
            records.push(record);
        }
        let (last, body) = records.split_last().expect("parts is not empty");
        if let Some(first) = body.first() {
            let size = first.blob.size;
            if size < inner.limits.min_part_bytes {
                return Err(R2Error::new(
                    op,
                    R2ErrorKind::EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size.",
                ));
            }
            if body.iter().any(|r| r.blob.size != size) || last.blob.size > size {
                return Err(R2Error::new(op, R2ErrorKind::NonUniformParts, "There was a problem with the multipart upload: all non-trailing parts must have the same length."));
            }
        }
        let mut md5 = md5::Md5::new();
        for r in &records {
            md5.update(r.md5);
        }
        Ok(ObjectRecord {
            version: new_version(),
            size: records.iter().map(|r| r.blob.size).sum(),
            etag: format!("{}-{}", hex::encode(md5.finalize()), records.len()),
            uploaded: now_ms(),
            http: upload.http,
            custom: upload.custom,
            checksums: Checksums::default(),
            storage_class: upload.storage_class,
            parts: records.iter().map(|r| r.blob).collect(),
            inline: None,
            sealed: upload.sealed,
        })
    }
}

/// Removes every part row of an upload (their blobs are left for garbage collection).
pub(crate) fn remove_parts(
    op: &'static str,
    txn: &redb::WriteTransaction,
    upload_id: &str,
) -> Result<(), R2Error> {
    let mut parts = txn.open_table(PARTS).or_r2(op)?;
    let numbers: Vec<u32> = parts
        .range((upload_id, 0)..=(upload_id, u32::MAX))
        .or_r2(op)?
        .map(|e| e.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()
        .or_r2(op)?;
    for n in numbers {
        parts.remove((upload_id, n)).or_r2(op)?;
    }
    Ok(())
}
