//! Reading the pages SQLite's last commits appended to the WAL file.
//!
//! The WAL is a 32-byte header (page size at 8, salts at 16 and 20, big-endian) and
//! frames of a 24-byte header (page number, the database size in pages on a commit
//! frame and 0 otherwise, the salts) and one page. A checkpoint that has copied every
//! frame lets the next write start the file over with new salts, so frames are this
//! generation's only while their salts match the header's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

const HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;
/// Frames the scan after a commit reads first, and at most per system call.
const FIRST_READ_FRAMES: u64 = 4;
const MAX_READ_FRAMES: u64 = 64;

/// How far into the WAL history has read: the generation (its salts) and the offset
/// after the last commit frame taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct WalPos {
    pub salts: (u32, u32),
    pub end: u64,
}

/// The pages of the commits after a [`WalPos`], each page as last written.
pub(super) struct Committed {
    pub pos: WalPos,
    pub page_size: u32,
    /// Database size in pages after the last commit read (0: nothing read).
    pub db_pages: u32,
    pub pages: BTreeMap<u32, Vec<u8>>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The WAL's salts and page size, or `None` when it is missing or has no header yet.
pub(super) fn header(wal: &Path) -> io::Result<Option<((u32, u32), u32)>> {
    match File::open(wal) {
        Ok(mut file) => read_header(&mut file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_header(file: &mut File) -> io::Result<Option<((u32, u32), u32)>> {
    let mut head = [0u8; HEADER as usize];
    match file.read_exact(&mut head) {
        Ok(()) => Ok(Some(((be32(&head, 16), be32(&head, 20)), be32(&head, 8)))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// The pages committed after `from`: from its offset if the WAL is still the same
/// generation, else from the start of the new one. Frames after the last commit frame
/// (none while the caller holds the writer) are left out.
///
/// Runs after every commit, so it opens the file once and reads only up to the length
/// the file had when opened: the writer is held, so nothing is appended meanwhile.
pub(super) fn committed_since(wal: &Path, from: WalPos) -> io::Result<Committed> {
    let nothing = || Committed {
        pos: from,
        page_size: 0,
        db_pages: 0,
        pages: BTreeMap::new(),
    };
    let mut file = match File::open(wal) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(nothing()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let Some((salts, page_size)) = read_header(&mut file)? else {
        return Ok(nothing());
    };
    let frame = FRAME_HEADER + u64::from(page_size);
    let mut offset = if salts == from.salts {
        from.end
    } else {
        HEADER
    };
    let mut found = Committed {
        pos: WalPos { salts, end: offset },
        page_size,
        db_pages: 0,
        pages: BTreeMap::new(),
    };
    // Pages of frames read but not yet followed by a commit frame.
    let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
    // A WAL that starts over is not truncated: past this generation's last frame lie
    // older ones (other salts) up to the file's high-water mark. Most commits add a few
    // frames, so the first read takes a few and each further read twice as many: a
    // one-row insert does not copy a stale quarter-megabyte.
    let mut want = FIRST_READ_FRAMES;
    let mut chunk = Vec::new();
    file.seek(SeekFrom::Start(offset))?;
    'scan: while offset + frame <= len {
        let asked = ((len - offset) / frame).min(want);
        chunk.clear();
        // Reserved up front, so that the read fills it in one call.
        chunk.reserve_exact((asked * frame) as usize);
        (&mut file).take(asked * frame).read_to_end(&mut chunk)?;
        let frames = chunk.len() as u64 / frame;
        for i in 0..frames {
            let f = &chunk[(i * frame) as usize..((i + 1) * frame) as usize];
            if (be32(f, 8), be32(f, 12)) != salts {
                break 'scan;
            }
            pending.push((be32(f, 0), f[FRAME_HEADER as usize..].to_vec()));
            let commit_size = be32(f, 4);
            if commit_size != 0 {
                found.pages.extend(pending.drain(..));
                found.db_pages = commit_size;
                found.pos.end = offset + (i + 1) * frame;
            }
        }
        if frames < asked {
            break;
        }
        offset += frames * frame;
        want = (want * 2).min(MAX_READ_FRAMES);
    }
    Ok(found)
}

/// Bytes of `frames` WAL frames of `page_size` after the header: where a WAL holding
/// that many frames ends.
pub(super) fn end_of(frames: u64, page_size: u32) -> u64 {
    HEADER + frames * (FRAME_HEADER + u64::from(page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_count(conn: &rusqlite::Connection) -> u32 {
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap()
    }

    /// After a checkpoint the WAL starts over at its head without shrinking: the scan
    /// takes the new generation's commits and stops at the older frames behind them,
    /// however many commits of however many frames came before.
    #[test]
    fn a_restarted_wal_yields_only_its_new_commits() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        for rows in [1, 40, 3, 150] {
            conn.execute_batch("BEGIN").unwrap();
            for _ in 0..rows {
                conn.execute("INSERT INTO t VALUES (randomblob(900))", [])
                    .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        }
        let wal = dir.path().join("db.sqlite-wal");
        let first = committed_since(&wal, WalPos::default()).unwrap();
        let len = std::fs::metadata(&wal).unwrap().len();
        assert_eq!(first.pos.end, len);
        assert_eq!(first.db_pages, page_count(&conn));

        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        conn.execute("INSERT INTO t VALUES (randomblob(900))", [])
            .unwrap();
        let second = committed_since(&wal, first.pos).unwrap();
        assert_ne!(second.pos.salts, first.pos.salts, "the WAL started over");
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            len,
            "and kept its length"
        );
        assert!(second.pos.end < len / 4, "stopped at the older frames");
        assert!(!second.pages.is_empty() && second.pages.len() <= 3);
        assert_eq!(second.db_pages, page_count(&conn));
        // Nothing new since: nothing read.
        let third = committed_since(&wal, second.pos).unwrap();
        assert_eq!(third.pos, second.pos);
        assert!(third.pages.is_empty());
    }
}
