//! Time Travel's history of one database: every commit is a point it can return to.
//!
//! `<db>.sqlite.history/` holds eras. An era is a base, `base-<µs>.sqlite` (a copy of
//! the database made with SQLite's online backup), and a log, `log-<µs>`, of the
//! commits after it. Each log record is one commit: its time, the pages the commit
//! wrote (read back from the WAL right after it, see `wal`) and the database's size.
//! The state at a point is its era's base with the log's records up to the point laid
//! over it.
//!
//! Appending a record costs a WAL read and a write of the same pages, but no fsync of
//! its own: the records survive a killed process as the page cache does. For a power
//! loss, SQLite's automatic checkpoint is off on the writer; history fsyncs its log
//! before it checkpoints, so every committed page is always in the WAL or in a durable
//! record. A commit the log missed (the process died between SQLite's commit and the
//! append) is found on open, by the WAL holding more than the last record says, and
//! a new base is taken then.
//!
//! A new era starts when the newest is a quarter of the window old or its log
//! outgrows the database; eras wholly older than the window are deleted, so the
//! disk holds about five bases and the window's commits.

pub(super) mod wal;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::bookmark::{now_micros, rfc3339, TimeTravelError};
use super::connection::Conn;
use wal::{Committed, WalPos};

const MAGIC: &[u8; 4] = b"TTR1";
/// magic, time, two salts, WAL end, database pages, page size, page count.
const RECORD_HEADER: usize = 4 + 8 + 4 + 4 + 8 + 4 + 4 + 4;
/// Truncated BLAKE3 of the record before it: a torn last record is dropped on open.
const RECORD_HASH: usize = 16;
/// WAL frames after which history fsyncs its log and checkpoints: SQLite's own
/// automatic checkpoint threshold.
const CHECKPOINT_FRAMES: u64 = 1000;
/// A log this large starts a new era even if the database is smaller.
const ERA_LOG_BYTES: u64 = 64 << 20;

/// One commit in a log.
#[derive(Debug, Clone, Copy)]
struct RecordHeader {
    at: u64,
    pos: WalPos,
    db_pages: u32,
    page_size: u32,
    pages: u32,
}

struct Era {
    base_at: u64,
    /// Commit times, oldest first; the first is the base's own.
    points: Vec<u64>,
    log_len: u64,
}

/// A database's history (see the module's text). Lives beside the writer connection
/// and is only used while holding it.
pub(crate) struct History {
    dir: PathBuf,
    wal: PathBuf,
    window: Duration,
    eras: Vec<Era>,
    /// The newest era's log, appended to.
    log: Option<File>,
    pos: WalPos,
    page_size: u32,
    db_bytes: u64,
    /// Set when a commit could not be logged: the next one starts a new era.
    needs_base: bool,
    restores: VecDeque<Instant>,
}

fn storage(what: &str, path: &Path) -> impl FnOnce(io::Error) -> TimeTravelError {
    let doing = format!("{what} {}", path.display());
    move |e| TimeTravelError::Storage(format!("{doing}: {e}"))
}

fn sql_storage(e: rusqlite::Error) -> TimeTravelError {
    TimeTravelError::Storage(e.to_string())
}

impl History {
    /// Opens the history of the database at `db_path`, whose writer is `conn`, starting
    /// it (or a new era, after a crash) with a base of the current state. Returns the
    /// time of the newest point.
    pub(crate) fn open(
        db_path: &Path,
        window: Duration,
        conn: &Conn,
    ) -> Result<(History, u64), TimeTravelError> {
        let dir = history_dir(db_path);
        std::fs::create_dir_all(&dir).map_err(storage("creating", &dir))?;
        conn.trusted(|| conn.sqlite.pragma_update(None, "wal_autocheckpoint", 0))
            .map_err(sql_storage)?;
        let page_size = u32::try_from(conn.page_size).unwrap_or(4096);
        let mut history = History {
            wal: PathBuf::from(format!("{}-wal", db_path.display())),
            dir,
            window,
            eras: Vec::new(),
            log: None,
            pos: WalPos::default(),
            page_size,
            db_bytes: 0,
            needs_base: false,
            restores: VecDeque::new(),
        };
        let last = history.load()?;
        // Frames in the WAL that SQLite holds committed (a passive checkpoint reports
        // them and copies what it can).
        let frames: i64 = conn
            .trusted(|| {
                conn.sqlite
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            })
            .map_err(sql_storage)?;
        let current = match wal::header(&history.wal).map_err(storage("reading", &history.wal))? {
            Some((salts, size)) if frames > 0 => WalPos {
                salts,
                end: wal::end_of(frames as u64, size),
            },
            _ => WalPos::default(),
        };
        let logged_all = match last {
            Some(record) => frames <= 0 || record.pos == current,
            None => false,
        };
        history.pos = current;
        let newest = match last {
            Some(record) if logged_all => record.at,
            other => {
                let at = now_micros().max(other.map_or(0, |r| r.at + 1));
                history.start_era(conn, at, current)?;
                at
            }
        };
        Ok((history, newest))
    }

    /// Reads every era, dropping incomplete ones and leftovers of interrupted work, and
    /// opens the newest log for appending. Returns the newest record.
    fn load(&mut self) -> Result<Option<RecordHeader>, TimeTravelError> {
        let entries = std::fs::read_dir(&self.dir).map_err(storage("listing", &self.dir))?;
        let mut bases = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(at) = name
                .strip_prefix("base-")
                .and_then(|n| n.strip_suffix(".sqlite"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            {
                bases.push(at);
            } else if !name.starts_with("log-") {
                // Temporary files of a base or restore cut short.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let mut last = None;
        for base_at in bases {
            let log_path = self.log_path(base_at);
            let mut points = Vec::new();
            let mut newest = None;
            let valid = match File::open(&log_path) {
                Ok(f) => each_record(f, |h, _| {
                    points.push(h.at);
                    newest = Some(*h);
                    Ok(true)
                })
                .map_err(storage("reading", &log_path))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(storage("opening", &log_path)(e)),
            };
            if points.is_empty() {
                // A base whose log never got its first record was cut short.
                self.remove_era_files(base_at);
                continue;
            }
            if let Some(h) = newest {
                self.db_bytes = u64::from(h.db_pages) * u64::from(h.page_size);
            }
            last = newest.or(last);
            self.eras.push(Era {
                base_at,
                points,
                log_len: valid,
            });
        }
        if let Some(era) = self.eras.last() {
            let path = self.log_path(era.base_at);
            let log = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(storage("opening", &path))?;
            // Drops a torn last record.
            log.set_len(era.log_len)
                .map_err(storage("truncating", &path))?;
            self.log = Some(log);
        }
        Ok(last)
    }

    /// Logs the commit just made at `at` (µs), starting a new era when due, then
    /// checkpoints and drops what the window no longer needs.
    pub(crate) fn record(&mut self, conn: &Conn, at: u64) -> Result<(), TimeTravelError> {
        let committed =
            wal::committed_since(&self.wal, self.pos).map_err(storage("reading", &self.wal))?;
        if committed.db_pages != 0 {
            self.db_bytes = u64::from(committed.db_pages) * u64::from(committed.page_size);
            self.page_size = committed.page_size;
        }
        let newest = self.eras.last().expect("an open history has an era");
        let era_due = self.needs_base
            || Duration::from_micros(at.saturating_sub(newest.base_at)) >= self.window / 4
            || newest.log_len >= ERA_LOG_BYTES.max(2 * self.db_bytes);
        if era_due {
            self.start_era(conn, at, committed.pos)?;
        } else {
            self.append(at, &committed)?;
        }
        if committed.pos.end > wal::end_of(CHECKPOINT_FRAMES, self.page_size) {
            self.checkpoint(conn)?;
        }
        self.prune(at);
        Ok(())
    }

    /// After a commit that could not be logged: the next commit starts a new era.
    pub(crate) fn lost_track(&mut self) {
        self.needs_base = true;
    }

    fn append(&mut self, at: u64, committed: &Committed) -> Result<(), TimeTravelError> {
        let header = RecordHeader {
            at,
            pos: committed.pos,
            db_pages: committed.db_pages,
            page_size: committed.page_size,
            pages: committed.pages.len() as u32,
        };
        let record = encode(
            &header,
            committed.pages.iter().map(|(n, p)| (*n, p.as_slice())),
        );
        let era = self.eras.last_mut().expect("an open history has an era");
        let log = self.log.as_mut().expect("the newest era's log is open");
        if let Err(e) = log.write_all(&record) {
            // A partial record would hide every later one: cut it off (appends go
            // to the end, wherever that is).
            let _ = log.set_len(era.log_len);
            self.needs_base = true;
            return Err(TimeTravelError::Storage(format!(
                "appending to its log: {e}"
            )));
        }
        era.log_len += record.len() as u64;
        era.points.push(at);
        self.pos = committed.pos;
        Ok(())
    }

    /// Starts an era at `at` with a base of the database as `conn` sees it, the WAL
    /// being at `pos`.
    fn start_era(&mut self, conn: &Conn, at: u64, pos: WalPos) -> Result<(), TimeTravelError> {
        let base = self.base_path(at);
        let tmp = base.with_extension("sqlite.tmp");
        copy_database(&conn.sqlite, &tmp).map_err(sql_storage)?;
        File::open(&tmp)
            .and_then(|f| crate::fsync::file(&f))
            .map_err(storage("syncing", &tmp))?;
        std::fs::rename(&tmp, &base).map_err(storage("naming", &base))?;
        let log_path = self.log_path(at);
        let header = RecordHeader {
            at,
            pos,
            db_pages: 0,
            page_size: self.page_size,
            pages: 0,
        };
        let record = encode(&header, std::iter::empty());
        let mut log = File::create(&log_path).map_err(storage("creating", &log_path))?;
        log.write_all(&record)
            .and_then(|()| crate::fsync::file(&log))
            .and_then(|()| crate::fsync::dir(&self.dir))
            .map_err(storage("writing", &log_path))?;
        // Appending, so that cutting off a failed record needs no seek.
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(storage("opening", &log_path))?;
        if let Some(old) = self.log.replace(log) {
            // Its records are complete; make them durable before the WAL moves on.
            crate::fsync::file(&old).map_err(storage("syncing", &self.dir))?;
        }
        self.eras.push(Era {
            base_at: at,
            points: vec![at],
            log_len: record.len() as u64,
        });
        self.pos = pos;
        self.needs_base = false;
        Ok(())
    }

    fn checkpoint(&mut self, conn: &Conn) -> Result<(), TimeTravelError> {
        if let Some(log) = &self.log {
            crate::fsync::data(log).map_err(storage("syncing the log in", &self.dir))?;
        }
        conn.trusted(|| {
            conn.sqlite
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        })
        .map_err(sql_storage)
    }

    /// Deletes the eras before the one holding the window's start.
    fn prune(&mut self, now: u64) {
        let cutoff = self.cutoff(now);
        let keep_from = self
            .eras
            .iter()
            .rposition(|e| e.base_at <= cutoff)
            .unwrap_or(0);
        for era in self.eras.drain(..keep_from).collect::<Vec<_>>() {
            self.remove_era_files(era.base_at);
        }
    }

    fn cutoff(&self, now: u64) -> u64 {
        now.saturating_sub(u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX))
    }

    /// The point at or before `at` (µs), if `at` is inside the window; `asked` names it
    /// in errors.
    pub(crate) fn resolve(&self, at: u64, asked: &str) -> Result<u64, TimeTravelError> {
        let now = now_micros();
        if at > now {
            return Err(TimeTravelError::InTheFuture(asked.to_owned()));
        }
        let oldest = self
            .cutoff(now)
            .max(self.eras.first().map_or(now, |e| e.base_at));
        if at < oldest {
            return Err(TimeTravelError::OutsideWindow {
                asked: asked.to_owned(),
                oldest: rfc3339(oldest),
            });
        }
        let era = self.era_of(at).expect("at is after the first base");
        let points = &self.eras[era].points;
        Ok(points[points.partition_point(|p| *p <= at) - 1])
    }

    fn era_of(&self, at: u64) -> Option<usize> {
        self.eras.iter().rposition(|e| e.base_at <= at)
    }

    /// Writes the database as it was at the point `at` to `dest`.
    pub(crate) fn reconstruct(&self, at: u64, dest: &Path) -> Result<(), TimeTravelError> {
        let era = &self.eras[self.era_of(at).expect("a resolved point")];
        let base = self.base_path(era.base_at);
        std::fs::copy(&base, dest).map_err(storage("copying", &base))?;
        let out = OpenOptions::new()
            .write(true)
            .open(dest)
            .map_err(storage("opening", dest))?;
        let log_path = self.log_path(era.base_at);
        let log = File::open(&log_path).map_err(storage("opening", &log_path))?;
        each_record(log, |h, pages| {
            if h.at > at {
                return Ok(false);
            }
            let size = 4 + h.page_size as usize;
            for page in pages.chunks_exact(size) {
                let number = u32::from_le_bytes(page[..4].try_into().expect("4 bytes"));
                let offset = u64::from(number - 1) * u64::from(h.page_size);
                out.write_all_at(&page[4..], offset)?;
            }
            if h.db_pages != 0 {
                out.set_len(u64::from(h.db_pages) * u64::from(h.page_size))?;
            }
            Ok(true)
        })
        .map_err(storage("replaying", &log_path))?;
        Ok(())
    }

    /// Counts a restore against `limit` per `period`, refusing one over it.
    pub(crate) fn admit_restore(
        &mut self,
        limit: u32,
        period: Duration,
    ) -> Result<(), TimeTravelError> {
        let now = Instant::now();
        while self
            .restores
            .front()
            .is_some_and(|t| now.duration_since(*t) >= period)
        {
            self.restores.pop_front();
        }
        if self.restores.len() >= limit as usize {
            let oldest = *self.restores.front().expect("limit reached");
            let retry = period.saturating_sub(now.duration_since(oldest));
            return Err(TimeTravelError::TooManyRestores {
                limit,
                period_secs: period.as_secs(),
                retry_secs: retry.as_secs() + 1,
            });
        }
        self.restores.push_back(now);
        Ok(())
    }

    /// A file in the history directory for a restore to build its state in.
    pub(crate) fn scratch(&self) -> PathBuf {
        self.dir.join("restore.tmp")
    }

    fn base_path(&self, at: u64) -> PathBuf {
        self.dir.join(format!("base-{at:016x}.sqlite"))
    }

    fn log_path(&self, at: u64) -> PathBuf {
        self.dir.join(format!("log-{at:016x}"))
    }

    fn remove_era_files(&self, base_at: u64) {
        // A file left behind is removed with the next era that goes.
        let _ = std::fs::remove_file(self.base_path(base_at));
        let _ = std::fs::remove_file(self.log_path(base_at));
    }
}

impl Drop for History {
    fn drop(&mut self) {
        // SQLite checkpoints the WAL when the writer closes, right after this.
        if let Some(log) = &self.log {
            let _ = crate::fsync::data(log);
        }
    }
}

/// Where the history of the database at `db_path` lives.
pub(crate) fn history_dir(db_path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.history", db_path.display()))
}

/// Copies the database `source` sees to a new file `dest` with SQLite's online backup
/// API, in one step (one read transaction). The copy is neither journaled nor synced:
/// callers sync or discard it.
pub(crate) fn copy_database(source: &Connection, dest: &Path) -> rusqlite::Result<()> {
    let mut out = Connection::open(dest)?;
    out.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")?;
    rusqlite::backup::Backup::new(source, &mut out)?.step(-1)?;
    out.close().map_err(|(_, e)| e)
}

fn encode<'a>(h: &RecordHeader, pages: impl Iterator<Item = (u32, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        RECORD_HEADER + h.pages as usize * (4 + h.page_size as usize) + RECORD_HASH,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&h.at.to_le_bytes());
    out.extend_from_slice(&h.pos.salts.0.to_le_bytes());
    out.extend_from_slice(&h.pos.salts.1.to_le_bytes());
    out.extend_from_slice(&h.pos.end.to_le_bytes());
    out.extend_from_slice(&h.db_pages.to_le_bytes());
    out.extend_from_slice(&h.page_size.to_le_bytes());
    out.extend_from_slice(&h.pages.to_le_bytes());
    for (number, page) in pages {
        out.extend_from_slice(&number.to_le_bytes());
        out.extend_from_slice(page);
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(&hash.as_bytes()[..RECORD_HASH]);
    out
}

fn decode(b: &[u8; RECORD_HEADER]) -> Option<RecordHeader> {
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let h = RecordHeader {
        at: u64_at(4),
        pos: WalPos {
            salts: (u32_at(12), u32_at(16)),
            end: u64_at(20),
        },
        db_pages: u32_at(28),
        page_size: u32_at(32),
        pages: u32_at(36),
    };
    // Bounds a garbage header's allocation: SQLite pages are at most 64 KiB.
    (&b[..4] == MAGIC && h.page_size <= 65536 && h.pages <= 1 << 20).then_some(h)
}

/// Calls `f` with each whole record of a log (header, then page numbers and pages)
/// until it returns false or the log ends; returns where the whole records end.
fn each_record(
    log: File,
    mut f: impl FnMut(&RecordHeader, &[u8]) -> io::Result<bool>,
) -> io::Result<u64> {
    let mut log = BufReader::with_capacity(1 << 20, log);
    let mut valid = 0u64;
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; RECORD_HEADER];
        if read_exact_or_end(&mut log, &mut head)?.is_none() {
            return Ok(valid);
        }
        let Some(h) = decode(&head) else {
            return Ok(valid);
        };
        let len = h.pages as usize * (4 + h.page_size as usize);
        body.resize(len + RECORD_HASH, 0);
        if read_exact_or_end(&mut log, &mut body)?.is_none() {
            return Ok(valid);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&head);
        hasher.update(&body[..len]);
        if hasher.finalize().as_bytes()[..RECORD_HASH] != body[len..] {
            return Ok(valid);
        }
        if !f(&h, &body[..len])? {
            return Ok(valid);
        }
        valid += (RECORD_HEADER + len + RECORD_HASH) as u64;
    }
}

/// Fills `buf`, or returns `None` if the file ends first.
fn read_exact_or_end(r: &mut impl Read, buf: &mut [u8]) -> io::Result<Option<()>> {
    match r.read_exact(buf) {
        Ok(()) => Ok(Some(())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}
