//! One SQLite connection configured as a D1 database: WAL with `synchronous=FULL`,
//! foreign keys on, D1's limits, its SQL policy and its query time limit.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{ffi, Connection, OpenFlags, Statement, StatementStatus};

use super::error::SqlError;
use super::interrupt::Interrupt;
use super::limits::D1Limits;
use super::policy::{Policy, TOGGLE_PRAGMAS};
use super::sql_text::{self, Shape};
use super::value::D1Value;

/// What running one SQL text produced.
pub(crate) struct Outcome {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<D1Value>>,
    pub rows_read: u64,
    pub rows_written: u64,
    /// Whether a statement that may write ran: only those can change the page count.
    pub wrote: bool,
}

impl Outcome {
    /// For a simple count (`count` true), the rows read as workerd counts them: the
    /// rows counted, which is the one value the statement returns.
    fn counted(mut self, count: bool) -> Outcome {
        if let (true, [row]) = (count, self.rows.as_slice()) {
            if let [D1Value::Integer(n)] = row.as_slice() {
                self.rows_read = u64::try_from(*n).unwrap_or(0);
            }
        }
        self
    }
}

/// Text of the error a query gets when it runs past the time limit.
const TIMEOUT_MESSAGE: &str =
    "D1 DB storage operation exceeded timeout which caused object to be reset.";

/// Text of the error a query gets when its request is interrupted (its client left).
const INTERRUPTED_MESSAGE: &str =
    "The request was interrupted before it finished (its client went away); nothing it wrote was kept";

/// What stops the request running on a connection: its deadline or its [`Interrupt`].
/// Read by SQLite's progress handler while a statement runs and before each statement.
#[derive(Default)]
struct Watch {
    /// Nanoseconds after [`epoch`] past which the request is stopped; 0 = none.
    deadline: AtomicU64,
    interrupt: Mutex<Option<Interrupt>>,
}

impl Watch {
    /// Why the request must stop now, if it must.
    fn stop_reason(&self) -> Option<&'static str> {
        let interrupted = self
            .interrupt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(Interrupt::is_interrupted);
        if interrupted {
            return Some(INTERRUPTED_MESSAGE);
        }
        let d = self.deadline.load(Ordering::Relaxed);
        (d != 0 && nanos_since_epoch(Instant::now()) > d).then_some(TIMEOUT_MESSAGE)
    }
}

/// JSON bytes charged per statement for what surrounds its rows (`meta` and the rest).
const STATEMENT_JSON: u64 = 300;

pub(crate) struct Conn {
    /// Declared before `sqlite` so that they are finalized before the connection closes.
    own: OwnStatements,
    pub sqlite: Connection,
    policy: Arc<Policy>,
    watch: Arc<Watch>,
    /// [`D1Limits::max_result_size`].
    max_result_size: u64,
    /// JSON bytes the running request may still return.
    result_budget: std::cell::Cell<u64>,
    pub page_size: u64,
    /// Which statement texts are simple counts (see [`Conn::simple_count`]).
    counts: std::cell::RefCell<std::collections::HashMap<String, bool>>,
}

/// Process-wide origin for deadlines, so that one can live in an `AtomicU64`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

impl Conn {
    /// Opens `path`. The writer creates the file and sets WAL mode; readers open read-only.
    pub fn open(path: &Path, limits: &D1Limits, writer: bool) -> rusqlite::Result<Conn> {
        let flags = if writer {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let sqlite = Connection::open_with_flags(path, flags)?;
        sqlite.busy_timeout(Duration::from_secs(10))?;
        if writer {
            sqlite.pragma_update(None, "journal_mode", "WAL")?;
        }
        sqlite.pragma_update(None, "synchronous", "FULL")?;
        sqlite.pragma_update(None, "foreign_keys", "ON")?;
        limits.apply(&sqlite)?;
        sqlite.set_prepared_statement_cache_capacity(128);
        let page_size = sqlite.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let own = OwnStatements::prepare(&sqlite)?;

        let policy = Arc::new(Policy::default());
        let judge = Arc::clone(&policy);
        sqlite.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
            judge.authorize(ctx)
        }));

        let watch = Arc::new(Watch::default());
        let stopper = Arc::clone(&watch);
        sqlite.progress_handler(1000, Some(move || stopper.stop_reason().is_some()));
        Ok(Conn {
            own,
            sqlite,
            policy,
            watch,
            max_result_size: limits.max_result_size,
            result_budget: std::cell::Cell::new(limits.max_result_size),
            page_size,
            counts: Default::default(),
        })
    }

    /// Starts one request: its time limit, the interrupt that may stop it early, and
    /// its budget of result bytes.
    pub fn arm(&self, timeout: Duration, interrupt: Option<&Interrupt>) {
        self.result_budget.set(self.max_result_size);
        let d = nanos_since_epoch(Instant::now() + timeout).max(1);
        self.watch.deadline.store(d, Ordering::Relaxed);
        *self
            .watch
            .interrupt
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = interrupt.cloned();
    }

    /// Ends the request: clears its time limit and interrupt, and undoes PRAGMA
    /// toggles, which D1 scopes to the request's transaction.
    pub fn disarm(&self) {
        self.watch.deadline.store(0, Ordering::Relaxed);
        *self
            .watch
            .interrupt
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if self.policy.take_toggled() {
            self.policy.trusted(|| {
                for (name, default) in TOGGLE_PRAGMAS {
                    // Resetting is best effort: a failure leaves a toggle as the user set it.
                    let _ = self.sqlite.pragma_update(None, name, default);
                }
            });
        }
    }

    /// Runs `f` with the D1 policy lifted, for tristore's own SQL.
    pub fn trusted<T>(&self, f: impl FnOnce() -> T) -> T {
        self.policy.trusted(f)
    }

    /// Runs one of tristore's own transaction statements, which the D1 policy would
    /// refuse to user SQL.
    pub fn own(&self, which: Own) -> rusqlite::Result<()> {
        // Trusted: a schema change re-prepares the statement, which runs the authorizer.
        let stmt = &self.own.txn[which as usize];
        self.policy.trusted(|| stmt.step(&self.sqlite)).map(drop)
    }

    /// Bytes in use by the database: page count times page size.
    pub fn size(&self) -> Result<u64, SqlError> {
        let pages = self
            .policy
            .trusted(|| self.own.page_count.step(&self.sqlite))
            .map_err(|e| self.explain(e))?;
        Ok(u64::try_from(pages.unwrap_or(0)).unwrap_or(0) * self.page_size)
    }

    /// Whether foreign key violations wait for the commit (deferred constraints, or
    /// `defer_foreign_keys`): that commit would fail with them.
    pub fn deferred_violations(&self) -> bool {
        let (mut current, mut highest) = (0, 0);
        // SAFETY: valid handle and out-pointers.
        unsafe {
            ffi::sqlite3_db_status(
                self.sqlite.handle(),
                ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
                &mut current,
                &mut highest,
                0,
            )
        };
        current != 0
    }

    /// Puts `last_insert_rowid()` back to `id`: a rollback undoes the rows but not it.
    pub fn restore_last_row_id(&self, id: i64) {
        // SAFETY: valid handle.
        unsafe { ffi::sqlite3_set_last_insert_rowid(self.sqlite.handle(), id) };
    }

    pub fn total_changes(&self) -> u64 {
        // SAFETY: the handle is valid for as long as `self.sqlite` lives.
        let n = unsafe { ffi::sqlite3_total_changes64(self.sqlite.handle()) };
        u64::try_from(n).unwrap_or(0)
    }

    /// Runs `sql` if it is one read-only statement; `Ok(None)` if it would write or holds
    /// several statements, so the caller can send it to the writer instead.
    pub fn run_if_readonly(
        &self,
        sql: &str,
        params: &[D1Value],
    ) -> Result<Option<Outcome>, SqlError> {
        if sql_text::shape(sql) != Shape::Single {
            return Ok(None);
        }
        let mut stmt = self
            .sqlite
            .prepare_cached(sql)
            .map_err(|e| self.explain(e))?;
        if !stmt.readonly() {
            return Ok(None);
        }
        let count = self.simple_count(sql);
        self.execute(&mut stmt, params)
            .map(|out| Some(out.counted(count)))
    }

    /// Runs every statement of `sql`. As in D1, only the rows of the last statement are
    /// returned and row counters are summed; parameters go to the statement that has
    /// placeholders.
    pub fn run(&self, sql: &str, params: &[D1Value]) -> Result<Outcome, SqlError> {
        match sql_text::shape(sql) {
            Shape::Blank => Err(no_statements()),
            Shape::Single => {
                let mut stmt = self
                    .sqlite
                    .prepare_cached(sql)
                    .map_err(|e| self.explain(e))?;
                let count = self.simple_count(sql);
                self.execute(&mut stmt, params)
                    .map(|out| out.counted(count))
            }
            Shape::Several => self.run_several(sql, params),
        }
    }

    fn run_several(&self, sql: &str, params: &[D1Value]) -> Result<Outcome, SqlError> {
        let mut statements = rusqlite::Batch::new(&self.sqlite, sql);
        let mut outcome: Option<Outcome> = None;
        let mut params_used = params.is_empty();
        // Each statement is prepared only after the previous one ran, so that it sees
        // the tables that one created.
        while let Some(mut stmt) = statements.next().map_err(|e| self.explain(e))? {
            let these = if stmt.parameter_count() > 0 {
                params_used = true;
                params
            } else {
                &[]
            };
            let this = self.execute(&mut stmt, these)?;
            outcome = Some(match outcome {
                None => this,
                Some(prev) => Outcome {
                    rows_read: prev.rows_read + this.rows_read,
                    rows_written: prev.rows_written + this.rows_written,
                    wrote: prev.wrote || this.wrote,
                    ..this
                },
            });
        }
        if !params_used {
            return Err(SqlError::from(rusqlite::Error::InvalidParameterCount(
                params.len(),
                0,
            )));
        }
        outcome.ok_or_else(no_statements)
    }

    /// Whether `sql` is a simple `SELECT count(*) FROM t`, which SQLite answers with its
    /// `Count` opcode: workerd's D1 counts the rows counted as read there, libSQL the
    /// b-tree pages visited. Found once per text (by `EXPLAIN`) and remembered.
    fn simple_count(&self, sql: &str) -> bool {
        let mentions_count = sql
            .as_bytes()
            .windows(5)
            .any(|w| w.eq_ignore_ascii_case(b"count"));
        if !mentions_count {
            return false;
        }
        if let Some(&known) = self.counts.borrow().get(sql) {
            return known;
        }
        // EXPLAIN only lists the program; the text is one statement (`Shape::Single`).
        let found = self.policy.trusted(|| {
            let mut explain = self.sqlite.prepare(&format!("EXPLAIN {sql}"))?;
            let mut ops = explain.query([])?;
            while let Some(op) = ops.next()? {
                if op.get_ref(1)?.as_str() == Ok("Count") && op.get::<_, i64>(4)? == 0 {
                    return Ok(true);
                }
            }
            Ok::<_, rusqlite::Error>(false)
        });
        let mut counts = self.counts.borrow_mut();
        if counts.len() >= 512 {
            counts.clear();
        }
        let found = found.unwrap_or(false);
        counts.insert(sql.to_owned(), found);
        found
    }

    fn execute(&self, stmt: &mut Statement<'_>, params: &[D1Value]) -> Result<Outcome, SqlError> {
        // The progress handler only counts within one statement: a script of many
        // quick ones would never reach it.
        if let Some(reason) = self.watch.stop_reason() {
            return Err(SqlError {
                message: reason.into(),
                code: "SQLITE_INTERRUPT",
            });
        }
        // Counters accumulate across runs of a cached statement: start from zero.
        stmt.reset_status(StatementStatus::RowsRead);
        stmt.reset_status(StatementStatus::RowsWritten);
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let width = columns.len();
        // `"name":` and a comma for each value of a row object.
        let names: u64 = columns.iter().map(|c| c.len() as u64 + 4).sum();
        self.charge(STATEMENT_JSON + names)?;
        let mut rows = Vec::new();
        let mut cursor = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| self.explain(e))?;
        while let Some(row) = cursor.next().map_err(|e| self.explain(e))? {
            let values: Vec<D1Value> = (0..width)
                .map(|i| D1Value::from_ref(row.get_ref_unwrap(i)))
                .collect();
            // Checked row by row, so an oversized result fails before it is all in memory.
            self.charge(2 + names + values.iter().map(D1Value::json_len).sum::<u64>())?;
            rows.push(values);
        }
        drop(cursor);
        Ok(Outcome {
            columns,
            rows,
            rows_read: stmt.reset_status(StatementStatus::RowsRead) as u32 as u64,
            rows_written: stmt.reset_status(StatementStatus::RowsWritten) as u32 as u64,
            wrote: !stmt.readonly(),
        })
    }

    /// Takes `bytes` of JSON from the request's result budget.
    fn charge(&self, bytes: u64) -> Result<(), SqlError> {
        match self.result_budget.get().checked_sub(bytes) {
            Some(left) => {
                self.result_budget.set(left);
                Ok(())
            }
            None => Err(SqlError {
                message: format!(
                    "The results of this request would exceed {} bytes of JSON (tristore's \
                     result size limit, D1Limits::max_result_size); ask for fewer rows or \
                     smaller values, for example a page at a time with LIMIT and OFFSET",
                    self.max_result_size
                ),
                code: "SQLITE_TOOBIG",
            }),
        }
    }

    /// Turns a SQLite error into D1's text, with the policy's or the time limit's reason
    /// where SQLite's own words ("not authorized", "interrupted") would not help.
    fn explain(&self, err: rusqlite::Error) -> SqlError {
        let mut sql_error = SqlError::from(err);
        if let Some(reason) = self.policy.take_refusal() {
            if sql_error.code == "SQLITE_AUTH" {
                sql_error.message = reason;
            }
        }
        if sql_error.code == "SQLITE_INTERRUPT" {
            if let Some(reason) = self.watch.stop_reason() {
                sql_error.message = reason.into();
            }
        }
        sql_error
    }
}

fn no_statements() -> SqlError {
    SqlError {
        message: "No SQL statements detected.".into(),
        code: "SQLITE_ERROR",
    }
}

/// tristore's own bookkeeping statements on a connection: the transaction control of
/// group commit and the page count behind `size_after`.
#[derive(Clone, Copy)]
pub(crate) enum Own {
    /// `BEGIN IMMEDIATE`: the first request of a group.
    Begin,
    Commit,
    /// Rolls back the whole transaction.
    Rollback,
    /// Opens the savepoint each later request of a group runs in.
    Savepoint,
    /// Keeps a request's writes in the group's transaction.
    Release,
    /// Undoes a failed request's writes (its savepoint stays open: release it after).
    RollbackTo,
}

/// [`Own`]'s statements and `PRAGMA page_count`, prepared once (before the authorizer is
/// installed) and stepped through the C API. Never through rusqlite's statement cache,
/// which user SQL shares: the authorizer only judges a statement when it is prepared, so
/// a cached trusted `COMMIT` would let a user's `COMMIT` through.
struct OwnStatements {
    txn: [RawStatement; 6],
    page_count: RawStatement,
}

impl OwnStatements {
    fn prepare(conn: &Connection) -> rusqlite::Result<OwnStatements> {
        let txn = [
            c"BEGIN IMMEDIATE",
            c"COMMIT",
            c"ROLLBACK",
            c"SAVEPOINT tristore_request",
            c"RELEASE tristore_request",
            c"ROLLBACK TO tristore_request",
        ];
        Ok(OwnStatements {
            txn: [
                RawStatement::prepare(conn, txn[0])?,
                RawStatement::prepare(conn, txn[1])?,
                RawStatement::prepare(conn, txn[2])?,
                RawStatement::prepare(conn, txn[3])?,
                RawStatement::prepare(conn, txn[4])?,
                RawStatement::prepare(conn, txn[5])?,
            ],
            // SQLite re-prepares a PRAGMA at each step (PRAGMAs run only once per
            // prepare), so this is the one that costs; the table-valued
            // `pragma_page_count` measured slower still. See docs/benchmarks.md.
            page_count: RawStatement::prepare(conn, c"PRAGMA page_count")?,
        })
    }
}

/// One statement prepared through the C API and owned by its connection.
struct RawStatement(*mut ffi::sqlite3_stmt);

// SAFETY: the statement is only used together with its connection, which moves between
// threads as a whole and is used by one thread at a time (SQLITE_OPEN_NO_MUTEX).
unsafe impl Send for RawStatement {}

impl RawStatement {
    fn prepare(conn: &Connection, sql: &std::ffi::CStr) -> rusqlite::Result<RawStatement> {
        let mut stmt = std::ptr::null_mut();
        // SAFETY: valid handle and NUL-terminated SQL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                conn.handle(),
                sql.as_ptr(),
                -1,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(conn, rc));
        }
        Ok(RawStatement(stmt))
    }

    /// Runs the statement to its first row (or its end) and returns the first column of
    /// that row, if it has one.
    fn step(&self, conn: &Connection) -> rusqlite::Result<Option<i64>> {
        // SAFETY: the statement belongs to `conn` and is reset before returning.
        unsafe {
            let rc = ffi::sqlite3_step(self.0);
            let out = match rc {
                ffi::SQLITE_ROW => Ok(Some(ffi::sqlite3_column_int64(self.0, 0))),
                ffi::SQLITE_DONE => Ok(None),
                _ => Err(last_error(conn, rc)),
            };
            ffi::sqlite3_reset(self.0);
            out
        }
    }
}

impl Drop for RawStatement {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, before the connection closes (field order).
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

/// The error `rc` with the connection's message for it.
fn last_error(conn: &Connection, rc: i32) -> rusqlite::Error {
    // SAFETY: valid handle; SQLite owns the message, which is copied at once.
    let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(conn.handle())) };
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(rc),
        Some(message.to_string_lossy().into_owned()),
    )
}
