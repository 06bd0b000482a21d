//! `R2Bucket`: the binding's object calls on one bucket.

use std::io::Read;
use std::sync::Arc;

use redb::ReadableTable;

use super::blobs::{BlobReader, BlobRef, HashAlgorithm, WriteError};
use super::catalog::{objects_table, OrR2};
use super::conditional::R2Conditional;
use super::error::{R2Error, R2ErrorKind};
use super::object::{new_version, now_ms, Checksums, HttpMetadata, ObjectRecord, R2Object};
use super::range::R2Range;
use super::seal::{EncryptionKey, Sealed};
use super::store::Inner;

/// A bucket handle, like a Worker's `env.BUCKET`. Cheap to clone.
#[derive(Clone)]
pub struct R2Bucket {
    pub(crate) inner: Arc<Inner>,
    pub(crate) name: String,
    pub(crate) table: String,
}

impl std::fmt::Debug for R2Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("R2Bucket")
            .field("name", &self.name)
            .finish()
    }
}

/// A digest to verify on `put` (at most one, as R2 allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedChecksum {
    /// MD5 (16 bytes).
    Md5(Vec<u8>),
    /// SHA-1 (20 bytes).
    Sha1(Vec<u8>),
    /// SHA-256 (32 bytes).
    Sha256(Vec<u8>),
    /// SHA-384 (48 bytes).
    Sha384(Vec<u8>),
    /// SHA-512 (64 bytes).
    Sha512(Vec<u8>),
}

impl ExpectedChecksum {
    /// From a hex string, checked for length with R2's messages (`MD5 is 32 hex
    /// characters, not N`).
    pub fn from_hex(algorithm: &str, hex_digest: &str) -> Result<Self, R2Error> {
        type Make = fn(Vec<u8>) -> ExpectedChecksum;
        let (name, bytes, make): (&str, usize, Make) = match algorithm.to_ascii_lowercase().as_str()
        {
            "md5" => ("MD5", 16, ExpectedChecksum::Md5),
            "sha1" => ("SHA-1", 20, ExpectedChecksum::Sha1),
            "sha256" => ("SHA-256", 32, ExpectedChecksum::Sha256),
            "sha384" => ("SHA-384", 48, ExpectedChecksum::Sha384),
            "sha512" => ("SHA-512", 64, ExpectedChecksum::Sha512),
            other => {
                return Err(R2Error::new(
                    "put",
                    R2ErrorKind::InvalidArgument,
                    format!("Unknown hash algorithm {other}"),
                ))
            }
        };
        if hex_digest.len() != bytes * 2 {
            return Err(R2Error::new(
                "put",
                R2ErrorKind::InvalidDigest,
                format!(
                    "{name} is {} hex characters, not {}",
                    bytes * 2,
                    hex_digest.len()
                ),
            ));
        }
        let raw = hex::decode(hex_digest).map_err(|_| {
            R2Error::new(
                "put",
                R2ErrorKind::InvalidDigest,
                format!("{name} is not valid hex"),
            )
        })?;
        Ok(make(raw))
    }

    /// The algorithm's name as R2's messages write it (`SHA-256`).
    pub fn name(&self) -> &'static str {
        match self {
            ExpectedChecksum::Md5(_) => "MD5",
            ExpectedChecksum::Sha1(_) => "SHA-1",
            ExpectedChecksum::Sha256(_) => "SHA-256",
            ExpectedChecksum::Sha384(_) => "SHA-384",
            ExpectedChecksum::Sha512(_) => "SHA-512",
        }
    }

    fn parts(&self) -> (Option<HashAlgorithm>, &[u8]) {
        match self {
            ExpectedChecksum::Md5(d) => (None, d),
            ExpectedChecksum::Sha1(d) => (Some(HashAlgorithm::Sha1), d),
            ExpectedChecksum::Sha256(d) => (Some(HashAlgorithm::Sha256), d),
            ExpectedChecksum::Sha384(d) => (Some(HashAlgorithm::Sha384), d),
            ExpectedChecksum::Sha512(d) => (Some(HashAlgorithm::Sha512), d),
        }
    }
}

/// `R2PutOptions`.
#[derive(Debug, Clone, Default)]
pub struct R2PutOptions {
    /// Store only if this holds against the current object; else nothing is stored.
    pub only_if: Option<R2Conditional>,
    /// HTTP headers to keep with the object.
    pub http_metadata: HttpMetadata,
    /// Custom metadata, in order.
    pub custom_metadata: Vec<(String, String)>,
    /// A digest the content must have.
    pub checksum: Option<ExpectedChecksum>,
    /// `Standard` (default) or `InfrequentAccess`.
    pub storage_class: Option<String>,
    /// A digest to compute and keep with the object without checking it (the S3 API
    /// verifies `x-amz-checksum-*` itself, sometimes from a trailer that arrives after
    /// the body). Ignored when `checksum` is set.
    pub extra_checksum: Option<HashAlgorithm>,
    /// SSE-C (`ssecKey`): encrypt the object with this key; every read must give it.
    pub ssec_key: Option<EncryptionKey>,
}

/// `R2GetOptions`.
#[derive(Debug, Clone, Default)]
pub struct R2GetOptions {
    /// Return the body only if this holds.
    pub only_if: Option<R2Conditional>,
    /// Return only these bytes.
    pub range: Option<R2Range>,
    /// SSE-C (`ssecKey`): the key the object was written with, if it was.
    pub ssec_key: Option<EncryptionKey>,
}

/// `R2ObjectBody`: an object and, unless a precondition failed, its bytes.
pub struct R2ObjectBody {
    /// Metadata, with `range` set to the bytes returned.
    pub object: R2Object,
    /// The bytes; `None` when `onlyIf` did not hold (R2 then returns the object only).
    pub body: Option<BlobReader>,
}

impl R2ObjectBody {
    /// Reads the whole body into memory (`arrayBuffer()`).
    pub fn bytes(self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.object.range.map_or(0, |r| r.length as usize));
        if let Some(mut body) = self.body {
            body.read_to_end(&mut out)?;
        }
        Ok(out)
    }
}

impl std::fmt::Debug for R2ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("R2ObjectBody")
            .field("object", &self.object)
            .field("has_body", &self.body.is_some())
            .finish()
    }
}

impl R2Bucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object's metadata, or `None` if there is no such key.
    pub fn head(&self, key: &str) -> Result<Option<R2Object>, R2Error> {
        self.head_checking(key, |_| Ok(()))
    }

    /// [`head`](Self::head) for the S3 API, whose HeadObject must be given an SSE-C
    /// object's key (the binding's `head` takes none).
    pub fn head_with_key(
        &self,
        key: &str,
        ssec_key: Option<&EncryptionKey>,
    ) -> Result<Option<R2Object>, R2Error> {
        self.head_checking(key, |record| {
            self.inner
                .unsealing("head", "object", record.sealed, ssec_key)
                .map(drop)
        })
    }

    fn head_checking(
        &self,
        key: &str,
        check: impl FnOnce(&ObjectRecord) -> Result<(), R2Error>,
    ) -> Result<Option<R2Object>, R2Error> {
        self.check_key("head", key)?;
        let Some(record) = self.record("head", key)? else {
            return Ok(None);
        };
        check(&record)?;
        let mut o = record.to_object(key);
        o.range = Some(super::object::ReturnedRange {
            offset: 0,
            length: record.size,
        });
        Ok(Some(o))
    }

    /// The object and its bytes (or the requested range of them); `None` if there is no
    /// such key. If `only_if` fails, the object comes back without a body.
    pub fn get(&self, key: &str, options: &R2GetOptions) -> Result<Option<R2ObjectBody>, R2Error> {
        self.check_key("get", key)?;
        let Some(mut record) = self.record("get", key)? else {
            return Ok(None);
        };
        let seal =
            self.inner
                .unsealing("get", "object", record.sealed, options.ssec_key.as_ref())?;
        let mut object = record.to_object(key);
        if let Some(cond) = &options.only_if {
            if !cond.passes(Some((&record.etag, record.uploaded))) {
                // As `head` reports it: the whole object.
                object.range = Some(super::object::ReturnedRange {
                    offset: 0,
                    length: record.size,
                });
                return Ok(Some(R2ObjectBody { object, body: None }));
            }
        }
        let range = match options.range {
            Some(r) => r.resolve(record.size)?,
            None => super::object::ReturnedRange {
                offset: 0,
                length: record.size,
            },
        };
        object.range = Some(range);
        let body = self
            .inner
            .blobs
            .reader(
                &record.parts,
                record.inline.take(),
                range.offset,
                range.length,
                seal,
            )
            .map_err(|e| R2Error::internal("get", e))?;
        Ok(Some(R2ObjectBody {
            object,
            body: Some(body),
        }))
    }

    /// Part `number` (from 1) of the object as it was uploaded, for S3's `partNumber`
    /// reads: the object with `range` set to the part's bytes, and how many parts a
    /// multipart object has (`None` for any other object, whose only part is itself).
    /// `Ok(None)` if there is no such key; a part past the last is `InvalidRange`.
    pub fn get_part(
        &self,
        key: &str,
        number: u32,
        ssec_key: Option<&EncryptionKey>,
    ) -> Result<Option<(R2ObjectBody, Option<usize>)>, R2Error> {
        const OP: &str = "get";
        self.check_key(OP, key)?;
        let Some(mut record) = self.record(OP, key)? else {
            return Ok(None);
        };
        let seal = self
            .inner
            .unsealing(OP, "object", record.sealed, ssec_key)?;
        let mut object = record.to_object(key);
        // Only a completed multipart upload has the `-<parts>` ETag; a copy of one is
        // stored whole as far as S3 is concerned, whatever blobs it shares.
        let multipart = record.etag.contains('-');
        let count = if multipart { record.parts.len() } else { 1 };
        let index = usize::try_from(number).unwrap_or(usize::MAX);
        if index == 0 || index > count {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidRange,
                format!("The object has {count} part(s), not {number}"),
            ));
        }
        let (offset, length) = if multipart {
            let before: u64 = record.parts[..index - 1].iter().map(|p| p.size).sum();
            (before, record.parts[index - 1].size)
        } else {
            (0, object.size)
        };
        object.range = Some(super::object::ReturnedRange { offset, length });
        let reader = self
            .inner
            .blobs
            .reader(&record.parts, record.inline.take(), offset, length, seal)
            .map_err(|e| R2Error::internal(OP, e))?;
        let body = R2ObjectBody {
            body: Some(reader),
            object,
        };
        Ok(Some((body, multipart.then_some(count))))
    }

    /// Stores `value` under `key`. `Ok(None)` when `only_if` failed: nothing was stored.
    pub fn put(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        options: &R2PutOptions,
    ) -> Result<Option<R2Object>, R2Error> {
        let value = value.as_ref();
        self.put_reader(key, &mut &value[..], value.len() as u64, options)
    }

    /// Streams `length` bytes from `body` into the object `key`: memory stays bounded
    /// whatever the size. The call returns once the bytes and the catalog row are on disk.
    pub fn put_reader(
        &self,
        key: &str,
        body: &mut dyn Read,
        length: u64,
        options: &R2PutOptions,
    ) -> Result<Option<R2Object>, R2Error> {
        const OP: &str = "put";
        self.check_key(OP, key)?;
        self.check_custom_metadata(OP, &options.custom_metadata)?;
        let limits = &self.inner.limits;
        if length > limits.max_upload_bytes {
            return Err(too_large(OP, limits.max_upload_bytes));
        }
        // Cheap early refusal; the decisive check happens again inside the transaction.
        if let Some(cond) = &options.only_if {
            let current = self.record(OP, key)?;
            if !cond.passes(current.as_ref().map(|r| (r.etag.as_str(), r.uploaded))) {
                return Ok(None);
            }
        }
        let (extra, expected) =
            options
                .checksum
                .as_ref()
                .map_or((options.extra_checksum, None), |c| {
                    let (alg, digest) = c.parts();
                    (alg, Some(digest.to_vec()))
                });
        let sealing = self.inner.sealing(options.ssec_key.as_ref());
        let mut written = self
            .inner
            .blobs
            .write(
                body,
                Some(length),
                limits.max_upload_bytes,
                extra,
                true,
                sealing.as_ref().map(|(key, _)| key),
            )
            .map_err(|e| write_error(OP, e, limits.max_upload_bytes))?;
        if let Some(want) = expected {
            let got: &[u8] = match &written.extra {
                Some((_, digest)) => digest,
                None => &written.md5,
            };
            if got != want.as_slice() {
                let name = options
                    .checksum
                    .as_ref()
                    .map_or("MD5", ExpectedChecksum::name);
                return Err(R2Error::new(
                    OP,
                    R2ErrorKind::BadDigest,
                    format!(
                        "The {name} checksum you specified did not match what we received.\nYou provided a {name} checksum with value: {}\nActual {name} was: {}",
                        hex::encode(&want),
                        hex::encode(got)
                    ),
                ));
            }
        }
        let sealed = sealing.map(|(_, sealed)| sealed);
        let customer = matches!(sealed, Some(Sealed::Customer { .. }));
        // An SSE-C object's ETag and digests would tell equal plaintexts apart from
        // different ones to anyone without the key: its ETag comes from its keyed
        // address instead, and no digest of the plaintext is kept.
        let etag = if customer {
            ssec_etag(&written.blob)
        } else {
            written.md5
        };
        let mut checksums = Checksums {
            md5: (!customer).then(|| hex::encode(written.md5)),
            ..Default::default()
        };
        if let Some((alg, digest)) = written.extra.as_ref().filter(|_| !customer) {
            let hex = Some(hex::encode(digest));
            match alg {
                HashAlgorithm::Sha1 => checksums.sha1 = hex,
                HashAlgorithm::Sha256 => checksums.sha256 = hex,
                HashAlgorithm::Sha384 => checksums.sha384 = hex,
                HashAlgorithm::Sha512 => checksums.sha512 = hex,
                HashAlgorithm::Crc32 => checksums.crc32 = hex,
                HashAlgorithm::Crc32c => checksums.crc32c = hex,
            }
        }
        let record = ObjectRecord {
            version: new_version(),
            size: written.blob.size,
            etag: hex::encode(etag),
            uploaded: now_ms(),
            http: options.http_metadata.clone(),
            custom: options.custom_metadata.clone(),
            checksums,
            storage_class: storage_class(options.storage_class.as_deref())?,
            parts: vec![written.blob],
            inline: written.inline.take(),
            sealed,
        };
        self.commit_object(OP, key, &record, options.only_if.as_ref())
    }

    /// Writes the row for `key` if `only_if` holds against the row there now.
    pub(crate) fn commit_object(
        &self,
        op: &'static str,
        key: &str,
        record: &ObjectRecord,
        only_if: Option<&R2Conditional>,
    ) -> Result<Option<R2Object>, R2Error> {
        self.inner.write_grouped(op, |txn| {
            let written =
                write_object_row(&self.inner, op, txn, &self.table, key, record, only_if)?;
            Ok(written.then(|| record.to_object(key)))
        })
    }

    /// Deletes one key or up to 1,000; missing keys are not an error. The space is
    /// reclaimed by [`R2Store::gc`](super::R2Store::gc), never in this call.
    pub fn delete(&self, keys: &[&str]) -> Result<(), R2Error> {
        const OP: &str = "delete";
        if keys.len() > 1000 {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidArgument,
                "You can delete at most 1000 keys per call",
            ));
        }
        for key in keys {
            self.check_key(OP, key)?;
        }
        self.inner.write_grouped(OP, |txn| {
            let mut table = txn.open_table(objects_table(&self.table)).or_r2(OP)?;
            for key in keys {
                let old = table.remove(key.as_bytes()).or_r2(OP)?;
                self.inner.release(OP, old)?;
            }
            Ok(())
        })
    }

    /// Deletes every object, abandons every unfinished multipart upload and returns the
    /// CORS and lifecycle rules to a new bucket's (what resetting a test run needs). The
    /// space is reclaimed by GC, as for `delete`.
    pub fn clear(&self) -> Result<(), R2Error> {
        self.clear_config("clear")?;
        loop {
            let page = self.list(&super::R2ListOptions::default())?;
            let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
            if keys.is_empty() {
                break;
            }
            self.delete(&keys)?;
        }
        for (key, upload_id, _) in self.list_multipart_uploads()? {
            self.resume_multipart_upload(&key, &upload_id).abort()?;
        }
        Ok(())
    }

    pub(crate) fn record(
        &self,
        op: &'static str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, R2Error> {
        let txn = self.inner.catalog.begin_read().or_r2(op)?;
        let table = txn.open_table(objects_table(&self.table)).or_r2(op)?;
        match table.get(key.as_bytes()).or_r2(op)? {
            Some(v) => Ok(Some(ObjectRecord::decode(op, v.value())?)),
            None => Ok(None),
        }
    }

    pub(crate) fn check_key(&self, op: &'static str, key: &str) -> Result<(), R2Error> {
        if key.len() > self.inner.limits.max_key_bytes {
            // R2's text; the limit (1,024 bytes by default) is in the docs.
            return Err(R2Error::new(
                op,
                R2ErrorKind::InvalidObjectName,
                "The specified object name is not valid.",
            ));
        }
        Ok(())
    }

    pub(crate) fn check_custom_metadata(
        &self,
        op: &'static str,
        custom: &[(String, String)],
    ) -> Result<(), R2Error> {
        let size: usize = custom.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > self.inner.limits.max_custom_metadata_bytes {
            return Err(R2Error::new(
                op,
                R2ErrorKind::MetadataTooLarge,
                "Your metadata headers exceed the maximum allowed metadata size.",
            ));
        }
        Ok(())
    }
}

/// Writes `record` as the row of `key` in the objects table `table` if `only_if` holds
/// against the row there now; `false` (and nothing written) if it does not.
pub(crate) fn write_object_row(
    inner: &Inner,
    op: &'static str,
    txn: &redb::WriteTransaction,
    table: &str,
    key: &str,
    record: &ObjectRecord,
    only_if: Option<&R2Conditional>,
) -> Result<bool, R2Error> {
    let mut objects = txn.open_table(objects_table(table)).or_r2(op)?;
    if let Some(cond) = only_if {
        let current = match objects.get(key.as_bytes()).or_r2(op)? {
            Some(v) => Some(ObjectRecord::decode(op, v.value())?),
            None => None,
        };
        if !cond.passes(current.as_ref().map(|r| (r.etag.as_str(), r.uploaded))) {
            return Ok(false);
        }
    }
    let old = objects
        .insert(key.as_bytes(), record.encode(op)?.as_slice())
        .or_r2(op)?;
    inner.release(op, old)?;
    Ok(true)
}

pub(crate) fn storage_class(requested: Option<&str>) -> Result<String, R2Error> {
    match requested {
        None | Some("Standard") => Ok("Standard".into()),
        Some("InfrequentAccess") => Ok("InfrequentAccess".into()),
        Some(other) => Err(R2Error::new(
            "put",
            R2ErrorKind::InvalidArgument,
            format!("Unsupported storage class {other:?}: use Standard or InfrequentAccess"),
        )),
    }
}

fn too_large(op: &'static str, limit: u64) -> R2Error {
    R2Error::new(
        op,
        R2ErrorKind::EntityTooLarge,
        format!("Your proposed upload exceeds the maximum allowed object size of {limit} bytes."),
    )
}

/// The ETag digest of content written with an SSE-C key: from its keyed address, so it
/// says nothing about the plaintext without the key.
pub(crate) fn ssec_etag(blob: &BlobRef) -> [u8; 16] {
    blob.hash[..16]
        .try_into()
        .expect("a BLAKE3 hash has 32 bytes")
}

pub(crate) fn write_error(op: &'static str, e: WriteError, limit: u64) -> R2Error {
    match e {
        WriteError::TooLarge => too_large(op, limit),
        WriteError::LengthMismatch { expected, got } => R2Error::new(
            op,
            R2ErrorKind::IncompleteBody,
            format!("The body had {got} bytes where {expected} were declared"),
        ),
        WriteError::Io(e) => R2Error::internal(op, format!("writing the object: {e}")),
    }
}
