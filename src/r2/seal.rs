//! Object content encrypted on disk: R2's SSE-C (a customer's key on each request) and
//! encryption at rest (one key for the whole store, `--encryption-key-file`).
//!
//! A sealed blob is a header (a magic and a random 32-byte salt) followed by the
//! content in segments of [`SEGMENT`] bytes, each encrypted with AES-256-GCM and
//! followed by its 16-byte tag. The key of one blob is derived from the root key (the
//! customer's, or the store's) and the salt, so no two blobs share a key and the
//! segment number alone makes each nonce unique; the last segment's nonce is marked,
//! so a blob cut at a segment boundary fails to open instead of reading as shorter.
//! Segments let a range read decrypt only the segments it touches.
//!
//! Content addressing: a sealed blob's address is BLAKE3 keyed with a key derived from
//! the root key, over the plaintext. Equal content under one key still lands on one
//! blob (the store's dedupe keeps working), while equal content under two keys lands
//! on two unrelated addresses: a blob's name says nothing about its content to anyone
//! without the key, and nothing relates objects written with different keys.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use md5::Digest;
use serde::{Deserialize, Serialize};

use super::error::{R2Error, R2ErrorKind};

/// Plaintext bytes per encrypted segment.
pub const SEGMENT: u64 = 64 * 1024;
const TAG: u64 = 16;
const MAGIC: &[u8; 8] = b"tr2seal1";
const SALT: usize = 32;
/// Bytes before the first segment.
pub const HEADER: u64 = MAGIC.len() as u64 + SALT as u64;

/// A 256-bit key: a customer's SSE-C key or the store's key.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: it may end up in a log.
        write!(f, "EncryptionKey(md5 {})", hex::encode(self.md5()))
    }
}

impl EncryptionKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        EncryptionKey(bytes)
    }

    /// A key file's content: 32 raw bytes, or 64 hexadecimal characters (as
    /// `openssl rand -hex 32` writes them), surrounding whitespace ignored.
    pub fn from_file_content(content: &[u8]) -> Result<EncryptionKey, String> {
        if let Ok(raw) = <[u8; 32]>::try_from(content) {
            return Ok(EncryptionKey(raw));
        }
        let text = std::str::from_utf8(content).unwrap_or("").trim();
        let mut key = [0u8; 32];
        match hex::decode_to_slice(text, &mut key) {
            Ok(()) if text.len() == 64 => Ok(EncryptionKey(key)),
            _ => Err(format!(
                "an encryption key file holds 32 bytes, raw or as 64 hexadecimal characters (make one with `openssl rand -hex 32 > key`); this one has {} bytes",
                content.len()
            )),
        }
    }

    /// MD5 of the key: what S3 and R2 report to identify it (never to check it).
    pub fn md5(&self) -> [u8; 16] {
        md5::Md5::digest(self.0).into()
    }

    /// The key's MD5 as the S3 API's `x-amz-server-side-encryption-customer-key-MD5`.
    pub fn md5_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.md5())
    }

    /// The binding's `ssecKey` option: 64 lowercase hex characters (what workerd sends;
    /// it checks the length and the alphabet itself).
    pub fn from_binding(op: &'static str, hex_key: &str) -> Result<EncryptionKey, R2Error> {
        let mut key = [0u8; 32];
        if hex_key.len() != 64 || hex::decode_to_slice(hex_key, &mut key).is_err() {
            return Err(R2Error::new(
                op,
                R2ErrorKind::InvalidArgument,
                "SSE-C Key must be 32 bytes in length, as 64 hexadecimal characters",
            ));
        }
        Ok(EncryptionKey(key))
    }

    /// The key of the blob with this salt.
    fn blob_key(&self, salt: &[u8; SALT]) -> Aes256Gcm {
        let mut material = [0u8; 32 + SALT];
        material[..32].copy_from_slice(&self.0);
        material[32..].copy_from_slice(salt);
        let key = blake3::derive_key("tristore 2026-11 r2 sealed blob key", &material);
        Aes256Gcm::new(&key.into())
    }

    /// The hasher that names blobs sealed with this key (see the module docs).
    pub(crate) fn address_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&blake3::derive_key(
            "tristore 2026-11 r2 sealed blob address",
            &self.0,
        ))
    }
}

/// The file beside the R2 catalog that remembers the store's key (a check value
/// derived from it, never the key): once content is encrypted at rest, the store opens
/// only with that key, so content is never written under two keys nor left unreadable
/// by a restart that forgot `--encryption-key-file`.
pub(crate) const KEY_CHECK_FILE: &str = "encryption-key-check";

/// Checks `key` (the store's key, if given) against the one the R2 directory `dir` was
/// first opened with, recording it on first use.
pub(crate) fn check_store_key(dir: &Path, key: Option<&EncryptionKey>) -> Result<(), String> {
    let path = dir.join(KEY_CHECK_FILE);
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let check = key.map(|k| {
        hex::encode(blake3::derive_key(
            "tristore 2026-11 r2 store key check",
            &k.0,
        ))
    });
    match (recorded, check) {
        (None, None) => Ok(()),
        (None, Some(check)) => crate::fsutil::write_durable(&path, check.as_bytes())
            .map_err(|e| e.to_string()),
        (Some(recorded), Some(check)) if recorded == check => Ok(()),
        (Some(_), Some(_)) => Err(format!(
            "the encryption key is not the one {} was encrypted with: pass the key file it was first opened with",
            dir.display()
        )),
        (Some(_), None) => Err(format!(
            "{} is encrypted at rest: pass its key with --encryption-key-file (or TRISTORE_ENCRYPTION_KEY_FILE)",
            dir.display()
        )),
    }
}

/// How an object's content is sealed, kept in its catalog row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Sealed {
    /// With a customer's SSE-C key, of which only the MD5 is kept.
    Customer { key_md5: [u8; 16] },
    /// With the store's key (encryption at rest).
    Store,
}

impl Sealed {
    /// The customer key's MD5, for SSE-C objects.
    pub fn customer_key_md5(&self) -> Option<[u8; 16]> {
        match self {
            Sealed::Customer { key_md5 } => Some(*key_md5),
            Sealed::Store => None,
        }
    }
}

/// Bytes on disk of a sealed blob of `size` plaintext bytes.
pub fn sealed_len(size: u64) -> u64 {
    HEADER + size + TAG * segments(size)
}

/// Segments of a blob of `size` bytes: at least one, so that even an empty blob has a
/// tag to check.
fn segments(size: u64) -> u64 {
    size.div_ceil(SEGMENT).max(1)
}

fn nonce(segment: u64, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&segment.to_be_bytes());
    n[8] = u8::from(last);
    n.into()
}

/// Encrypts a stream of plaintext into a sealed blob, segment by segment.
pub(crate) struct SealWriter {
    cipher: Aes256Gcm,
    segment: u64,
    buf: Vec<u8>,
}

impl SealWriter {
    /// A writer for a new blob under `key`; writes the header to `out`.
    pub fn start(key: &EncryptionKey, out: &mut impl Write) -> io::Result<SealWriter> {
        let salt: [u8; SALT] = rand::random();
        out.write_all(MAGIC)?;
        out.write_all(&salt)?;
        Ok(SealWriter {
            cipher: key.blob_key(&salt),
            segment: 0,
            buf: Vec::with_capacity(SEGMENT as usize + TAG as usize),
        })
    }

    /// Adds plaintext. A full segment is written only once more data follows: only
    /// [`finish`](Self::finish) knows which segment is the last.
    pub fn write(&mut self, mut data: &[u8], out: &mut impl Write) -> io::Result<()> {
        while !data.is_empty() {
            if self.buf.len() as u64 == SEGMENT {
                self.seal_segment(false, out)?;
            }
            let room = SEGMENT as usize - self.buf.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
        }
        Ok(())
    }

    /// Writes the last segment (possibly empty).
    pub fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        self.seal_segment(true, out)
    }

    fn seal_segment(&mut self, last: bool, out: &mut impl Write) -> io::Result<()> {
        self.cipher
            .encrypt_in_place(&nonce(self.segment, last), b"", &mut self.buf)
            .map_err(|_| io::Error::other("AES-GCM refused to encrypt a segment"))?;
        out.write_all(&self.buf)?;
        self.buf.clear();
        self.segment += 1;
        Ok(())
    }
}

/// Seals `plain` whole, in memory (an inline object's row).
pub(crate) fn seal(key: &EncryptionKey, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
    let mut writer = SealWriter::start(key, &mut out).expect("writing to memory");
    writer.write(plain, &mut out).expect("writing to memory");
    writer.finish(&mut out).expect("writing to memory");
    out
}

/// Reads the plaintext of a sealed blob of `size` plaintext bytes from `offset` on,
/// decrypting one segment at a time.
pub(crate) struct SealReader<R> {
    inner: R,
    cipher: Aes256Gcm,
    size: u64,
    /// The next segment to decrypt.
    segment: u64,
    /// Decrypted bytes of the current segment not yet returned start at `pos`.
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read + Seek> SealReader<R> {
    /// Opens a sealed blob, checking its header, positioned at plaintext `offset`.
    pub fn open(mut inner: R, key: &EncryptionKey, size: u64, offset: u64) -> io::Result<Self> {
        let mut header = [0u8; HEADER as usize];
        inner.read_exact(&mut header)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sealed blob has no seal header: the file is corrupt",
            ));
        }
        let salt: [u8; SALT] = header[MAGIC.len()..].try_into().expect("header length");
        let segment = offset / SEGMENT;
        inner.seek(SeekFrom::Start(HEADER + segment * (SEGMENT + TAG)))?;
        let mut reader = SealReader {
            inner,
            cipher: key.blob_key(&salt),
            size,
            segment,
            buf: Vec::new(),
            pos: 0,
        };
        if offset < size {
            reader.next_segment()?;
            reader.pos = (offset - segment * SEGMENT) as usize;
        } else {
            // Nothing left to read: past the last segment.
            reader.segment = segments(size);
        }
        Ok(reader)
    }

    fn next_segment(&mut self) -> io::Result<()> {
        let count = segments(self.size);
        let start = self.segment * SEGMENT;
        let plain = SEGMENT.min(self.size - start);
        self.buf.resize((plain + TAG) as usize, 0);
        self.inner.read_exact(&mut self.buf)?;
        let last = self.segment + 1 == count;
        self.cipher
            .decrypt_in_place(&nonce(self.segment, last), b"", &mut self.buf)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "sealed blob segment {} failed authentication: the key is wrong or the file is corrupt",
                        self.segment
                    ),
                )
            })?;
        self.segment += 1;
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read + Seek> Read for SealReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.segment * SEGMENT >= self.size {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_at(key: &EncryptionKey, sealed: &[u8], size: u64, offset: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        SealReader::open(io::Cursor::new(sealed), key, size, offset)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_offset_of_every_size_reads_back() {
        let key = EncryptionKey::new([3; 32]);
        for size in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 17] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal(&key, &plain);
            assert_eq!(sealed.len() as u64, sealed_len(size), "size {size}");
            for offset in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 5, size] {
                if offset > size {
                    continue;
                }
                let got = read_at(&key, &sealed, size, offset).unwrap();
                assert_eq!(
                    got,
                    &plain[offset as usize..],
                    "size {size} offset {offset}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_key_a_flipped_bit_or_a_cut_file_fails_to_read() {
        let key = EncryptionKey::new([3; 32]);
        let size = 2 * SEGMENT;
        let plain = vec![9u8; size as usize];
        let sealed = seal(&key, &plain);
        assert!(read_at(&EncryptionKey::new([4; 32]), &sealed, size, 0).is_err());
        let mut flipped = sealed.clone();
        flipped[HEADER as usize + 100] ^= 1;
        assert!(read_at(&key, &flipped, size, 0).is_err());
        // Cut after the first segment and claimed one segment long: the first segment
        // was not sealed as the last, so it does not open as a whole blob.
        let cut = &sealed[..(HEADER + SEGMENT + TAG) as usize];
        assert!(read_at(&key, cut, SEGMENT, 0).is_err());
        let mut no_magic = sealed.clone();
        no_magic[0] = b'x';
        assert!(read_at(&key, &no_magic, size, 0).is_err());
    }

    #[test]
    fn equal_content_is_sealed_differently_and_addressed_per_key() {
        let (a, b) = (EncryptionKey::new([1; 32]), EncryptionKey::new([2; 32]));
        assert_ne!(seal(&a, b"same"), seal(&a, b"same"), "fresh salt per blob");
        let address = |k: &EncryptionKey| *k.address_hasher().update(b"same").finalize().as_bytes();
        assert_eq!(address(&a), address(&a));
        assert_ne!(address(&a), address(&b));
        assert_ne!(address(&a), *blake3::hash(b"same").as_bytes());
    }

    #[test]
    fn a_store_opens_only_with_the_key_it_was_first_opened_with() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (EncryptionKey::new([1; 32]), EncryptionKey::new([2; 32]));
        check_store_key(dir.path(), None).unwrap();
        check_store_key(dir.path(), Some(&a)).unwrap();
        check_store_key(dir.path(), Some(&a)).unwrap();
        assert!(check_store_key(dir.path(), Some(&b))
            .unwrap_err()
            .contains("not the one"));
        assert!(check_store_key(dir.path(), None)
            .unwrap_err()
            .contains("--encryption-key-file"));
        let file = std::fs::read_to_string(dir.path().join(KEY_CHECK_FILE)).unwrap();
        assert!(
            !file.contains(&hex::encode([1u8; 32])),
            "the key is not stored"
        );
    }

    #[test]
    fn key_files_hold_raw_or_hex_keys() {
        let hex_key = format!("{}\n", "0f".repeat(32));
        assert_eq!(
            EncryptionKey::from_file_content(hex_key.as_bytes()).unwrap(),
            EncryptionKey::new([0x0f; 32])
        );
        assert_eq!(
            EncryptionKey::from_file_content(&[7; 32]).unwrap(),
            EncryptionKey::new([7; 32])
        );
        assert!(EncryptionKey::from_file_content(b"short").is_err());
    }

    #[test]
    fn binding_keys_are_64_hex_characters() {
        let key = EncryptionKey::from_binding("get", &"ab".repeat(32)).unwrap();
        assert_eq!(key, EncryptionKey::new([0xab; 32]));
        for bad in ["ab", &"zz".repeat(32), &"ab".repeat(33)] {
            let e = EncryptionKey::from_binding("get", bad).unwrap_err();
            assert_eq!(e.kind, R2ErrorKind::InvalidArgument);
        }
        assert!(!format!("{key:?}").contains("abab"), "Debug hides the key");
    }
}
