//! D1's binding protocol: workerd's `D1Database` posts one `{sql, params}` or a list of
//! them to `http://d1/query` (`first`, `all`, `raw`, `batch`) or `http://d1/execute`
//! (`run`, `exec`) with `?resultsFormat=`, and reads back `{success, meta, results}`
//! per statement, or `{success: false, error}` which it throws as `D1_ERROR: <error>`.
//! The `x-cf-d1-session-commit-token` header carries the session bookmark both ways.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_bytes, Answer, Call};
use crate::d1::sql_text::{self, Shape};
use crate::d1::{D1Database, D1Error, D1Result};
use crate::server::meter::{refused, Api, Meter, Operation};
use crate::server::REST_BODY_LIMIT;
use crate::usage::Units;
use crate::Store;

/// The session bookmark header (request: the session's constraint or bookmark;
/// answer: the bookmark after the call).
const SESSION_HEADER: &str = "x-cf-d1-session-commit-token";

/// The calls served, by path.
pub(super) const OPERATIONS: &[&str] = &["query", "execute"];

/// An answer the binding throws as `D1_ERROR: <message>`.
pub(super) fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({"success": false, "error": message}))).into_response()
}

/// One statement as the binding sends it.
#[derive(Deserialize)]
struct Statement {
    sql: String,
    #[serde(default)]
    params: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Many(Vec<Statement>),
    One(Statement),
}

/// How `results` is shaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `{columns, rows}`: what `first`, `all`, `raw` and `batch` ask for.
    RowsAndColumns,
    /// An object per row; also what `NONE` (`run`, `exec`) gets, since `run()` hands
    /// the answer to the Worker as it is and D1 documents it as returning rows.
    Objects,
}

/// Runs one binding call on the database `name`, once the free tier admits it.
pub(super) async fn handle(
    store: Arc<Store>,
    name: String,
    call: Call,
    meter: Option<Arc<Meter>>,
) -> Answer {
    let op = call.url.path().trim_start_matches('/').to_owned();
    let exec_like = match (&call.method, op.as_str()) {
        (&Method::POST, "query") => false,
        (&Method::POST, "execute") => true,
        _ => {
            let message = format!(
                "unknown D1 binding operation {} /{op}: tristore serves /query and /execute",
                call.method
            );
            return Answer {
                response: error(404, &message),
                op,
            };
        }
    };
    let format = match call
        .url
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("resultsFormat="))
    {
        Some("ROWS_AND_COLUMNS") => Format::RowsAndColumns,
        _ => Format::Objects,
    };
    let operation = Operation {
        api: Api::D1,
        name: Operation::known(&op, OPERATIONS),
        resource: Some(name.clone()),
    };
    if let Some(Err(exceeded)) = meter.map(|m| m.admit(&operation)) {
        return Answer {
            op,
            response: refused(error(400, &exceeded.message())),
        };
    }
    let body = match json_bytes(call.body, REST_BODY_LIMIT).await {
        Ok(b) => b,
        Err(message) => {
            return Answer {
                op,
                response: error(413, &message),
            }
        }
    };
    let ran = tokio::task::spawn_blocking(move || {
        let db = store.d1().database(&name).map_err(|e| {
            (
                404,
                format!("{e}: create it (tristore d1 create {name}, or a d1_databases entry in --config) or map the binding to one that exists"),
            )
        })?;
        let results = run(&db, &body, exec_like).map_err(|e| (400, without_prefix(&e)))?;
        let json = serde_json::to_vec(&Shaped(&results, format))
            .map_err(|e| (500, format!("encoding the answer: {e}")))?;
        Ok::<_, (u16, String)>((json, db.bookmark(), Units::d1(&results)))
    })
    .await
    .unwrap_or_else(|e| Err((500, format!("internal error: {e}"))));
    let response = match ran {
        Ok((json, bookmark, units)) => {
            let mut response = (
                [("content-type", "application/json")],
                Extension(units),
                json,
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&bookmark) {
                response.headers_mut().insert(SESSION_HEADER, v);
            }
            response
        }
        Err((status, message)) => error(status, &message),
    };
    Answer { op, response }
}

/// One statement as `all()` runs it; a list as one transaction, as `batch()` does; a
/// list sent to `/execute` is `exec()`'s lines, where blank lines are skipped.
fn run(db: &D1Database, body: &[u8], exec_like: bool) -> Result<Vec<D1Result>, D1Error> {
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        D1Error::Query(crate::d1::SqlError {
            message: format!("the request body is not a statement or a list of statements: {e}"),
            code: "SQLITE_ERROR",
        })
    })?;
    let prepare = |s: &Statement| {
        db.prepare(s.sql.clone())
            .bind_json(s.params.as_deref().unwrap_or(&[]))
    };
    match body {
        Body::One(s) => Ok(vec![prepare(&s)?.all()?]),
        Body::Many(list) => {
            let statements = list
                .iter()
                .filter(|s| !exec_like || sql_text::shape(&s.sql) != Shape::Blank)
                .map(prepare)
                .collect::<Result<Vec<_>, _>>()?;
            db.batch(&statements)
        }
    }
}

/// The message the binding puts after its own `D1_ERROR: ` prefix.
fn without_prefix(e: &D1Error) -> String {
    match e {
        D1Error::Query(sql) => sql.to_string(),
        other => other.to_string(),
    }
}

/// A list of results in the requested shape.
struct Shaped<'a>(&'a [D1Result], Format);

impl Serialize for Shaped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.1 == Format::Objects {
            return s.collect_seq(self.0);
        }
        s.collect_seq(self.0.iter().map(D1Result::rows_and_columns))
    }
}
