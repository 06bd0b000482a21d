//! Content-addressed blob files: `<r2>/blobs/<2 hex>/<blake3 hex>`.
//!
//! A blob is written to `<r2>/tmp/`, hashed while it streams (BLAKE3 for identity, MD5
//! for the ETag, and the checksum the caller asked to verify), fsynced, then renamed into
//! place and its directory fsynced. Identical content lands on the same path once.
//!
//! The store also holds what keeps garbage collection off live data: the guard taken
//! from placing a blob until the row naming it commits, and the set of temporary files
//! being written.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use md5::Digest;
use serde::{Deserialize, Serialize};

use super::seal::{self, EncryptionKey, SealReader, SealWriter};

/// Size of one read from the body. With the chunks queued for the MD5 thread, memory per
/// upload stays at a few MiB whatever the object size.
const CHUNK: usize = 256 << 10;

/// The identity and size of one stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// BLAKE3 of the content (keyed, for a sealed blob: see [`super::seal`]).
    pub hash: [u8; 32],
    /// Bytes of content (a sealed blob's file is longer: [`seal::sealed_len`]).
    pub size: u64,
}

/// A checksum algorithm the caller may ask to have verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// CRC-32 (IEEE), big-endian: the S3 API's `x-amz-checksum-crc32`.
    Crc32,
    /// CRC-32C (Castagnoli), big-endian: the S3 API's `x-amz-checksum-crc32c`.
    Crc32c,
}

/// What streaming a body into the store computed. It holds the store's blob guard, so
/// that no collection runs until it is dropped: keep it until the catalog row naming
/// the blob has committed.
#[derive(Debug)]
pub struct Written<'a> {
    /// Where it is.
    pub blob: BlobRef,
    /// MD5 of the content (the ETag of a single-part object).
    pub md5: [u8; 16],
    /// The extra digest asked for, if any.
    pub extra: Option<(HashAlgorithm, Vec<u8>)>,
    /// The content itself (sealed, when written with a key) when it is small enough to
    /// live in the catalog row (see [`BlobStore::write`]); then no blob file was written.
    pub inline: Option<Vec<u8>>,
    _placed: Option<RwLockReadGuard<'a, ()>>,
}

pub(crate) struct BlobStore {
    root: PathBuf,
    /// fsync files and directories (always, except in the benchmark-only relaxed mode).
    durable: bool,
    /// Bodies up to this many bytes are kept in the catalog row instead of a blob file.
    inline_max: u64,
    /// Held shared from placing a blob until the row naming it commits (by [`Written`]),
    /// exclusively by garbage collection while it marks and sweeps: a collection never
    /// takes a blob about to be referenced for garbage. Not held while a body streams
    /// in, so a collection never waits for a slow upload, nor makes new writes wait
    /// behind it.
    guard: RwLock<()>,
    /// Temporary files a write is streaming into: a collection leaves them alone
    /// whatever their age (only one process opens a data directory, so every file in
    /// `tmp/` not listed here is a leftover).
    receiving: Mutex<HashSet<PathBuf>>,
}

/// A temporary file listed in [`BlobStore::receiving`] until this is dropped.
struct Receiving<'a> {
    store: &'a BlobStore,
    path: PathBuf,
}

impl<'a> Receiving<'a> {
    fn new(store: &'a BlobStore, path: PathBuf) -> Self {
        lock(&store.receiving).insert(path.clone());
        Receiving { store, path }
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        lock(&self.store.receiving).remove(&self.path);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Extra {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
}

impl Extra {
    fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha1 => Extra::Sha1(Default::default()),
            HashAlgorithm::Sha256 => Extra::Sha256(Default::default()),
            HashAlgorithm::Sha384 => Extra::Sha384(Default::default()),
            HashAlgorithm::Sha512 => Extra::Sha512(Default::default()),
            HashAlgorithm::Crc32 => Extra::Crc32(Default::default()),
            HashAlgorithm::Crc32c => Extra::Crc32c(0),
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Extra::Sha1(h) => h.update(data),
            Extra::Sha256(h) => h.update(data),
            Extra::Sha384(h) => h.update(data),
            Extra::Sha512(h) => h.update(data),
            Extra::Crc32(h) => h.update(data),
            Extra::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
        }
    }
    fn finish(self) -> (HashAlgorithm, Vec<u8>) {
        match self {
            Extra::Sha1(h) => (HashAlgorithm::Sha1, h.finalize().to_vec()),
            Extra::Sha256(h) => (HashAlgorithm::Sha256, h.finalize().to_vec()),
            Extra::Sha384(h) => (HashAlgorithm::Sha384, h.finalize().to_vec()),
            Extra::Sha512(h) => (HashAlgorithm::Sha512, h.finalize().to_vec()),
            Extra::Crc32(h) => (HashAlgorithm::Crc32, h.finalize().to_be_bytes().to_vec()),
            Extra::Crc32c(c) => (HashAlgorithm::Crc32c, c.to_be_bytes().to_vec()),
        }
    }
}

/// Why streaming a body failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The body was longer than the limit.
    TooLarge,
    /// The body ended before its declared length, or ran past it.
    LengthMismatch { expected: u64, got: u64 },
    /// The disk or the reader failed.
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl BlobStore {
    /// Opens (creating) the blob directories. All 256 shard directories are made up
    /// front, once, so that placing a blob never has to create and fsync a directory.
    pub fn open(root: PathBuf, durable: bool, inline_max: u64) -> io::Result<BlobStore> {
        let blobs = root.join("blobs");
        fs::create_dir_all(root.join("tmp"))?;
        // Each one checked: a restored backup has only the shards its blobs are in.
        let missing: Vec<PathBuf> = (0..=255u8)
            .map(|shard| blobs.join(format!("{shard:02x}")))
            .filter(|dir| !dir.is_dir())
            .collect();
        if !missing.is_empty() {
            for dir in missing {
                fs::create_dir_all(dir)?;
            }
            sync(&blobs)?;
        }
        sync(&root)?;
        Ok(BlobStore {
            root,
            durable,
            inline_max,
            guard: RwLock::new(()),
            receiving: Mutex::new(HashSet::new()),
        })
    }

    /// The guard in exclusive mode: no blob is being placed or about to be referenced.
    pub fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.guard.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a write is streaming into the temporary file `path`.
    pub fn is_receiving(&self, path: &Path) -> bool {
        lock(&self.receiving).contains(path)
    }

    pub fn path_of(&self, hash: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(hash);
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    /// Restarts the grace period of the blobs of a row about to be replaced or removed:
    /// a collection counts it from a blob's mtime, and a reader that resolved the row
    /// just before may not have opened every blob yet (later parts open lazily). Called
    /// before the transaction commits, so no collection sees the blob unreferenced
    /// with its old mtime; a transaction that then fails only leaves a fresher mtime.
    pub fn release(&self, parts: &[BlobRef]) -> io::Result<()> {
        for part in parts {
            match touch(&self.path_of(&part.hash)) {
                // Already missing (fsck reports that): nothing a reader could open.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Streams `body` into a durable blob. `expected` is the declared length, `limit` the
    /// most bytes accepted. The result holds the blob guard: keep it until the catalog
    /// row that references the blob has committed.
    ///
    /// With `may_inline`, a body declared no longer than the store's inline threshold
    /// is only read and hashed, and returned in [`Written::inline`] for the caller to
    /// store in its catalog row: one durable commit instead of a blob fsync, a
    /// directory fsync and the commit. This is the one place that decides.
    ///
    /// With `seal`, the content is encrypted under that key on its way to disk (see
    /// [`super::seal`]); the digests are still of the plaintext.
    pub fn write(
        &self,
        body: &mut dyn Read,
        expected: Option<u64>,
        limit: u64,
        extra: Option<HashAlgorithm>,
        may_inline: bool,
        seal: Option<&EncryptionKey>,
    ) -> Result<Written<'_>, WriteError> {
        if let Some(len) = expected.filter(|&n| may_inline && n <= self.inline_max.min(limit)) {
            return read_inline(body, len, extra, seal);
        }
        let tmp = self
            .tmp_dir()
            .join(uuid::Uuid::new_v4().simple().to_string());
        let _receiving = Receiving::new(self, tmp.clone());
        let result = self.write_tmp(&tmp, body, expected, limit, extra, seal);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_tmp(
        &self,
        tmp: &Path,
        body: &mut dyn Read,
        expected: Option<u64>,
        limit: u64,
        extra: Option<HashAlgorithm>,
        seal: Option<&EncryptionKey>,
    ) -> Result<Written<'_>, WriteError> {
        // MD5 is the slowest step (~0.5 GB/s against BLAKE3's several): it runs on a
        // thread of its own, fed the same chunks, while this thread hashes with BLAKE3,
        // writes, starts the disk's writeback early, and then makes the blob durable
        // under its name. Only the catalog row needs the MD5 (the ETag), so a put costs
        // MD5's time plus one commit, not MD5's time plus three flushes.
        std::thread::scope(|scope| {
            let (chunks, inbox) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(8);
            let md5_worker = scope.spawn(move || {
                let mut md5 = md5::Md5::new();
                for chunk in inbox {
                    md5.update(chunk.as_slice());
                }
                <[u8; 16]>::from(md5.finalize())
            });
            let outcome = self.stream(tmp, body, expected, limit, extra, seal, &chunks);
            drop(chunks);
            let placed = outcome.and_then(|(file, blake, size, extra)| {
                if self.durable {
                    crate::fsync::file(&file)?;
                }
                drop(file);
                let blob = BlobRef {
                    hash: *blake.finalize().as_bytes(),
                    size,
                };
                let guard = self.guard.read().unwrap_or_else(|p| p.into_inner());
                self.place(tmp, &blob.hash)?;
                Ok((blob, extra, guard))
            });
            let md5 = md5_worker.join().expect("the MD5 thread does not panic");
            let (blob, extra, guard) = placed?;
            Ok(Written {
                blob,
                md5,
                extra: extra.map(Extra::finish),
                inline: None,
                _placed: Some(guard),
            })
        })
    }

    /// Copies `body` to a new file at `tmp` in chunks (sealing them under `seal`),
    /// hashing with BLAKE3 (and `extra`) here and handing each chunk to the MD5 thread
    /// through `md5`. The file is created once the first chunk is on its way to MD5,
    /// which is the critical path.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn stream(
        &self,
        tmp: &Path,
        body: &mut dyn Read,
        expected: Option<u64>,
        limit: u64,
        extra: Option<HashAlgorithm>,
        seal: Option<&EncryptionKey>,
        md5: &std::sync::mpsc::SyncSender<Arc<Vec<u8>>>,
    ) -> Result<(File, blake3::Hasher, u64, Option<Extra>), WriteError> {
        let mut blake = seal.map_or_else(blake3::Hasher::new, EncryptionKey::address_hasher);
        let mut extra = extra.map(Extra::new);
        let mut size = 0u64;
        let mut out: Option<TmpFile> = None;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            let n = body.take(CHUNK as u64).read_to_end(&mut chunk)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(WriteError::TooLarge);
            }
            if let Some(want) = expected {
                if size > want {
                    return Err(WriteError::LengthMismatch {
                        expected: want,
                        got: size,
                    });
                }
            }
            let chunk = Arc::new(chunk);
            // The receiver only stops early if its thread died, which `join` reports.
            let _ = md5.send(Arc::clone(&chunk));
            blake.update(&chunk);
            if let Some(h) = extra.as_mut() {
                h.update(&chunk);
            }
            let out = match &mut out {
                Some(out) => out,
                None => out.insert(TmpFile::create(tmp, seal)?),
            };
            out.write(&chunk, self.durable)?;
        }
        if let Some(want) = expected {
            if size != want {
                return Err(WriteError::LengthMismatch {
                    expected: want,
                    got: size,
                });
            }
        }
        let file = match out {
            Some(out) => out.finish()?,
            None => TmpFile::create(tmp, seal)?.finish()?,
        };
        Ok((file, blake, size, extra))
    }

    /// Moves a finished temp file to its content address, or drops it when that content
    /// is already stored (refreshing the stored copy's mtime, so that a collection
    /// running later does not see it as old garbage).
    fn place(&self, tmp: &Path, hash: &[u8; 32]) -> io::Result<()> {
        let dest = self.path_of(hash);
        let dir = dest.parent().expect("blob paths have parents");
        if dest.exists() {
            fs::remove_file(tmp)?;
            touch(&dest)?;
            // The write that placed it may not have synced its directory yet (it runs
            // beside this one, or failed just after the rename): this write's object
            // must not be acknowledged before the blob's name is durable.
            if self.durable {
                sync(dir)?;
            }
            return Ok(());
        }
        fs::rename(tmp, &dest)?;
        if self.durable {
            sync(dir)?;
        }
        Ok(())
    }

    /// A reader over `length` bytes from `offset` of the concatenation of `parts`, or of
    /// `inline` when the content lives in the catalog row; `seal` is the key the
    /// content was sealed with, if it was.
    pub fn reader(
        &self,
        parts: &[BlobRef],
        inline: Option<Vec<u8>>,
        offset: u64,
        length: u64,
        seal: Option<EncryptionKey>,
    ) -> io::Result<BlobReader> {
        if let Some(bytes) = inline {
            let mut cursor = io::Cursor::new(bytes);
            let current: Box<dyn Read + Send> = match &seal {
                Some(key) => {
                    let size = parts.first().map_or(0, |p| p.size);
                    Box::new(SealReader::open(cursor, key, size, offset)?)
                }
                None => {
                    cursor.set_position(offset);
                    Box::new(cursor)
                }
            };
            return Ok(BlobReader {
                paths: Vec::new(),
                index: 0,
                skip: 0,
                remaining: length,
                current: Some(current),
                seal: None,
            });
        }
        Ok(BlobReader {
            paths: parts
                .iter()
                .map(|p| (self.path_of(&p.hash), p.size))
                .collect(),
            index: 0,
            skip: offset,
            remaining: length,
            current: None,
            seal,
        })
    }
}

/// Reads a body of declared length `len` (small: at most the inline threshold) into
/// memory and hashes it as [`BlobStore::write`] would have, in this thread: for a few
/// KiB, MD5's own thread would cost more than it saves.
fn read_inline(
    body: &mut dyn Read,
    len: u64,
    extra: Option<HashAlgorithm>,
    seal: Option<&EncryptionKey>,
) -> Result<Written<'static>, WriteError> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // One byte more than declared, to tell a longer body from an exact one.
    body.take(len + 1).read_to_end(&mut bytes)?;
    let got = bytes.len() as u64;
    if got != len {
        return Err(WriteError::LengthMismatch { expected: len, got });
    }
    let extra = extra.map(|alg| {
        let mut h = Extra::new(alg);
        h.update(&bytes);
        h.finish()
    });
    let md5 = md5::Md5::digest(&bytes).into();
    let (hash, stored) = match seal {
        Some(key) => (
            *key.address_hasher().update(&bytes).finalize().as_bytes(),
            seal::seal(key, &bytes),
        ),
        None => (*blake3::hash(&bytes).as_bytes(), bytes),
    };
    Ok(Written {
        blob: BlobRef { hash, size: got },
        md5,
        extra,
        inline: Some(stored),
        _placed: None,
    })
}

/// A blob's temp file while its content streams in: sealed or plain, with the disk's
/// writeback started behind each chunk so that the final fsync has little left to do.
struct TmpFile {
    file: File,
    sealer: Option<SealWriter>,
    /// Bytes already handed to writeback.
    on_disk: u64,
}

impl TmpFile {
    fn create(path: &Path, seal: Option<&EncryptionKey>) -> io::Result<TmpFile> {
        let mut file = File::create(path)?;
        let sealer = seal.map(|k| SealWriter::start(k, &mut file)).transpose()?;
        let on_disk = file.stream_position()?;
        Ok(TmpFile {
            file,
            sealer,
            on_disk,
        })
    }

    fn write(&mut self, chunk: &[u8], durable: bool) -> io::Result<()> {
        match self.sealer.as_mut() {
            Some(s) => s.write(chunk, &mut self.file)?,
            None => self.file.write_all(chunk)?,
        }
        if durable {
            let end = self.file.stream_position()?;
            start_writeback(&self.file, self.on_disk, end - self.on_disk);
            self.on_disk = end;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<File> {
        if let Some(s) = self.sealer {
            s.finish(&mut self.file)?;
        }
        Ok(self.file)
    }
}

/// Asks the kernel to start writing a just-written range to disk without waiting, so
/// the fsync at the end finds most of the file already there (Linux only; elsewhere the
/// final fsync does all the work).
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an open descriptor; a failure only loses the hint.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Sets the mtime of `path` to now: where garbage collection's grace period starts.
fn touch(path: &Path) -> io::Result<()> {
    File::options()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now())
}

#[track_caller]
fn sync(dir: &Path) -> io::Result<()> {
    crate::fsync::dir(dir)
}

/// Reads a byte range of an object that may span several blobs, opening each blob only
/// when the range reaches it and seeking, never reading, past the bytes before it.
pub struct BlobReader {
    paths: Vec<(PathBuf, u64)>,
    index: usize,
    skip: u64,
    remaining: u64,
    /// The part being read: a blob file, or an inline body.
    current: Option<Box<dyn Read + Send>>,
    /// The key the blob files were sealed with, if they were.
    seal: Option<EncryptionKey>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.remaining == 0 {
                return Ok(0);
            }
            if let Some(file) = self.current.as_mut() {
                let cap = buf
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                let n = file.read(&mut buf[..cap])?;
                if n > 0 {
                    self.remaining -= n as u64;
                    return Ok(n);
                }
                self.current = None;
                continue;
            }
            let Some((path, size)) = self.paths.get(self.index) else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object is shorter than its catalog entry says",
                ));
            };
            self.index += 1;
            if self.skip >= *size {
                self.skip -= size;
                continue;
            }
            let mut file = File::open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("blob {}: {e}", path.display())))?;
            self.current = Some(match &self.seal {
                Some(key) => {
                    Box::new(SealReader::open(file, key, *size, self.skip).map_err(|e| {
                        io::Error::new(e.kind(), format!("blob {}: {e}", path.display()))
                    })?)
                }
                None => {
                    file.seek(SeekFrom::Start(self.skip))?;
                    Box::new(file.take(size - self.skip))
                }
            });
            self.skip = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_makes_every_missing_shard_even_when_the_last_one_exists() {
        // As a restored backup whose only blob is in shard ff leaves it.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("blobs").join("ff")).unwrap();
        BlobStore::open(dir.path().to_owned(), true, 0).unwrap();
        for shard in 0..=255u8 {
            let shard = dir.path().join("blobs").join(format!("{shard:02x}"));
            assert!(shard.is_dir(), "{}", shard.display());
        }
    }

    /// Bodies of no bytes, one byte, a chunk exactly and a chunk and a bit, streamed
    /// without a declared length: each lands under its BLAKE3 with its MD5, byte for byte.
    #[test]
    fn streamed_bodies_land_whole_at_chunk_edges() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().to_owned(), true, 0).unwrap();
        for len in [0, 1, CHUNK, CHUNK + 7] {
            let body: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let written = store
                .write(&mut body.as_slice(), None, u64::MAX, None, false, None)
                .unwrap();
            assert_eq!(written.blob.size, len as u64);
            assert_eq!(written.blob.hash, *blake3::hash(&body).as_bytes());
            assert_eq!(written.md5, <[u8; 16]>::from(md5::Md5::digest(&body)));
            assert_eq!(fs::read(store.path_of(&written.blob.hash)).unwrap(), body);
        }
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }
}
