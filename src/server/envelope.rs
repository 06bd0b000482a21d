//! The v4 API envelope: `{success, errors: [{code, message}], messages, result}`, and the
//! mapping from each store's errors to Cloudflare's codes and HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use crate::d1::{D1Error, TimeTravelError};
use crate::r2::R2Error;
use crate::vectorize::VectorizeError;

/// The envelope of a success, serialised straight from `result`: going through
/// `json!` would build a `serde_json::Value` per item (per byte, for a BLOB).
#[derive(Serialize)]
struct Success<T> {
    success: bool,
    errors: [(); 0],
    messages: [(); 0],
    result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_info: Option<ResultInfo>,
}

/// `result_info` of a list.
#[derive(Serialize)]
struct ResultInfo {
    page: usize,
    per_page: usize,
    count: usize,
    total_count: usize,
    total_pages: usize,
}

/// A successful response wrapping `result`.
pub fn ok(result: impl Serialize) -> Response {
    Json(Success {
        success: true,
        errors: [],
        messages: [],
        result,
        result_info: None,
    })
    .into_response()
}

/// Paging of a list call: `?page=` (from 1) and `?per_page=`.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Paging {
    /// The page, from 1.
    #[serde(default = "first_page")]
    pub page: usize,
    /// Items per page (default 100, at most 10,000).
    #[serde(default = "default_per_page")]
    pub per_page: usize,
}

fn first_page() -> usize {
    1
}

fn default_per_page() -> usize {
    100
}

impl Paging {
    fn per_page(self) -> usize {
        self.per_page.clamp(1, 10_000)
    }

    fn page(self) -> usize {
        self.page.max(1)
    }

    /// How many items come before this page.
    pub fn skip(self) -> usize {
        (self.page() - 1).saturating_mul(self.per_page())
    }

    /// How many items this page holds at most.
    pub fn take(self) -> usize {
        self.per_page()
    }
}

/// One page of `items` with `result_info`. A page past the end is empty, which is how
/// the SDKs' auto-paging knows to stop.
pub fn ok_page<T: Serialize>(items: Vec<T>, paging: Paging) -> Response {
    let total = items.len();
    let page = items
        .into_iter()
        .skip(paging.skip())
        .take(paging.take())
        .collect();
    ok_page_of(page, total, paging)
}

/// `page`, the items [`Paging::skip`] and [`Paging::take`] chose out of `total`, with
/// `result_info`: for lists that read only the page they answer with.
pub fn ok_page_of<T: Serialize>(page: Vec<T>, total: usize, paging: Paging) -> Response {
    let per_page = paging.per_page();
    let result_info = ResultInfo {
        page: paging.page(),
        per_page,
        count: page.len(),
        total_count: total,
        total_pages: total.div_ceil(per_page),
    };
    Json(Success {
        success: true,
        errors: [],
        messages: [],
        result: page,
        result_info: Some(result_info),
    })
    .into_response()
}

/// A failed call.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Cloudflare's error code.
    pub code: u32,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
        }
    }

    /// A request body that is not what the endpoint takes.
    pub fn bad_body(e: impl std::fmt::Display) -> Self {
        ApiError::new(400, 10001, format!("invalid request body: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "result": Value::Null,
        });
        (self.status, Json(body)).into_response()
    }
}

/// D1 failures: SQL errors are 400 with code 7500 and SQLite's text, as the service
/// answers them (spec 2.1).
impl From<D1Error> for ApiError {
    fn from(e: D1Error) -> Self {
        let message = match &e {
            D1Error::Query(sql) => sql.to_string(),
            other => other.to_string(),
        };
        ApiError::new(400, 7500, message)
    }
}

/// Time Travel refusals are the caller's to fix (400), but for the restore rate limit
/// (429) and the history's own storage failures (500).
impl From<TimeTravelError> for ApiError {
    fn from(e: TimeTravelError) -> Self {
        let (status, code) = match &e {
            TimeTravelError::TooManyRestores { .. } => (429, 7429),
            TimeTravelError::Storage(_) => (500, 7500),
            _ => (400, 7400),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Store-level failures (names, catalog, files).
impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        use crate::Error;
        match &e {
            Error::NotFound { .. } => ApiError::new(404, 7404, e.to_string()),
            Error::AlreadyExists { .. } => ApiError::new(400, 7502, e.to_string()),
            Error::InvalidName { .. } => ApiError::new(400, 7400, e.to_string()),
            Error::Backup { .. } => ApiError::new(400, 10001, e.to_string()),
            Error::D1(d1) => ApiError::from(d1.clone()),
            Error::R2(r2) => ApiError::from(r2.clone()),
            Error::Vectorize(v) => ApiError::from(v.clone()),
            _ => ApiError::new(500, 7500, e.to_string()),
        }
    }
}

impl From<VectorizeError> for ApiError {
    fn from(e: VectorizeError) -> Self {
        ApiError::new(e.http_status(), e.code, e.message)
    }
}

impl From<R2Error> for ApiError {
    fn from(e: R2Error) -> Self {
        ApiError::new(e.kind.http_status(), e.kind.code(), e.message)
    }
}

/// A JSON body, whatever its `Content-Type` says (curl's `-d` says form data).
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

/// Rewrites the plain-text errors of axum's extractors (a query string that does not
/// parse, a body over the limit) into the v4 envelope, so that every REST answer has
/// Cloudflare's shape.
pub async fn plain_errors_as_envelope(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = if status.is_server_error() {
        10000
    } else {
        10001
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    ApiError::new(status.as_u16(), code, message).into_response()
}

/// Runs a blocking store call off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::new(500, 10000, format!("internal error: {e}"))))
}
