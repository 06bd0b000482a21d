//! The write-ahead log of one index: every mutation, appended and fsynced before it is
//! acknowledged.
//!
//! Format: the 8-byte magic `TRIVWAL1`, then records of
//! `payload length (u32 LE) | CRC-32 of the payload (u32 LE) | payload (postcard Mutation)`.
//! A record that runs past the end of the file, or whose checksum fails and nothing
//! follows it, is the torn tail of a write that was never acknowledged: it is cut off.
//! A bad record with more data after it is corruption and opening fails, naming the file
//! and offset.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metadata::MetadataIndex;

const MAGIC: &[u8; 8] = b"TRIVWAL1";
/// No record is this large (a 5,000-vector batch of 1,536 dimensions with 10 KiB of
/// metadata each is about 80 MB).
const MAX_RECORD: usize = 1 << 30;

/// A vector as logged: metadata as its JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoggedVector {
    pub(crate) id: String,
    pub(crate) values: Vec<f32>,
    pub(crate) namespace: Option<String>,
    pub(crate) metadata: Option<String>,
}

/// What a mutation does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Change {
    Insert(Vec<LoggedVector>),
    Upsert(Vec<LoggedVector>),
    Delete(Vec<String>),
    CreateMetadataIndex(MetadataIndex),
    DeleteMetadataIndex(String),
}

/// One logged mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Mutation {
    /// Its UUID.
    pub(crate) id: [u8; 16],
    /// When it was applied, milliseconds since the Unix epoch.
    pub(crate) at_ms: i64,
    pub(crate) change: Change,
}

/// An open log, positioned at its end.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    len: u64,
    /// Why appending is refused: a failed append whose bytes could not be removed.
    broken: Option<String>,
}

/// Why a log could not be opened.
#[derive(Debug)]
pub(crate) enum WalError {
    Io(std::io::Error),
    Corrupt { offset: u64, why: String },
}

impl std::fmt::Display for WalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalError::Io(e) => write!(f, "{e}"),
            WalError::Corrupt { offset, why } => write!(
                f,
                "corrupt write-ahead log at byte {offset}: {why}; restore the index directory from a backup, or delete this file to lose the mutations since the last segment"
            ),
        }
    }
}

impl From<std::io::Error> for WalError {
    fn from(e: std::io::Error) -> Self {
        WalError::Io(e)
    }
}

impl Wal {
    /// Creates an empty log (the caller syncs the directory).
    pub(crate) fn create(path: &Path) -> std::io::Result<Wal> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        file.write_all(MAGIC)?;
        crate::fsync::file(&file)?;
        Ok(Wal {
            file,
            path: path.to_owned(),
            len: MAGIC.len() as u64,
            broken: None,
        })
    }

    /// Opens a log and returns its mutations, cutting off a torn tail.
    pub(crate) fn open(path: &Path) -> Result<(Wal, Vec<Mutation>), WalError> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // A kill inside `create` leaves the header cut short (often an empty file): no
        // mutation was ever appended, since appends follow the header's fsync, so the
        // log is finished as `create` would have.
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(MAGIC)?;
            crate::fsync::file(&file)?;
            bytes = MAGIC.to_vec();
        }
        let (mutations, good) = parse(&bytes)?;
        if good < bytes.len() {
            file.set_len(good as u64)?;
            crate::fsync::file(&file)?;
        }
        // Appends go where the good records end, not after the torn tail just cut off.
        file.seek(SeekFrom::Start(good as u64))?;
        Ok((
            Wal {
                file,
                path: path.to_owned(),
                len: good as u64,
                broken: None,
            },
            mutations,
        ))
    }

    /// Appends one mutation and fsyncs; when this returns Ok the mutation is durable.
    pub(crate) fn append(&mut self, mutation: &Mutation) -> std::io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(format!(
                "the log cannot be appended to until the index is reopened ({why})"
            )));
        }
        let payload = postcard::to_allocvec(mutation).map_err(std::io::Error::other)?;
        let mut record = Vec::with_capacity(8 + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let result = self
            .file
            .write_all(&record)
            .and_then(|()| crate::fsync::data(&self.file));
        if let Err(e) = result {
            // Leave no half record behind a later append (a full disk fails part way):
            // cut it off and write the next record where this one began. The file
            // position must move back too, or the next record would follow a hole.
            let len = self.len;
            let cut = self
                .file
                .set_len(len)
                .and_then(|()| self.file.seek(SeekFrom::Start(len)).map(drop));
            if let Err(cut) = cut {
                self.broken = Some(format!(
                    "{e}, and the half-written record could not be cut off: {cut}"
                ));
            }
            return Err(e);
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Bytes in the log.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The log's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A log holding `payloads` as records with correct checksums, so that a fuzzer's bytes
/// reach the record decoder.
#[doc(hidden)]
pub fn frame(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Parses a whole log: its mutations and the length of the good prefix.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Vec<Mutation>, usize), WalError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(WalError::Corrupt {
            offset: 0,
            why: "the file does not start with the write-ahead log header".into(),
        });
    }
    let mut at = MAGIC.len();
    let mut out = Vec::new();
    while at < bytes.len() {
        let header_end = at + 8;
        if header_end > bytes.len() {
            break; // torn header
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = header_end.saturating_add(len);
        if len > MAX_RECORD || end > bytes.len() {
            if len <= MAX_RECORD {
                break; // torn payload
            }
            return Err(corrupt(at, bytes.len(), "record length out of range"));
        }
        let payload = &bytes[header_end..end];
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                break; // torn last record
            }
            return Err(corrupt(at, end, "checksum mismatch"));
        }
        let mutation: Mutation = postcard::from_bytes(payload).map_err(|e| WalError::Corrupt {
            offset: at as u64,
            why: format!("undecodable record: {e}"),
        })?;
        out.push(mutation);
        at = end;
    }
    Ok((out, at))
}

fn corrupt(at: usize, end: usize, why: &str) -> WalError {
    WalError::Corrupt {
        offset: at as u64,
        why: format!(
            "{why} (record at byte {at}, {} bytes follow it)",
            end.saturating_sub(at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutation(n: u8) -> Mutation {
        Mutation {
            id: [n; 16],
            at_ms: n as i64,
            change: Change::Delete(vec![format!("v{n}")]),
        }
    }

    /// What a kill inside `create` leaves (found by `tests/vectorize_crash.rs`): the
    /// header cut short opens as an empty log that takes appends; other bytes do not.
    #[test]
    fn a_log_whose_creation_was_cut_short_opens_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        for cut in 0..MAGIC.len() {
            std::fs::write(&path, &MAGIC[..cut]).unwrap();
            let (mut wal, got) = Wal::open(&path).unwrap();
            assert!(got.is_empty(), "cut at {cut}");
            wal.append(&mutation(1)).unwrap();
            drop(wal);
            assert_eq!(Wal::open(&path).unwrap().1, vec![mutation(1)]);
        }
        std::fs::write(&path, b"XY").unwrap();
        assert!(Wal::open(&path).is_err());
    }

    #[test]
    fn torn_tails_are_cut_and_middle_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::create(&path).unwrap();
        for n in 0..3 {
            wal.append(&mutation(n)).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        // Every truncation point keeps exactly the whole records before it.
        let record = (full.len() - 8) / 3;
        for cut in 8..full.len() {
            let (got, good) = parse(&full[..cut]).unwrap();
            assert_eq!(got.len(), (cut - 8) / record, "cut at {cut}");
            assert_eq!(good, 8 + got.len() * record);
        }
        // A flipped byte in the last record is a torn tail; in the first, corruption.
        let mut last = full.clone();
        *last.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&last).unwrap().0.len(), 2);
        let mut first = full.clone();
        first[8 + 9] ^= 1;
        let e = parse(&first).unwrap_err().to_string();
        assert!(e.contains("byte 8") && e.contains("checksum"), "{e}");
        // Reopening cuts the tail off the file for good.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (wal, got) = Wal::open(&path).unwrap();
        assert_eq!(got, vec![mutation(0), mutation(1)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), wal.len());
    }

    #[test]
    fn appends_after_a_cut_tail_follow_the_good_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::create(&path).unwrap();
        for n in 0..3 {
            wal.append(&mutation(n)).unwrap();
        }
        drop(wal);
        // A torn last record, cut off on open: the next append must go where it began,
        // not after a hole where the cut bytes were.
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&mutation(7)).unwrap();
        drop(wal);
        let (_, got) = Wal::open(&path).unwrap();
        assert_eq!(got, vec![mutation(0), mutation(1), mutation(7)]);
    }
}
