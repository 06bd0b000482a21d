//! Vectorize's v2 REST API (spec 4): indexes, NDJSON or multipart inserts, queries,
//! vector ids, metadata indexes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::{blocking, ok, ApiError};
use crate::usage::Units;
use crate::vectorize::error::code;
use crate::vectorize::ndjson::{self, Unparsable};
use crate::vectorize::{
    IndexConfig, MetadataIndexType, Metric, Op, QueryOptions, VectorizeError, VectorizeIndex,
    VectorizeMatches,
};
use crate::Store;

/// Routes under `/client/v4/accounts/{account}/vectorize/v2/indexes`.
pub fn routes() -> Router<Arc<Store>> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/{index}", get(describe).delete(delete))
        .route("/{index}/info", get(info))
        .route("/{index}/insert", post(insert))
        .route("/{index}/upsert", post(upsert))
        .route("/{index}/query", post(query))
        .route("/{index}/get_by_ids", post(get_by_ids))
        .route("/{index}/delete_by_ids", post(delete_by_ids))
        .route("/{index}/list", get(list_vectors))
        .route(
            "/{index}/metadata_index/create",
            post(create_metadata_index),
        )
        .route("/{index}/metadata_index/list", get(list_metadata_indexes))
        .route(
            "/{index}/metadata_index/delete",
            post(delete_metadata_index),
        )
}

type Names = Path<(String, String)>;

/// A JSON body, with parse failures reported as Vectorize's 40026.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    op: Op,
    body: &[u8],
) -> Result<T, VectorizeError> {
    serde_json::from_slice(body).map_err(|e| {
        VectorizeError::new(
            op,
            code::PARSE,
            format!("Failed to parse the request body as JSON: {e}"),
        )
    })
}

/// The index `name`, with a missing one reported as an error of `op`.
pub(crate) fn index(store: &Store, name: &str, op: Op) -> Result<VectorizeIndex, VectorizeError> {
    store.vectorize().index(name).map_err(|e| e.during(op))
}

async fn list(State(store): State<Arc<Store>>) -> Result<Response, ApiError> {
    Ok(ok(blocking(move || Ok(store.vectorize().list()?)).await?))
}

#[derive(Deserialize)]
struct Create {
    name: String,
    #[serde(default)]
    description: String,
    config: ConfigBody,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigBody {
    Explicit { dimensions: usize, metric: Metric },
    Preset { preset: String },
}

async fn create(State(store): State<Arc<Store>>, body: Bytes) -> Result<Response, ApiError> {
    let body: Create = parse(Op::Index, &body)?;
    let config = match body.config {
        ConfigBody::Explicit { dimensions, metric } => IndexConfig { dimensions, metric },
        ConfigBody::Preset { preset } => IndexConfig::preset(&preset).ok_or_else(|| {
            VectorizeError::new(
                Op::Index,
                code::INVALID_CONFIG,
                format!("unknown preset {preset:?}"),
            )
        })?,
    };
    let described = blocking(move || {
        Ok(store
            .vectorize()
            .create(&body.name, &body.description, config)?)
    })
    .await?;
    Ok(ok(described))
}

async fn describe(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
) -> Result<Response, ApiError> {
    Ok(ok(
        blocking(move || Ok(store.vectorize().get(&name)?)).await?
    ))
}

async fn delete(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
) -> Result<Response, ApiError> {
    blocking(move || Ok(store.vectorize().delete(&name)?)).await?;
    Ok(ok(Value::Null))
}

async fn info(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
) -> Result<Response, ApiError> {
    Ok(ok(blocking(move || {
        Ok(store.vectorize().index(&name)?.describe())
    })
    .await?))
}

/// The NDJSON of an insert/upsert: the body itself, or the `vectors` file of a
/// multipart form (what wrangler and the docs' Python example send).
async fn ndjson_body(request: Request) -> Result<Vec<u8>, ApiError> {
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(ApiError::bad_body)?;
        return Ok(bytes.to_vec());
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(ApiError::bad_body)?;
    while let Some(field) = form.next_field().await.map_err(ApiError::bad_body)? {
        if field.name() == Some("vectors") {
            return Ok(field.bytes().await.map_err(ApiError::bad_body)?.to_vec());
        }
    }
    Err(ApiError::bad_body(
        "the multipart form has no \"vectors\" file",
    ))
}

async fn write(
    op: Op,
    store: Arc<Store>,
    name: String,
    params: HashMap<String, String>,
    request: Request,
) -> Result<Response, ApiError> {
    let on_bad = match params.get("unparsable-behavior").map(String::as_str) {
        None | Some("error") => Unparsable::Error,
        Some("discard") => Unparsable::Discard,
        Some(other) => {
            return Err(VectorizeError::new(
                op,
                code::PARSE,
                format!("unparsable-behavior must be \"error\" or \"discard\", not {other:?}"),
            )
            .into())
        }
    };
    let body = ndjson_body(request).await?;
    let mutation = blocking(move || {
        let vectors = ndjson::parse(op, &body, on_bad)?;
        let index = index(&store, &name, op)?;
        let max = store.vectorize().limits().max_http_batch;
        Ok(index.write_vectors(op, &vectors, max)?)
    })
    .await?;
    Ok(ok(mutation))
}

async fn insert(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    write(Op::Insert, store, name, params, request).await
}

async fn upsert(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    write(Op::Upsert, store, name, params, request).await
}

/// `{vector}` or `{vectorId}` with the query options beside it (the REST body and the
/// binding's alike).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryBody {
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    vector_id: Option<String>,
    #[serde(flatten)]
    options: QueryOptions,
}

impl QueryBody {
    /// Runs the query on `index`.
    pub(crate) fn run(&self, index: &VectorizeIndex) -> Result<VectorizeMatches, VectorizeError> {
        match (&self.vector, &self.vector_id) {
            (Some(v), _) => index.query(v, &self.options),
            (None, Some(id)) => index.query_by_id(id, &self.options),
            (None, None) => index.query(&[], &self.options),
        }
    }
}

async fn query(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: QueryBody = parse(Op::Query, &body)?;
    let (matches, dimensions) = blocking(move || {
        let index = index(&store, &name, Op::Query)?;
        Ok((body.run(&index)?, index.config().dimensions))
    })
    .await?;
    let mut response = ok(matches);
    response
        .extensions_mut()
        .insert(Units::vectorize_query(dimensions));
    Ok(response)
}

/// `{ids: [...]}` of `get_by_ids` / `delete_by_ids`.
#[derive(Deserialize)]
pub(crate) struct Ids {
    pub(crate) ids: Vec<String>,
}

async fn get_by_ids(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Ids = parse(Op::Get, &body)?;
    let vectors =
        blocking(move || Ok(index(&store, &name, Op::Get)?.get_by_ids(&body.ids)?)).await?;
    Ok(ok(vectors))
}

async fn delete_by_ids(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Ids = parse(Op::Delete, &body)?;
    let mutation =
        blocking(move || Ok(index(&store, &name, Op::Delete)?.delete_by_ids(&body.ids)?)).await?;
    Ok(ok(mutation))
}

#[derive(Deserialize)]
struct ListParams {
    count: Option<usize>,
    cursor: Option<String>,
}

async fn list_vectors(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page =
        blocking(move || Ok(index(&store, &name, Op::List)?.list(p.count, p.cursor.as_deref())?))
            .await?;
    Ok(ok(page))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataIndexBody {
    property_name: String,
    #[serde(default)]
    index_type: Option<MetadataIndexType>,
}

async fn create_metadata_index(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: MetadataIndexBody = parse(Op::MetadataIndex, &body)?;
    let index_type = body.index_type.ok_or_else(|| {
        VectorizeError::new(
            Op::MetadataIndex,
            code::METADATA_INDEX,
            "indexType is required: \"string\", \"number\" or \"boolean\"",
        )
    })?;
    let mutation = blocking(move || {
        let index = index(&store, &name, Op::MetadataIndex)?;
        Ok(index.create_metadata_index(&body.property_name, index_type)?)
    })
    .await?;
    Ok(ok(mutation))
}

async fn list_metadata_indexes(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
) -> Result<Response, ApiError> {
    let list =
        blocking(move || Ok(index(&store, &name, Op::MetadataIndex)?.list_metadata_indexes()))
            .await?;
    Ok(ok(json!({"metadataIndexes": list})))
}

async fn delete_metadata_index(
    State(store): State<Arc<Store>>,
    Path((_, name)): Names,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: MetadataIndexBody = parse(Op::MetadataIndex, &body)?;
    let mutation = blocking(move || {
        let index = index(&store, &name, Op::MetadataIndex)?;
        Ok(index.delete_metadata_index(&body.property_name)?)
    })
    .await?;
    Ok(ok(mutation))
}
