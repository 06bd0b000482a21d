//! Vectorize's binding protocol: workerd's `VectorizeIndexImpl` (v2) fetches
//! `http://vector-search/<operation>` and hands a 200's JSON to the Worker as it is,
//! and turns any other answer's `{code, error}` into `<OP>_ERROR (code = n): error`.
//! The binding's limits apply (1,000 vectors per write), not the REST API's.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::{json_bytes, Answer, Call};
use crate::server::meter::{refused, Api, Meter, Operation};
use crate::server::vectorize::{index, parse, Ids, QueryBody};
use crate::server::REST_BODY_LIMIT;
use crate::usage::Units;
use crate::vectorize::error::code;
use crate::vectorize::ndjson::{self, Unparsable};
use crate::vectorize::{Op, VectorizeError};
use crate::Store;

/// The code of a missing index (`INDEX_GET_ERROR (code = 3000)` from `describe()`).
pub(super) const INDEX_NOT_FOUND: u32 = code::INDEX_NOT_FOUND;

/// The calls served, by path.
pub(super) const OPERATIONS: &[&str] = &[
    "info",
    "query",
    "insert",
    "upsert",
    "getByIds",
    "deleteByIds",
];

/// An answer the binding throws as `<OP>_ERROR (code = <code>): <message>`.
pub(super) fn error(status: u16, code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({"code": code, "error": message}))).into_response()
}

/// Runs one binding call on the index `name`, once the free tier admits it.
pub(super) async fn handle(
    store: Arc<Store>,
    name: String,
    call: Call,
    meter: Option<Arc<Meter>>,
) -> Answer {
    let path = call.url.path().trim_start_matches('/').to_owned();
    let op = match (&call.method, path.as_str()) {
        (&Method::GET, "info") => Op::IndexGet,
        (&Method::POST, "query") => Op::Query,
        (&Method::POST, "insert") => Op::Insert,
        (&Method::POST, "upsert") => Op::Upsert,
        (&Method::POST, "getByIds") => Op::Get,
        (&Method::POST, "deleteByIds") => Op::Delete,
        _ => {
            let message = format!(
                "unknown Vectorize binding operation {} /{path}: tristore serves the v2 binding's info, query, insert, upsert, getByIds and deleteByIds",
                call.method
            );
            return Answer {
                op: path,
                response: error(404, 40000, &message),
            };
        }
    };
    let operation = Operation {
        api: Api::Vectorize,
        name: Operation::known(&path, OPERATIONS),
        resource: Some(name.clone()),
    };
    if let Some(Err(exceeded)) = meter.map(|m| m.admit(&operation)) {
        let response = error(403, code::FREE_TIER, &exceeded.message());
        return Answer {
            op: path,
            response: refused(response),
        };
    }
    let response = match json_bytes(call.body, REST_BODY_LIMIT).await {
        Ok(body) => {
            let run = tokio::task::spawn_blocking(move || run(&store, &name, op, &body)).await;
            match run.unwrap_or_else(|e| {
                Err(VectorizeError::new(
                    op,
                    code::STORAGE,
                    format!("internal error: {e}"),
                ))
            }) {
                Ok((json, units)) => (
                    [("content-type", "application/json")],
                    Extension(units),
                    json,
                )
                    .into_response(),
                Err(e) => error(e.http_status(), e.code, &e.message),
            }
        }
        Err(message) => error(413, code::PARSE, &message),
    };
    Answer { op: path, response }
}

/// The JSON the binding returns to the Worker for `op`, and what it cost.
fn run(store: &Store, name: &str, op: Op, body: &[u8]) -> Result<(Vec<u8>, Units), VectorizeError> {
    let index = index(store, name, op)?;
    let units = match op {
        Op::Query => Units::vectorize_query(index.config().dimensions),
        _ => Units::default(),
    };
    let json = match op {
        Op::IndexGet => serde_json::to_vec(&index.describe()),
        Op::Query => serde_json::to_vec(&parse::<QueryBody>(op, body)?.run(&index)?),
        Op::Insert | Op::Upsert => {
            let vectors = ndjson::parse(op, body, Unparsable::Error)?;
            let mutation = if op == Op::Insert {
                index.insert(&vectors)?
            } else {
                index.upsert(&vectors)?
            };
            serde_json::to_vec(&mutation)
        }
        Op::Get => serde_json::to_vec(&index.get_by_ids(&parse::<Ids>(op, body)?.ids)?),
        _ => serde_json::to_vec(&index.delete_by_ids(&parse::<Ids>(op, body)?.ids)?),
    };
    let json = json
        .map_err(|e| VectorizeError::new(op, code::STORAGE, format!("encoding the answer: {e}")))?;
    Ok((json, units))
}
