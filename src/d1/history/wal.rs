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
/// Frames read per system call while scanning.
const CHUNK_FRAMES: u64 = 64;

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
    let whole_frames = len.saturating_sub(offset) / frame;
    let mut chunk = vec![0u8; (frame * whole_frames.min(CHUNK_FRAMES)) as usize];
    file.seek(SeekFrom::Start(offset))?;
    'scan: while offset + frame <= len {
        let want = ((len - offset) / frame).min(CHUNK_FRAMES);
        let buf = &mut chunk[..(want * frame) as usize];
        let read = read_up_to(&mut file, buf)?;
        let frames = read as u64 / frame;
        if frames == 0 {
            break;
        }
        for i in 0..frames {
            let f = &buf[(i * frame) as usize..((i + 1) * frame) as usize];
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
        offset += frames * frame;
        if frames < want {
            break;
        }
    }
    Ok(found)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Bytes of `frames` WAL frames of `page_size` after the header: where a WAL holding
/// that many frames ends.
pub(super) fn end_of(frames: u64, page_size: u32) -> u64 {
    HEADER + frames * (FRAME_HEADER + u64::from(page_size))
}
