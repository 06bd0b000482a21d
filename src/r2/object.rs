//! `R2Object` and the metadata it carries, as the binding returns them.

use serde::{Deserialize, Serialize};

use super::blobs::BlobRef;
use super::seal::{sealed_len, Sealed};

/// `R2HTTPMetadata`: the HTTP headers stored with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub cache_control: Option<String>,
    /// `Expires`, in milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_expiry: Option<i64>,
}

/// `R2Checksums`, as lowercase hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// Always present for single-part objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sha384: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sha512: Option<String>,
    /// CRC-32 from the S3 API (`x-amz-checksum-crc32`); the binding does not show it.
    #[serde(skip)]
    pub crc32: Option<String>,
    /// CRC-32C from the S3 API (`x-amz-checksum-crc32c`); the binding does not show it.
    #[serde(skip)]
    pub crc32c: Option<String>,
}

/// The byte range a `get` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnedRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

/// An object's metadata (`R2Object`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct R2Object {
    /// The key.
    pub key: String,
    /// Random id, new on every write.
    pub version: String,
    /// Bytes.
    pub size: u64,
    /// MD5 hex for single-part objects; `<md5 of part md5s>-<parts>` for multipart.
    pub etag: String,
    /// `etag` in double quotes.
    pub http_etag: String,
    /// Upload time, milliseconds since the epoch.
    #[serde(serialize_with = "iso_millis")]
    pub uploaded: i64,
    /// Absent on list results unless `include` asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_metadata: Option<HttpMetadata>,
    /// Absent on list results unless `include` asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<Vec<(String, String)>>,
    /// The range returned (head and get only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<ReturnedRange>,
    /// Digests of the content.
    pub checksums: Checksums,
    /// `Standard` or `InfrequentAccess`.
    pub storage_class: String,
    /// Hex MD5 of the SSE-C key the object was written with, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssec_key_md5: Option<String>,
}

fn iso_millis<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso8601_millis(*ms))
}

/// `2026-11-27T17:12:16.483Z`, as JavaScript's `Date.toISOString()` prints it.
pub fn iso8601_millis(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Marks the content of an inline object after its record in a catalog row.
const INLINE_TAG: u8 = 1;
/// Marks how the content is sealed (encrypted), after the record in a catalog row.
const SEALED_TAG: u8 = 2;

/// What the catalog stores for an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    pub version: String,
    pub size: u64,
    pub etag: String,
    pub uploaded: i64,
    #[serde(with = "stored::http")]
    pub http: HttpMetadata,
    pub custom: Vec<(String, String)>,
    #[serde(with = "stored::checksums")]
    pub checksums: Checksums,
    pub storage_class: String,
    /// The content, in order: one blob for a put, one per part for multipart. An inline
    /// object keeps its one `BlobRef` (its BLAKE3 and size) but has no blob file.
    pub parts: Vec<BlobRef>,
    /// The content of a small object, stored in the row itself (see [`Self::encode`]);
    /// sealed like the blobs when `sealed` is set.
    #[serde(skip)]
    pub inline: Option<Vec<u8>>,
    /// How the content is encrypted on disk, if it is (see [`super::seal`]).
    #[serde(skip)]
    pub sealed: Option<Sealed>,
}

impl ObjectRecord {
    /// Decodes a catalog row, also in the layout written before the S3 API's CRC
    /// checksums were kept (five digests where there are now seven). An old row never
    /// decodes in the new layout: the byte after its fifth digest starts the storage
    /// class, a string of 8 or more bytes, which is no valid `Option` tag.
    ///
    /// After the postcard-encoded record come, each only when it applies: how the
    /// content is sealed ([`SEALED_TAG`], then the postcard-encoded [`Sealed`]), and an
    /// inline object's content ([`INLINE_TAG`], then the raw bytes). A row without
    /// anything after the record (every row written before either existed) is an
    /// unencrypted object with its content in blob files.
    pub(crate) fn decode(op: &'static str, bytes: &[u8]) -> Result<ObjectRecord, super::R2Error> {
        let (mut record, inline) = Self::decode_borrowed(op, bytes)?;
        record.inline = inline.map(<[u8]>::to_vec);
        Ok(record)
    }

    /// [`Self::decode`], leaving an inline object's content in the row instead of
    /// copying it into the record: all a listing needs is the metadata.
    pub(crate) fn decode_borrowed<'a>(
        op: &'static str,
        bytes: &'a [u8],
    ) -> Result<(ObjectRecord, Option<&'a [u8]>), super::R2Error> {
        let corrupt = || {
            super::R2Error::internal(
                op,
                "catalog row is corrupt: unexpected bytes after the object record",
            )
        };
        match postcard::take_from_bytes::<ObjectRecord>(bytes) {
            Ok((mut record, rest)) => {
                let rest = match rest.split_first() {
                    Some((&SEALED_TAG, sealed)) => {
                        let (sealed, rest) =
                            postcard::take_from_bytes(sealed).map_err(|_| corrupt())?;
                        record.sealed = Some(sealed);
                        rest
                    }
                    _ => rest,
                };
                let stored = match record.sealed {
                    Some(_) => sealed_len(record.size),
                    None => record.size,
                };
                match rest.split_first() {
                    None => Ok((record, None)),
                    Some((&INLINE_TAG, body)) if body.len() as u64 == stored => {
                        Ok((record, Some(body)))
                    }
                    Some(_) => Err(corrupt()),
                }
            }
            Err(e) => super::catalog::decode::<legacy::Record>(op, bytes)
                .map(|r| (ObjectRecord::from(r), None))
                .map_err(|_| super::R2Error::internal(op, format!("catalog row is corrupt: {e}"))),
        }
    }

    /// The catalog row: the record, then an inline object's content (see [`Self::decode`]).
    pub(crate) fn encode(&self, op: &'static str) -> Result<Vec<u8>, super::R2Error> {
        let mut row = super::catalog::encode(op, self)?;
        if let Some(sealed) = &self.sealed {
            row.push(SEALED_TAG);
            row.extend(super::catalog::encode(op, sealed)?);
        }
        if let Some(body) = &self.inline {
            row.push(INLINE_TAG);
            row.extend_from_slice(body);
        }
        Ok(row)
    }

    /// The object as `head` / `get` / `put` return it (metadata always present).
    pub fn to_object(&self, key: &str) -> R2Object {
        R2Object {
            key: key.to_owned(),
            version: self.version.clone(),
            size: self.size,
            etag: self.etag.clone(),
            http_etag: format!("\"{}\"", self.etag),
            uploaded: self.uploaded,
            http_metadata: Some(self.http.clone()),
            custom_metadata: Some(self.custom.clone()),
            range: None,
            checksums: self.checksums.clone(),
            storage_class: self.storage_class.clone(),
            ssec_key_md5: self
                .sealed
                .and_then(|s| s.customer_key_md5())
                .map(hex::encode),
        }
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh object version: 32 random hex characters.
pub(crate) fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The object row as written before CRC checksums were kept.
mod legacy {
    use serde::{Deserialize, Serialize};

    use super::{stored, BlobRef, Checksums, HttpMetadata, ObjectRecord};

    #[derive(Serialize, Deserialize)]
    pub(super) struct Record {
        pub version: String,
        pub size: u64,
        pub etag: String,
        pub uploaded: i64,
        #[serde(with = "stored::http")]
        pub http: HttpMetadata,
        pub custom: Vec<(String, String)>,
        #[serde(with = "stored::five_digests")]
        pub checksums: Checksums,
        pub storage_class: String,
        pub parts: Vec<BlobRef>,
    }

    impl From<Record> for ObjectRecord {
        fn from(r: Record) -> Self {
            ObjectRecord {
                version: r.version,
                size: r.size,
                etag: r.etag,
                uploaded: r.uploaded,
                http: r.http,
                custom: r.custom,
                checksums: r.checksums,
                storage_class: r.storage_class,
                parts: r.parts,
                inline: None,
                sealed: None,
            }
        }
    }
}

/// Positional forms of the metadata types for the catalog: postcard is not
/// self-describing, so the JSON forms' skipped `None` fields cannot be used there.
pub(crate) mod stored {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Five<T> = (Option<T>, Option<T>, Option<T>, Option<T>, Option<T>);
    type Seven<T> = (Five<T>, Option<T>, Option<T>);

    pub mod http {
        use super::*;
        use crate::r2::object::HttpMetadata;

        pub fn serialize<S: Serializer>(h: &HttpMetadata, s: S) -> Result<S::Ok, S::Error> {
            let strings: Five<&String> = (
                h.content_type.as_ref(),
                h.content_language.as_ref(),
                h.content_disposition.as_ref(),
                h.content_encoding.as_ref(),
                h.cache_control.as_ref(),
            );
            (strings, h.cache_expiry).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HttpMetadata, D::Error> {
            let (
                (
                    content_type,
                    content_language,
                    content_disposition,
                    content_encoding,
                    cache_control,
                ),
                cache_expiry,
            ): (Five<String>, Option<i64>) = Deserialize::deserialize(d)?;
            Ok(HttpMetadata {
                content_type,
                content_language,
                content_disposition,
                content_encoding,
                cache_control,
                cache_expiry,
            })
        }
    }

    /// The legacy checksum layout: the five digests alone.
    pub mod five_digests {
        use super::*;
        use crate::r2::object::Checksums;

        pub fn serialize<S: Serializer>(c: &Checksums, s: S) -> Result<S::Ok, S::Error> {
            (&c.md5, &c.sha1, &c.sha256, &c.sha384, &c.sha512).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Checksums, D::Error> {
            let (md5, sha1, sha256, sha384, sha512): Five<String> = Deserialize::deserialize(d)?;
            Ok(Checksums {
                md5,
                sha1,
                sha256,
                sha384,
                sha512,
                ..Default::default()
            })
        }
    }

    pub mod checksums {
        use super::*;
        use crate::r2::object::Checksums;

        pub fn serialize<S: Serializer>(c: &Checksums, s: S) -> Result<S::Ok, S::Error> {
            let digests = (&c.md5, &c.sha1, &c.sha256, &c.sha384, &c.sha512);
            (digests, &c.crc32, &c.crc32c).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Checksums, D::Error> {
            let ((md5, sha1, sha256, sha384, sha512), crc32, crc32c): Seven<String> =
                Deserialize::deserialize(d)?;
            Ok(Checksums {
                md5,
                sha1,
                sha256,
                sha384,
                sha512,
                crc32,
                crc32c,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_before_crc_checksums_still_decode() {
        let checksums = Checksums {
            md5: Some("3e25960a79dbc69b674cd4ec67a72c62".into()),
            ..Default::default()
        };
        let old = legacy::Record {
            version: "v".into(),
            size: 11,
            etag: "3e25960a79dbc69b674cd4ec67a72c62".into(),
            uploaded: 1_700_000_000_000,
            http: HttpMetadata::default(),
            custom: vec![("a".into(), "b".into())],
            checksums: checksums.clone(),
            storage_class: "Standard".into(),
            parts: vec![BlobRef {
                hash: [7; 32],
                size: 11,
            }],
        };
        let bytes = postcard::to_allocvec(&old).unwrap();
        let record = ObjectRecord::decode("get", &bytes).unwrap();
        assert_eq!(record.checksums, checksums);
        assert_eq!(record.custom, old.custom);
        assert_eq!(record.parts, old.parts);
        let new = ObjectRecord {
            checksums: Checksums {
                crc32: Some("8bd69e52".into()),
                ..checksums
            },
            ..record
        };
        let again = ObjectRecord::decode("get", &postcard::to_allocvec(&new).unwrap()).unwrap();
        assert_eq!(again, new);
    }

    /// A one-part record of `size` bytes named `hash`, content in blob files.
    fn record_of(size: usize, hash: [u8; 32]) -> ObjectRecord {
        ObjectRecord {
            version: "v".into(),
            size: size as u64,
            etag: "e".into(),
            uploaded: 1,
            http: HttpMetadata::default(),
            custom: Vec::new(),
            checksums: Checksums::default(),
            storage_class: "Standard".into(),
            parts: vec![BlobRef {
                hash,
                size: size as u64,
            }],
            inline: None,
            sealed: None,
        }
    }

    #[test]
    fn an_inline_row_carries_its_content_and_a_torn_one_is_refused() {
        let content = b"hello inline".to_vec();
        let record = ObjectRecord {
            inline: Some(content.clone()),
            ..record_of(content.len(), *blake3::hash(&content).as_bytes())
        };
        let row = record.encode("put").unwrap();
        assert_eq!(ObjectRecord::decode("get", &row).unwrap(), record);
        let (meta, borrowed) = ObjectRecord::decode_borrowed("list", &row).unwrap();
        assert_eq!((meta.inline, borrowed), (None, Some(&content[..])));
        // A row cut short, or with bytes after the record that are not an inline body,
        // is corrupt rather than read as some other content.
        assert!(ObjectRecord::decode("get", &row[..row.len() - 1]).is_err());
        let mut odd = row.clone();
        odd.push(0);
        assert!(ObjectRecord::decode("get", &odd).is_err());
        let file_backed = ObjectRecord {
            inline: None,
            ..record
        };
        let row = file_backed.encode("put").unwrap();
        assert_eq!(ObjectRecord::decode("get", &row).unwrap(), file_backed);
    }

    #[test]
    fn a_sealed_row_keeps_how_it_is_sealed_and_its_sealed_inline_content() {
        let key = crate::r2::EncryptionKey::new([1; 32]);
        let plain = b"secret".to_vec();
        let sealed = ObjectRecord {
            inline: Some(super::super::seal::seal(&key, &plain)),
            sealed: Some(Sealed::Customer { key_md5: key.md5() }),
            ..record_of(plain.len(), [1; 32])
        };
        let row = sealed.encode("put").unwrap();
        assert_eq!(ObjectRecord::decode("get", &row).unwrap(), sealed);
        assert!(ObjectRecord::decode("get", &row[..row.len() - 1]).is_err());
        let at_rest = ObjectRecord {
            inline: None,
            sealed: Some(Sealed::Store),
            ..sealed
        };
        let row = at_rest.encode("put").unwrap();
        assert_eq!(ObjectRecord::decode("get", &row).unwrap(), at_rest);
    }
}
