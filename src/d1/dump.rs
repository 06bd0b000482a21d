//! Export of a database as a SQL dump, and atomic import of one.
//!
//! The dump reads like `wrangler d1 export`'s: `PRAGMA defer_foreign_keys=TRUE;`, then
//! each table's `CREATE TABLE` and `INSERT`s in creation order, then indexes, triggers
//! and views. Unlike D1, databases holding FTS5 tables can be exported: a virtual table
//! is dumped as its `CREATE VIRTUAL TABLE` plus inserts of its rows, never its shadow tables.

use std::fmt::Write as _;

use rusqlite::Connection;
use serde::Serialize;

use super::migrations::quote_ident;
use super::sql_text;
use super::{D1Database, D1Error, D1Value};

/// `dump_options` of D1's export API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpOptions {
    /// Leave out the rows (schema only).
    pub no_data: bool,
    /// Leave out the schema (rows only).
    pub no_schema: bool,
    /// Only these tables (with their indexes and triggers); empty means all.
    pub tables: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Statements executed.
    pub num_queries: usize,
    /// Rows written, as D1 counts them.
    pub rows_written: u64,
    /// Database size afterwards.
    pub size_after: u64,
}

/// Suffixes of the shadow tables virtual-table modules create (FTS3/4/5, R*Tree).
const SHADOW_SUFFIXES: &[&str] = &[
    "data", "idx", "content", "docsize", "config", "segments", "segdir", "stat", "node", "parent",
    "rowid",
];

struct SchemaEntry {
    kind: String,
    name: String,
    table: String,
    sql: String,
}

impl D1Database {
    /// The database as SQL text that [`import`](Self::import) (or `wrangler d1 execute
    /// --file`) turns back into the same schema and rows.
    pub fn export(&self, options: &DumpOptions) -> Result<String, D1Error> {
        // Holding the writer for the whole dump gives a consistent snapshot.
        self.with_trusted_writer(|conn| dump(conn, options))
    }

    /// Runs a SQL dump as one transaction under D1's SQL policy: either every statement
    /// takes effect or, on the first failure, none does and the error names the statement.
    pub fn import(&self, sql: &str) -> Result<ImportSummary, D1Error> {
        // Split while running, so that splitting is under the time limit too.
        self.write(|w| {
            let mut summary = ImportSummary {
                num_queries: 0,
                rows_written: 0,
                size_after: 0,
            };
            for (i, statement) in sql_text::split_statements(sql).enumerate() {
                let result = w.run(statement, &[]).map_err(|mut e| {
                    e.message = format!(
                        "{} (statement {} of the import: {})",
                        e.message,
                        i + 1,
                        preview(statement)
                    );
                    D1Error::Query(e)
                })?;
                summary.num_queries += 1;
                summary.rows_written += result.meta.rows_written;
                summary.size_after = result.meta.size_after;
            }
            if summary.num_queries == 0 {
                return Err(D1Error::query(
                    "No SQL statements detected.",
                    "SQLITE_ERROR",
                ));
            }
            Ok(summary)
        })
    }
}

fn preview(statement: &str) -> String {
    let line = statement.lines().next().unwrap_or("");
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

fn dump(conn: &Connection, options: &DumpOptions) -> rusqlite::Result<String> {
    let schema: Vec<SchemaEntry> = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY rowid",
        )?
        .query_map([], |r| {
            Ok(SchemaEntry {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                sql: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let is_virtual = |e: &SchemaEntry| {
        e.kind == "table"
            && e.sql
                .to_ascii_uppercase()
                .starts_with("CREATE VIRTUAL TABLE")
    };
    let virtual_names: Vec<&str> = schema
        .iter()
        .filter(|e| is_virtual(e))
        .map(|e| e.name.as_str())
        .collect();
    let is_shadow = |name: &str| {
        virtual_names.iter().any(|v| {
            name.strip_prefix(v)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|suffix| SHADOW_SUFFIXES.contains(&suffix))
        })
    };
    let wanted =
        |table: &str| options.tables.is_empty() || options.tables.iter().any(|t| t == table);

    let mut out = String::from("PRAGMA defer_foreign_keys=TRUE;\n");
    let tables = schema
        .iter()
        .filter(|e| e.kind == "table" && wanted(&e.name) && !is_shadow(&e.name));
    for table in tables {
        if !options.no_schema {
            writeln!(out, "{};", table.sql).ok();
        }
        if !options.no_data {
            dump_rows(conn, table, is_virtual(table), &mut out)?;
        }
    }
    if !options.no_data {
        dump_sequences(conn, &wanted, &mut out)?;
    }
    if !options.no_schema {
        for entry in schema
            .iter()
            .filter(|e| e.kind != "table" && wanted(&e.table))
        {
            writeln!(out, "{};", entry.sql).ok();
        }
    }
    Ok(out)
}

fn dump_rows(
    conn: &Connection,
    table: &SchemaEntry,
    is_virtual: bool,
    out: &mut String,
) -> rusqlite::Result<()> {
    let name = quote_ident(&table.name);
    if is_virtual {
        let sql = table.sql.to_ascii_lowercase().replace(' ', "");
        if sql.contains("content=''") || sql.contains("content=\"\"") {
            return Ok(()); // contentless: the text is not stored, nothing to dump
        }
        if sql.contains("content=") {
            // External content: the index is rebuilt from the content table.
            writeln!(out, "INSERT INTO {name}({name}) VALUES('rebuild');").ok();
            return Ok(());
        }
    }
    // Generated columns (hidden 2 and 3) cannot be inserted; virtual tables' hidden
    // columns (1) are not data.
    let mut columns: Vec<String> = conn
        .prepare(&format!(
            "SELECT name FROM pragma_table_xinfo({}) WHERE hidden = 0",
            quote_literal(&table.name)
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if is_virtual {
        columns.insert(0, "rowid".into());
    }
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(",");
    let mut stmt = conn.prepare(&format!("SELECT {list} FROM {name}"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        write!(out, "INSERT INTO {name} ({list}) VALUES(").ok();
        for i in 0..columns.len() {
            if i > 0 {
                out.push(',');
            }
            write_literal(out, &D1Value::from_ref(row.get_ref(i)?));
        }
        out.push_str(");\n");
    }
    Ok(())
}

/// AUTOINCREMENT counters, so that ids handed out after an import match the original.
fn dump_sequences(
    conn: &Connection,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut String,
) -> rusqlite::Result<()> {
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(());
    }
    let mut stmt = conn.prepare("SELECT name, seq FROM sqlite_sequence")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (name, seq) = row?;
        if wanted(&name) {
            let lit = quote_literal(&name);
            writeln!(out, "DELETE FROM sqlite_sequence WHERE name = {lit};").ok();
            writeln!(out, "INSERT INTO sqlite_sequence VALUES({lit},{seq});").ok();
        }
    }
    Ok(())
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQL literal that reads back as exactly `value`.
fn write_literal(out: &mut String, value: &D1Value) {
    match value {
        D1Value::Null => out.push_str("NULL"),
        D1Value::Integer(i) => write!(out, "{i}").unwrap_or(()),
        D1Value::Real(f) if f.is_nan() => out.push_str("NULL"),
        D1Value::Real(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "9e999" } else { "-9e999" })
        }
        // `{:?}` prints the shortest text that parses back to the same double, with a
        // fraction or exponent so that SQLite reads it as REAL.
        D1Value::Real(f) => write!(out, "{f:?}").unwrap_or(()),
        D1Value::Text(t) if t.contains('\0') => {
            out.push_str("CAST(X'");
            hex(out, t.as_bytes());
            out.push_str("' AS TEXT)");
        }
        D1Value::Text(t) => out.push_str(&quote_literal(t)),
        D1Value::Blob(b) => {
            out.push_str("X'");
            hex(out, b);
            out.push('\'');
        }
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        write!(out, "{b:02X}").unwrap_or(());
    }
}
