//! D1's REST API (spec 2.1): databases, `query` / `raw` with single statements,
//! `;`-separated scripts and `batch` bodies, and Time Travel (spec 2.2); export and
//! import are in `d1_transfer`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::envelope::{blocking, json_body, ok, ok_page_of, ApiError, Paging};
use crate::d1::{D1Result, D1Value, Interrupt};
use crate::usage::Units;
use crate::Store;

/// Routes under `/client/v4/accounts/{account}/d1/database`.
pub fn routes() -> Router<Arc<Store>> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/{db}", get(info).delete(delete))
        .route("/{db}/query", post(query))
        .route("/{db}/raw", post(raw))
        .route("/{db}/export", post(super::d1_transfer::export))
        .route("/{db}/import", post(super::d1_transfer::import))
        .route("/{db}/time_travel/bookmark", get(time_travel_bookmark))
        .route("/{db}/time_travel/restore", post(time_travel_restore))
}

/// `?bookmark=` and `?timestamp=` of the Time Travel calls.
#[derive(Deserialize)]
struct TimeTravelQuery {
    bookmark: Option<String>,
    timestamp: Option<String>,
}

async fn time_travel_bookmark(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
    Query(asked): Query<TimeTravelQuery>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let db = store.d1().database(&db)?;
        let bookmark = db.bookmark_at(asked.timestamp.as_deref())?;
        Ok(ok(serde_json::json!({ "bookmark": bookmark })))
    })
    .await
}

async fn time_travel_restore(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
    Query(asked): Query<TimeTravelQuery>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let db = store.d1().database(&db)?;
        let restored = db.restore(asked.bookmark.as_deref(), asked.timestamp.as_deref())?;
        Ok(ok(restored))
    })
    .await
}

async fn list(
    State(store): State<Arc<Store>>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    // Only the page's databases are read: a list of thousands opens none of the rest.
    let (dbs, total) =
        blocking(move || Ok(store.d1().list_page(paging.skip(), paging.take())?)).await?;
    Ok(ok_page_of(dbs, total, paging))
}

#[derive(Deserialize)]
struct Create {
    name: String,
}

async fn create(State(store): State<Arc<Store>>, body: Bytes) -> Result<Response, ApiError> {
    let body: Create = json_body(&body)?;
    let db = blocking(move || Ok(store.d1().create(&body.name)?)).await?;
    Ok(ok(db))
}

async fn info(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let db = blocking(move || Ok(store.d1().get(&db)?)).await?;
    Ok(ok(db))
}

async fn delete(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || Ok(store.d1().delete(&db)?)).await?;
    Ok(ok(Value::Null))
}

/// `{sql, params?}` or `{batch: [{sql, params?}, ...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum QueryBody {
    Batch { batch: Vec<Statement> },
    One(Statement),
}

#[derive(Deserialize)]
struct Statement {
    sql: String,
    #[serde(default)]
    params: Vec<Value>,
}

/// Runs a body: a single statement or script through `execute_script` (one result per
/// statement), a batch as one transaction; `answer` shapes the results. Both happen off
/// the async threads, and stop if the client goes away.
async fn run(
    store: Arc<Store>,
    db: String,
    body: Bytes,
    answer: fn(&[D1Result]) -> Response,
) -> Result<Response, ApiError> {
    let body: QueryBody = json_body(&body)?;
    let interrupt = Interrupt::new();
    // Hyper drops this future when the client goes away; the work stops with it.
    let _abandoned = interrupt.on_drop();
    blocking(move || {
        let db = store.d1().database(&db)?.interruptible(&interrupt);
        let results = match body {
            QueryBody::One(s) => {
                let params = s
                    .params
                    .iter()
                    .map(D1Value::from_json)
                    .collect::<Result<Vec<_>, _>>()?;
                db.execute_script(&s.sql, &params)?
            }
            QueryBody::Batch { batch } => {
                let statements = batch
                    .iter()
                    .map(|s| db.prepare(s.sql.clone()).bind_json(&s.params))
                    .collect::<Result<Vec<_>, _>>()?;
                db.batch(&statements)?
            }
        };
        let mut response = answer(&results);
        response.extensions_mut().insert(Units::d1(&results));
        Ok(response)
    })
    .await
}

async fn query(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    run(store, db, body, |results| ok(results)).await
}

async fn raw(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    run(store, db, body, |results| {
        ok(results
            .iter()
            .map(D1Result::rows_and_columns)
            .collect::<Vec<_>>())
    })
    .await
}
