//! D1 databases: pulled with the REST export (polling protocol, then the dump's signed
//! URL), pushed with the REST import (init, upload, ingest, poll). A database is the
//! unit: equal when both sides have the same tables with the same row counts, else
//! copied whole into a destination that is empty (or emptied with `--delete`). A dump
//! is applied as one transaction, so an interrupted copy leaves the destination empty
//! and the rerun copies it again.

use md5::Digest;
use serde_json::{json, Value};

use super::api::{fetch_url, Api};
use super::{Counts, Direction, Options, Result, TransferError};
use crate::d1::dump::DumpOptions;
use crate::Store;

/// Tables and their row counts, sorted by name: what "equal" compares.
type TableCounts = Vec<(String, i64)>;

/// The user's tables (not SQLite's or D1's own).
const TABLES_SQL: &str = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name";

/// The names of the remote account's databases, every page.
pub fn remote_names(api: &Api) -> Result<Vec<String>> {
    Ok(remote_databases(api)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// (name, uuid) of every remote database.
fn remote_databases(api: &Api) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for page in 1.. {
        let result = api.json(
            "GET",
            &format!("/d1/database?page={page}&per_page=100"),
            None,
        )?;
        let list = result.as_array().cloned().unwrap_or_default();
        let n = list.len();
        out.extend(list.into_iter().filter_map(|d| {
            Some((
                d["name"].as_str()?.to_owned(),
                d["uuid"].as_str()?.to_owned(),
            ))
        }));
        if n < 100 {
            break;
        }
    }
    Ok(out)
}

fn remote_uuid(api: &Api, name: &str) -> Result<Option<String>> {
    Ok(remote_databases(api)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, uuid)| uuid))
}

/// The rows of one statement run remotely.
fn remote_query(api: &Api, uuid: &str, sql: &str) -> Result<Vec<Value>> {
    let result = api.json(
        "POST",
        &format!("/d1/database/{uuid}/query"),
        Some(&json!({ "sql": sql })),
    )?;
    Ok(result[0]["results"].as_array().cloned().unwrap_or_default())
}

/// The count query over `tables`, one row per table.
fn count_sql(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| {
            let quoted = t.replace('"', "\"\"");
            let literal = t.replace('\'', "''");
            format!("SELECT '{literal}' AS name, count(*) AS n FROM \"{quoted}\"")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

fn counts_of(rows: &[Value]) -> TableCounts {
    let mut out: TableCounts = rows
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["n"].as_i64()?)))
        .collect();
    out.sort();
    out
}

fn remote_counts(api: &Api, uuid: &str) -> Result<TableCounts> {
    let tables: Vec<String> = remote_query(api, uuid, TABLES_SQL)?
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    Ok(counts_of(&remote_query(api, uuid, &count_sql(&tables))?))
}

fn local_counts(db: &crate::d1::D1Database) -> Result<TableCounts> {
    let tables: Vec<String> = db
        .prepare(TABLES_SQL)
        .raw(false)?
        .into_iter()
        .filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db.prepare(count_sql(&tables)).all()?;
    let rows: Vec<Value> = rows
        .results_as::<Value>()
        .map_err(|e| TransferError(format!("local D1: {e}")))?;
    Ok(counts_of(&rows))
}

/// The statements that empty a database of its schema and rows (for `--delete`).
fn drop_sql(objects: &[(String, String)]) -> String {
    let mut sql = String::from("PRAGMA defer_foreign_keys = on;\n");
    for (kind, name) in objects {
        sql.push_str(&format!(
            "DROP {kind} IF EXISTS \"{}\";\n",
            name.replace('"', "\"\"")
        ));
    }
    sql
}

const OBJECTS_SQL: &str = "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger', 'table') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY CASE type WHEN 'view' THEN 0 WHEN 'trigger' THEN 1 ELSE 2 END";

/// Copies database `name` in `direction`.
pub fn copy(
    store: &Store,
    api: &Api,
    direction: Direction,
    name: &str,
    options: &Options,
    counts: &mut Counts,
    progress: &dyn Fn(&str),
) -> Result<()> {
    match direction {
        Direction::Pull => pull(store, api, name, options, counts, progress),
        Direction::Push => push(store, api, name, options, counts, progress),
    }
}

fn differs(
    name: &str,
    side: &str,
    source: &TableCounts,
    destination: &TableCounts,
) -> TransferError {
    TransferError(format!(
        "d1 {name}: the {side} database already holds other data (tables and rows {destination:?}, the source has {source:?}); nothing was changed. Pass --delete to replace its contents, or choose another database"
    ))
}

fn pull(
    store: &Store,
    api: &Api,
    name: &str,
    options: &Options,
    counts: &mut Counts,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let uuid = remote_uuid(api, name)?.ok_or_else(|| {
        TransferError(format!(
            "d1 {name}: the remote account has no such database"
        ))
    })?;
    let source = remote_counts(api, &uuid)?;
    let existing = store.d1().list()?.into_iter().any(|d| d.name == name);
    let local = if existing {
        Some(store.d1().database(name)?)
    } else {
        None
    };
    let destination = match &local {
        Some(db) => local_counts(db)?,
        None => Vec::new(),
    };
    if skip_or_refuse(
        name,
        "local",
        existing,
        &source,
        &destination,
        options,
        counts,
        progress,
    )? {
        return Ok(());
    }
    // Download first: a remote failing here leaves the local database as it was.
    let dump = export_remote(api, &uuid, name)?;
    let db = match local {
        Some(db) => db,
        None => {
            store.d1().create(name)?;
            store.d1().database(name)?
        }
    };
    if !destination.is_empty() {
        let objects: Vec<(String, String)> = db
            .prepare(OBJECTS_SQL)
            .raw(false)?
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.first()?.as_str()?.to_owned(),
                    r.get(1)?.as_str()?.to_owned(),
                ))
            })
            .collect();
        db.import(&drop_sql(&objects))?;
        counts.deleted += 1;
    }
    db.import(&dump)?;
    progress(&format!("d1 {name}: pulled ({} bytes of SQL)", dump.len()));
    counts.copied += 1;
    counts.bytes += dump.len() as u64;
    Ok(())
}

/// Whether the copy is already done (`destination` exists with the source's counts:
/// counted as skipped); an error if the destination holds other data and `--delete`
/// was not given.
#[allow(clippy::too_many_arguments)]
fn skip_or_refuse(
    name: &str,
    side: &str,
    exists: bool,
    source: &TableCounts,
    destination: &TableCounts,
    options: &Options,
    counts: &mut Counts,
    progress: &dyn Fn(&str),
) -> Result<bool> {
    if exists && destination == source {
        progress(&format!(
            "d1 {name}: equal ({} tables), skipped",
            source.len()
        ));
        counts.skipped += 1;
        return Ok(true);
    }
    if !destination.is_empty() && !options.delete {
        return Err(differs(name, side, source, destination));
    }
    Ok(false)
}

/// Runs the remote export to completion and downloads the dump.
fn export_remote(api: &Api, uuid: &str, name: &str) -> Result<String> {
    let path = format!("/d1/database/{uuid}/export");
    let first = api.json("POST", &path, Some(&json!({"output_format": "polling"})))?;
    let answer = poll_to_completion(
        api,
        &path,
        name,
        "export",
        first,
        |bookmark| json!({"output_format": "polling", "current_bookmark": bookmark}),
    )?;
    let url = answer["result"]["signed_url"]
        .as_str()
        .ok_or_else(|| TransferError(format!("d1 {name}: the remote export gave no signed_url")))?;
    let body = fetch_url("GET", url, &[])?.body;
    String::from_utf8(body)
        .map_err(|_| TransferError(format!("d1 {name}: the remote dump is not UTF-8 text")))
}

fn push(
    store: &Store,
    api: &Api,
    name: &str,
    options: &Options,
    counts: &mut Counts,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let db = store.d1().database(name)?;
    let source = local_counts(&db)?;
    let uuid = match remote_uuid(api, name)? {
        Some(uuid) => uuid,
        None => {
            let created = api.json("POST", "/d1/database", Some(&json!({ "name": name })))?;
            progress(&format!("d1 {name}: created on the remote"));
            created["uuid"]
                .as_str()
                .ok_or_else(|| {
                    TransferError(format!("d1 {name}: the remote's create answer has no uuid"))
                })?
                .to_owned()
        }
    };
    let destination = remote_counts(api, &uuid)?;
    if skip_or_refuse(
        name,
        "remote",
        true,
        &source,
        &destination,
        options,
        counts,
        progress,
    )? {
        return Ok(());
    }
    let dump = db.export(&DumpOptions::default())?;
    if !destination.is_empty() {
        let objects: Vec<(String, String)> = remote_query(api, &uuid, OBJECTS_SQL)?
            .iter()
            .filter_map(|r| {
                Some((
                    r["type"].as_str()?.to_owned(),
                    r["name"].as_str()?.to_owned(),
                ))
            })
            .collect();
        import_remote(api, &uuid, name, &drop_sql(&objects))?;
        counts.deleted += 1;
    }
    import_remote(api, &uuid, name, &dump)?;
    progress(&format!("d1 {name}: pushed ({} bytes of SQL)", dump.len()));
    counts.copied += 1;
    counts.bytes += dump.len() as u64;
    Ok(())
}

/// D1's import protocol: init with the dump's MD5, upload to the URL it returns, ingest,
/// poll until complete.
fn import_remote(api: &Api, uuid: &str, name: &str, sql: &str) -> Result<()> {
    let path = format!("/d1/database/{uuid}/import");
    let etag = hex::encode(md5::Md5::digest(sql.as_bytes()));
    let init = api.json(
        "POST",
        &path,
        Some(&json!({"action": "init", "etag": etag})),
    )?;
    let (Some(url), Some(filename)) = (init["upload_url"].as_str(), init["filename"].as_str())
    else {
        return Err(TransferError(format!(
            "d1 {name}: the remote's import init gave no upload_url and filename: {init}"
        )));
    };
    fetch_url("PUT", url, sql.as_bytes())?;
    let first = api.json(
        "POST",
        &path,
        Some(&json!({"action": "ingest", "etag": etag, "filename": filename})),
    )?;
    poll_to_completion(
        api,
        &path,
        name,
        "import",
        first,
        |bookmark| json!({"action": "poll", "current_bookmark": bookmark}),
    )
    .map(drop)
}

/// D1's polling protocol (export and import alike): re-posts `poll(at_bookmark)` once a
/// second until the answer says `complete` (returned) or `error`, for up to 10 minutes.
fn poll_to_completion(
    api: &Api,
    path: &str,
    name: &str,
    what: &str,
    mut answer: Value,
    poll: impl Fn(Value) -> Value,
) -> Result<Value> {
    for _ in 0..600 {
        match answer["status"].as_str() {
            Some("complete") => return Ok(answer),
            Some("error") => {
                return Err(TransferError(format!(
                    "d1 {name}: the remote {what} failed: {} (the remote database is unchanged)",
                    answer["error"]
                )))
            }
            _ if answer["success"] == false => {
                return Err(TransferError(format!(
                    "d1 {name}: the remote {what} failed: {answer}"
                )))
            }
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        answer = api.json("POST", path, Some(&poll(answer["at_bookmark"].clone())))?;
    }
    Err(TransferError(format!(
        "d1 {name}: the remote {what} did not complete in 10 minutes; run the command again to continue"
    )))
}
