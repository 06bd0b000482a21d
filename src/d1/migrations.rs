//! Migrations as `wrangler d1 migrations` keeps them, so a database migrated by
//! tristore is accepted by wrangler and the reverse: the same `d1_migrations` table,
//! the same file names, the same order, one transaction per file.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::D1Database;
use crate::error::{Error, Result};
use crate::fsutil;

/// Wrangler's default name for the bookkeeping table.
pub const DEFAULT_TABLE: &str = "d1_migrations";

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Path relative to the migrations directory, with `/` separators
    /// (`0001_initial.sql`); this is the `name` recorded in the table.
    pub name: String,
    /// The SQL it runs.
    pub sql: String,
}

/// A row of the bookkeeping table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedMigration {
    /// Autoincrementing id: the order of application.
    pub id: i64,
    /// The migration's name.
    pub name: String,
    /// When it was applied (`YYYY-MM-DD HH:MM:SS`, UTC, SQLite's `CURRENT_TIMESTAMP`).
    pub applied_at: String,
}

/// Reads the migrations under `dir` whose relative path matches `pattern` (wrangler's
/// `migrations_pattern` relative to the directory; `*` matches within one path
/// segment; default `*.sql`), in wrangler's order.
pub fn load_dir(dir: &Path, pattern: Option<&str>) -> Result<Vec<Migration>> {
    let pattern: Vec<&str> = pattern.unwrap_or("*.sql").split('/').collect();
    let mut found = Vec::new();
    collect(dir, &pattern, String::new(), &mut found)?;
    let mut migrations = found
        .into_iter()
        .map(|(name, path)| {
            let sql =
                std::fs::read_to_string(&path).map_err(Error::io("reading migration", &path))?;
            Ok(Migration { name, sql })
        })
        .collect::<Result<Vec<_>>>()?;
    migrations.sort_by(|a, b| compare_names(&a.name, &b.name));
    Ok(migrations)
}

fn collect(
    dir: &Path,
    pattern: &[&str],
    prefix: String,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    let Some((segment, rest)) = pattern.split_first() else {
        return Ok(());
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && prefix.is_empty() => {
            return Err(Error::Migration {
                name: dir.display().to_string(),
                message: "no migrations directory here; create it or pass the directory that holds the .sql files".into(),
            })
        }
        Err(e) => return Err(Error::io("listing", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !glob_segment(segment, &name) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if rest.is_empty() && path.is_file() {
            out.push((rel, path));
        } else if !rest.is_empty() && path.is_dir() {
            collect(&path, rest, rel, out)?;
        }
    }
    Ok(())
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_segment(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len())
                    .filter(|&i| name.is_char_boundary(head.len() + i))
                    .any(|i| glob_segment(tail, &name[head.len() + i..]))
        }
    }
}

/// Wrangler's order: segment by segment, by the number before the first `_`
/// (numbered before unnumbered), then by the text.
pub fn compare_names(a: &str, b: &str) -> Ordering {
    let key = |s: &str| {
        let lead = s.split('_').next().unwrap_or("");
        let number = lead.parse::<u64>().ok().filter(|_| !lead.is_empty());
        (number.is_none(), number, s.to_owned())
    };
    let (mut sa, mut sb) = (a.split('/'), b.split('/'));
    loop {
        match (sa.next(), sb.next()) {
            (Some(x), Some(y)) => match key(x).cmp(&key(y)) {
                Ordering::Equal => continue,
                other => return other,
            },
            (x, y) => return x.is_some().cmp(&y.is_some()),
        }
    }
}

/// Creates `NNNN_<message>.sql` in `dir`, numbered one past the highest existing number,
/// with spaces in `message` turned into `_`. Returns its path.
pub fn create(dir: &Path, message: &str) -> Result<PathBuf> {
    if message.contains('/') || message.contains('\\') || message.trim().is_empty() {
        return Err(Error::Migration {
            name: message.to_owned(),
            message: "a migration message must be non-empty and hold no '/' or '\\'".into(),
        });
    }
    fsutil::create_dir_durable(dir)?;
    let highest = std::fs::read_dir(dir)
        .map_err(Error::io("listing", dir))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split('_').next()?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0);
    let number = highest + 1;
    let path = dir.join(format!(
        "{number:04}_{}.sql",
        message.trim().replace(' ', "_")
    ));
    let header = format!(
        "-- Migration number: {number:04} \t {}\n",
        crate::store::now_iso8601()
    );
    fsutil::write_durable(&path, header.as_bytes())?;
    Ok(path)
}

/// The applied migrations, in the order they were applied. Creates the table if it is
/// missing, as wrangler does.
pub fn applied(db: &D1Database, table: &str) -> Result<Vec<AppliedMigration>> {
    ensure_table(db, table)?;
    let rows = db
        .prepare(format!(
            "SELECT id, name, applied_at FROM {} ORDER BY id",
            quote_ident(table)
        ))
        .all()?;
    Ok(rows
        .rows
        .into_iter()
        .map(|r| {
            let text = |v: &super::D1Value| match v {
                super::D1Value::Text(s) => s.clone(),
                other => other.to_json().to_string(),
            };
            AppliedMigration {
                id: match r[0] {
                    super::D1Value::Integer(i) => i,
                    _ => 0,
                },
                name: text(&r[1]),
                applied_at: text(&r[2]),
            }
        })
        .collect())
}

/// The migrations of `all` not yet recorded in `table`, in order.
pub fn pending<'m>(
    db: &D1Database,
    all: &'m [Migration],
    table: &str,
) -> Result<Vec<&'m Migration>> {
    let done = applied(db, table)?;
    Ok(all
        .iter()
        .filter(|m| !done.iter().any(|d| d.name == m.name))
        .collect())
}

/// Applies the pending migrations in order, each file together with its bookkeeping row
/// in one transaction, stopping at the first failure (earlier files stay applied).
/// Returns the names applied.
pub fn apply(db: &D1Database, all: &[Migration], table: &str) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for migration in pending(db, all, table)? {
        let script = format!(
            "{}\nINSERT INTO {} (name) values ('{}');",
            migration.sql,
            quote_ident(table),
            migration.name.replace('\'', "''")
        );
        db.execute_script(&script, &[])
            .map_err(|e| Error::Migration {
                name: migration.name.clone(),
                message: format!("{e}; this file and every later one were not applied"),
            })?;
        done.push(migration.name.clone());
    }
    Ok(done)
}

fn ensure_table(db: &D1Database, table: &str) -> Result<()> {
    db.prepare(format!(
        "CREATE TABLE IF NOT EXISTS {}(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, \
         applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
        quote_ident(table)
    ))
    .run()?;
    Ok(())
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrangler_order() {
        let mut names = vec![
            "10_b.sql",
            "2_a.sql",
            "readme.sql",
            "0001_x.sql",
            "0001_a.sql",
            "3_init/migration.sql",
        ];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(
            names,
            vec![
                "0001_a.sql",
                "0001_x.sql",
                "2_a.sql",
                "3_init/migration.sql",
                "10_b.sql",
                "readme.sql"
            ]
        );
    }

    /// `migrations_pattern` as `load_dir` applies it: `*` within one path segment,
    /// segments matched level by level, files only at the last, wrangler's order.
    #[test]
    fn load_dir_applies_a_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("-- {rel}")).unwrap();
        };
        for rel in [
            "10_users/migration.sql",
            "2_init/migration.sql",
            "2_init/notes.sql",
            "3_x/deeper/migration.sql",
            "0001_flat.sql",
            "migration.sql",
        ] {
            write(rel);
        }
        std::fs::create_dir_all(dir.path().join("4_dir.sql")).unwrap();
        let names = |pattern: Option<&str>| -> Vec<String> {
            load_dir(dir.path(), pattern)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(
            names(Some("*/migration.sql")),
            ["2_init/migration.sql", "10_users/migration.sql"],
            "`*` stays within a segment: not 3_x/deeper/migration.sql nor the top-level file"
        );
        assert_eq!(
            names(Some("*_init/*.sql")),
            ["2_init/migration.sql", "2_init/notes.sql"]
        );
        assert_eq!(
            names(None),
            ["0001_flat.sql", "migration.sql"],
            "the default `*.sql`: files only, not the directory named 4_dir.sql"
        );
        assert_eq!(
            names(Some("*/*/migration.sql")),
            ["3_x/deeper/migration.sql"]
        );
        let loaded = load_dir(dir.path(), Some("2_init/notes.sql")).unwrap();
        assert_eq!(loaded[0].sql, "-- 2_init/notes.sql");
        assert!(names(Some("nothing-*")).is_empty());
    }

    #[test]
    fn globbing() {
        assert!(glob_segment("*.sql", "0001_a.sql"));
        assert!(!glob_segment("*.sql", "0001_a.sql.bak"));
        assert!(glob_segment("migration.sql", "migration.sql"));
        assert!(glob_segment("*", "0003_init"));
    }
}
