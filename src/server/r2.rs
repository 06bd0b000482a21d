//! R2's bucket REST API: list, create, get, delete (objects go through the S3 API).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::{blocking, json_body, ok, ApiError};
use crate::r2::BucketInfo;
use crate::Store;

/// Routes under `/client/v4/accounts/{account}/r2/buckets`.
pub fn routes() -> Router<Arc<Store>> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/{bucket}", get(info).delete(delete))
}

/// A bucket as the REST API shows it.
fn bucket(b: &BucketInfo) -> Value {
    json!({"name": b.name, "creation_date": b.creation_date, "location": "ENAM", "storage_class": "Standard"})
}

async fn list(State(store): State<Arc<Store>>) -> Result<Response, ApiError> {
    let buckets = blocking(move || Ok(store.r2().list_buckets()?)).await?;
    Ok(ok(
        json!({"buckets": buckets.iter().map(bucket).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct Create {
    name: String,
}

async fn create(State(store): State<Arc<Store>>, body: Bytes) -> Result<Response, ApiError> {
    let body: Create = json_body(&body)?;
    let created = blocking(move || Ok(store.r2().create_bucket(&body.name)?)).await?;
    Ok(ok(bucket(&created)))
}

async fn info(
    State(store): State<Arc<Store>>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let found = blocking(move || {
        let all = store.r2().list_buckets()?;
        all.into_iter().find(|b| b.name == name).ok_or_else(|| {
            ApiError::new(
                404,
                10006,
                format!("The specified bucket does not exist: {name}"),
            )
        })
    })
    .await?;
    Ok(ok(bucket(&found)))
}

async fn delete(
    State(store): State<Arc<Store>>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || Ok(store.r2().delete_bucket(&name)?)).await?;
    Ok(ok(Value::Null))
}
