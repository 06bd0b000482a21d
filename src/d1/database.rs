//! A D1 database: one SQLite file, one writer connection and a pool of readers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::bookmark;
use super::connection::{Conn, Outcome};
use super::error::{D1Error, SqlError};
use super::group_commit::WriterSlot;
use super::history::History;
use super::interrupt::Interrupt;
use super::limits::D1Limits;
use super::result::{D1ExecResult, D1Meta, D1Result, D1Timings};
use super::sql_text;
use super::statement::D1PreparedStatement;

/// Idle reader connections kept open; more are opened under load and closed after.
const IDLE_READERS: usize = 8;

/// A handle to one D1 database, like the `env.DB` binding of a Worker.
///
/// Cheap to clone and `Send + Sync`: every clone shares the same connections. Writes
/// go through one connection, one at a time, each atomic on its own; concurrent ones
/// share a commit (see `group_commit`). Read-only statements run on a pool of reader
/// connections and proceed while a write is under way.
#[derive(Clone)]
pub struct D1Database {
    pub(crate) shared: Arc<Shared>,
    /// Stops this handle's calls early (see [`D1Database::interruptible`]).
    pub(super) interrupt: Option<Interrupt>,
}

pub(crate) struct Shared {
    path: PathBuf,
    pub(crate) limits: D1Limits,
    pub(super) writer: Mutex<WriterSlot>,
    /// Write requests waiting for the writer: while there are any, a request leaves its
    /// transaction open for them to join rather than committing.
    pub(super) queued: AtomicUsize,
    readers: Mutex<Vec<Conn>>,
    /// The writer's `last_insert_rowid()` after the last commit, which reads report as D1 does.
    pub(super) last_row_id: AtomicI64,
    /// Database size after the last committed write.
    pub(super) size: AtomicU64,
    /// Position of the last committed write in this database's history (see
    /// [`D1Database::bookmark`]).
    commit: AtomicU64,
    /// The bookmark's last group: a stable tag of this database.
    tag: String,
}

impl std::fmt::Debug for D1Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("D1Database")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl D1Database {
    /// Opens (creating if needed) the SQLite file at `path` as a D1 database.
    pub fn open(path: impl AsRef<Path>, limits: D1Limits) -> Result<Self, D1Error> {
        let path = path.as_ref().to_path_buf();
        let writer = Conn::open(&path, &limits, true)?;
        let size = writer.size().map_err(D1Error::Query)?;
        let tag = blake3::hash(path.as_os_str().as_encoded_bytes()).to_hex()[..32].to_owned();
        let (history, newest) = History::open(&path, limits.time_travel_window, &writer)
            .map_err(|e| D1Error::query(e.to_string(), "SQLITE_IOERR"))?;
        Ok(D1Database {
            shared: Arc::new(Shared {
                path,
                limits,
                writer: Mutex::new(WriterSlot::new(writer, history)),
                queued: AtomicUsize::new(0),
                readers: Mutex::new(Vec::new()),
                last_row_id: AtomicI64::new(0),
                size: AtomicU64::new(size),
                commit: AtomicU64::new(newest),
                tag,
            }),
            interrupt: None,
        })
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    /// A handle to the database `weak` points to, if a handle to it is still alive.
    pub(crate) fn upgrade(weak: &std::sync::Weak<Shared>) -> Option<D1Database> {
        Some(D1Database {
            shared: weak.upgrade()?,
            interrupt: None,
        })
    }

    /// This database, with calls made through the returned handle (and the statements
    /// it prepares) stopped as soon as `interrupt` is set: the running statement fails
    /// with `SQLITE_INTERRUPT` and a write rolls back, as at the time limit.
    pub fn interruptible(&self, interrupt: &Interrupt) -> D1Database {
        D1Database {
            shared: Arc::clone(&self.shared),
            interrupt: Some(interrupt.clone()),
        }
    }

    /// The SQLite file behind this database.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The limits this database enforces.
    pub fn limits(&self) -> &D1Limits {
        &self.shared.limits
    }

    /// The session bookmark of the database's current state, in D1's format (four
    /// lowercase hex groups; later states sort later): what `getBookmark()` returns
    /// after a query. Every committed write moves it forward.
    ///
    /// The position is the commit's time in microseconds, kept strictly increasing, so
    /// bookmarks also increase across restarts while the clock does. Each one names a
    /// point of the database's Time Travel history (see `history`).
    pub fn bookmark(&self) -> String {
        bookmark::format(self.shared.commit.load(Ordering::Relaxed), &self.shared.tag)
    }

    pub(super) fn tag(&self) -> &str {
        &self.shared.tag
    }

    /// Moves the bookmark past the commit the writer just made and logs that commit in
    /// the history.
    pub(super) fn committed(&self, slot: &mut WriterSlot) {
        let now = bookmark::now_micros();
        let at = match self
            .shared
            .commit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |at| {
                Some(now.max(at + 1))
            }) {
            Ok(before) | Err(before) => now.max(before + 1),
        };
        if let Err(e) = slot.history.record(&slot.conn, at) {
            // The write itself is durable and answered as such; the history starts a
            // new era at the next commit, and only this point is missing from it.
            tracing::warn!(database = %self.shared.path.display(), "{e}");
            slot.history.lost_track();
        }
    }

    /// Drops every table, view, index and trigger, leaving the database as new but
    /// keeping its file and id: what resetting a test run needs.
    pub fn clear(&self) -> Result<(), D1Error> {
        let mut slot = self.lock_writer();
        let conn = &slot.conn;
        conn.trusted(|| -> rusqlite::Result<()> {
            // Dropping a parent table deletes its rows first, which foreign keys refuse.
            conn.sqlite.pragma_update(None, "foreign_keys", "OFF")?;
            let dropped = drop_schema(&conn.sqlite);
            conn.sqlite.pragma_update(None, "foreign_keys", "ON")?;
            dropped?;
            // Back to a new database's size, so `size_after` and `changed_db` read as
            // they would on one. VACUUM works in an attached copy, which D1's limits
            // forbid to user SQL.
            use rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED;
            let attached = conn.sqlite.set_limit(SQLITE_LIMIT_ATTACHED, 1);
            let vacuumed = conn.sqlite.execute_batch("VACUUM");
            conn.sqlite.set_limit(SQLITE_LIMIT_ATTACHED, attached);
            vacuumed
        })?;
        self.shared
            .size
            .store(conn.size().map_err(D1Error::Query)?, Ordering::Relaxed);
        self.shared.last_row_id.store(0, Ordering::Relaxed);
        self.committed(&mut slot);
        Ok(())
    }

    /// A statement to run later with [`bind`](D1PreparedStatement::bind) and one of the
    /// run methods. Nothing is validated until it runs, as in D1.
    pub fn prepare(&self, sql: impl Into<String>) -> D1PreparedStatement {
        D1PreparedStatement::new(self.clone(), sql.into())
    }

    /// Runs the statements in order as one transaction: all of them take effect or, if
    /// one fails, none does and the error is that statement's.
    pub fn batch(&self, statements: &[D1PreparedStatement]) -> Result<Vec<D1Result>, D1Error> {
        if statements.is_empty() {
            return Err(D1Error::query(
                "No SQL statements detected.",
                "SQLITE_ERROR",
            ));
        }
        self.write(|w| {
            statements
                .iter()
                .map(|s| w.run(s.sql(), s.params()).map_err(D1Error::Query))
                .collect()
        })
    }

    /// Runs SQL without parameters the way the binding's `exec()` does: the text is
    /// trimmed and split at newlines and each line runs as a query of its own. All
    /// lines run in one transaction, as every local D1 does (production's atomicity is
    /// not documented; see docs/compatibility.md).
    pub fn exec(&self, sql: &str) -> Result<D1ExecResult, D1Error> {
        let results = self.write(|w| {
            let mut results = Vec::new();
            for (line, text) in sql_text::exec_lines(sql) {
                // Blank and comment-only lines are skipped rather than sent as empty queries.
                if sql_text::shape(text) == sql_text::Shape::Blank {
                    continue;
                }
                let result = w.run(text, &[]).map_err(|error| D1Error::Exec {
                    line,
                    sql: text.to_owned(),
                    error,
                })?;
                results.push(result);
            }
            if results.is_empty() {
                return Err(D1Error::Exec {
                    line: 1,
                    sql: sql.trim().lines().next().unwrap_or("").to_owned(),
                    error: SqlError {
                        message: "No SQL statements detected.".into(),
                        code: "SQLITE_ERROR",
                    },
                });
            }
            Ok(results)
        })?;
        Ok(D1ExecResult {
            count: results.len(),
            duration: results.iter().map(|r| r.meta.duration).sum(),
        })
    }

    /// Runs a script of `;`-separated statements as one transaction and returns one
    /// result per statement: what D1's REST `query` endpoint and `wrangler d1 execute`
    /// do with multi-statement SQL. `params` go to the single statement of a
    /// one-statement script.
    pub fn execute_script(
        &self,
        sql: &str,
        params: &[super::D1Value],
    ) -> Result<Vec<D1Result>, D1Error> {
        if sql_text::shape(sql) != sql_text::Shape::Several {
            return self.write(|w| Ok(vec![w.run(sql, params).map_err(D1Error::Query)?]));
        }
        if !params.is_empty() {
            return Err(D1Error::query(
                "Parameters can only be bound to a single statement; split the script or drop the params",
                "SQLITE_RANGE",
            ));
        }
        self.write(|w| w.run_each(sql))
    }

    /// Runs one statement from a [`D1PreparedStatement`]: on a reader if it only reads,
    /// else on the writer in a transaction of its own.
    pub(crate) fn run_statement(
        &self,
        sql: &str,
        params: &[super::D1Value],
    ) -> Result<D1Result, D1Error> {
        let start = Instant::now();
        let reader = self.checkout_reader()?;
        reader.arm(self.shared.limits.query_timeout, self.interrupt.as_ref());
        let outcome = reader.run_if_readonly(sql, params);
        reader.disarm();
        self.checkin_reader(reader);
        match outcome.map_err(D1Error::Query)? {
            Some(out) => Ok(self.read_result(out, start)),
            None => self.write(|w| w.run(sql, params).map_err(D1Error::Query)),
        }
    }

    fn read_result(&self, out: Outcome, start: Instant) -> D1Result {
        finish(
            out,
            start,
            0,
            self.shared.last_row_id.load(Ordering::Relaxed),
            false,
            self.shared.size.load(Ordering::Relaxed),
        )
    }

    /// The writer with no transaction open, for work outside a request: a group being
    /// formed is committed first (its requests are answered as usual).
    pub(super) fn lock_writer(&self) -> MutexGuard<'_, WriterSlot> {
        let mut slot = self.lock_slot();
        // A failed commit is its requests' to handle: they run again, alone.
        let _ = self.commit_group(&mut slot);
        slot
    }

    pub(super) fn lock_slot(&self) -> MutexGuard<'_, WriterSlot> {
        // A panic while a request holds the lock rolls its group back (see
        // `group_commit`), so poisoning is not fatal.
        self.shared.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn checkout_reader(&self) -> Result<Conn, D1Error> {
        let pooled = self
            .shared
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => Ok(Conn::open(&self.shared.path, &self.shared.limits, false)?),
        }
    }

    fn checkin_reader(&self, conn: Conn) {
        let mut pool = self
            .shared
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
    }

    /// Runs `f` on the writer connection with the D1 policy lifted: for tristore's own
    /// reads of the schema (dump, table counts).
    pub(crate) fn with_trusted_writer<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, D1Error> {
        let slot = self.lock_writer();
        let out = slot.conn.trusted(|| f(&slot.conn.sqlite));
        Ok(out?)
    }

    /// Size of the database in bytes (pages in use times page size).
    pub fn file_size(&self) -> Result<u64, D1Error> {
        self.lock_writer().conn.size().map_err(D1Error::Query)
    }

    /// Number of tables, not counting SQLite's and D1's internal ones.
    pub fn num_tables(&self) -> Result<u64, D1Error> {
        self.with_trusted_writer(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )
        })
    }
}

/// Drops every schema object but SQLite's own, triggers and views first so that no
/// drop trips over a dependent object, in one transaction.
fn drop_schema(sqlite: &rusqlite::Connection) -> rusqlite::Result<()> {
    let tx = sqlite.unchecked_transaction()?;
    let objects: Vec<(String, String)> = tx
        .prepare(
            "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (kind, name) in objects {
        tx.execute_batch(&format!(
            "DROP {} IF EXISTS {}",
            kind.to_uppercase(),
            super::migrations::quote_ident(&name)
        ))?;
    }
    tx.commit()
}

/// The writer connection during one request, tracking what `meta` needs.
pub(crate) struct Writer<'a> {
    conn: &'a Conn,
    /// `last_row_id` and size before the request.
    last_row_id: i64,
    size: u64,
    /// `last_row_id` and size after the latest statement, once one ran.
    state: std::cell::Cell<(Option<i64>, Option<u64>)>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(conn: &'a Conn, last_row_id: i64, size: u64) -> Self {
        Writer {
            conn,
            last_row_id,
            size,
            state: Default::default(),
        }
    }

    /// `last_row_id` and size after the request's last statement.
    pub(super) fn after(&self) -> (i64, u64) {
        let (last_row_id, size) = self.state.get();
        (
            last_row_id.unwrap_or(self.last_row_id),
            size.unwrap_or(self.size),
        )
    }

    /// Runs one SQL text (possibly several statements) and builds its `D1Result`.
    pub(crate) fn run(&self, sql: &str, params: &[super::D1Value]) -> Result<D1Result, SqlError> {
        let start = Instant::now();
        let changes_before = self.conn.total_changes();
        let (prev_row_id, prev_size) = self.after();
        let out = self.conn.run(sql, params)?;
        let changes = self.conn.total_changes() - changes_before;
        let last_row_id = self.conn.sqlite.last_insert_rowid();
        // Statements that only read cannot change the page count.
        let size = if out.wrote {
            self.conn.size()?
        } else {
            prev_size
        };
        self.state.set((Some(last_row_id), Some(size)));
        let changed = changes != 0 || last_row_id != prev_row_id || size != prev_size;
        Ok(finish(out, start, changes, last_row_id, changed, size))
    }

    /// Runs each statement of a script separately, one result each.
    fn run_each(&self, sql: &str) -> Result<Vec<D1Result>, D1Error> {
        let results = sql_text::split_statements(sql)
            .map(|stmt| self.run(stmt, &[]).map_err(D1Error::Query))
            .collect::<Result<Vec<_>, _>>()?;
        if results.is_empty() {
            return Err(D1Error::query(
                "No SQL statements detected.",
                "SQLITE_ERROR",
            ));
        }
        Ok(results)
    }
}

fn finish(
    out: Outcome,
    start: Instant,
    changes: u64,
    last_row_id: i64,
    changed_db: bool,
    size_after: u64,
) -> D1Result {
    let duration = start.elapsed().as_secs_f64() * 1000.0;
    D1Result {
        success: true,
        meta: D1Meta {
            duration,
            changes,
            last_row_id,
            changed_db,
            size_after,
            rows_read: out.rows_read,
            rows_written: out.rows_written,
            served_by: std::borrow::Cow::Borrowed("tristore.db"),
            timings: D1Timings {
                sql_duration_ms: duration,
            },
        },
        columns: out.columns,
        rows: out.rows,
    }
}
