//! D1's export and import over REST, with the polling protocol (spec 2.3).
//!
//! Both run to completion within the first request, so the first answer already says
//! `status: "complete"`; polling with `current_bookmark` returns the same answer again.
//! Dumps and uploads are files under `<data dir>/d1-transfers/`, downloaded and uploaded
//! through `/cdn-cgi/tristore/d1/<file>`: the random file name is the capability, as a
//! signed URL's signature is, so those two routes need no API token.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use md5::Digest;
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::{blocking, json_body, ok, ApiError};
use crate::d1::dump::DumpOptions;
use crate::Store;

/// Where downloads and uploads live, under the server's root.
pub const FILES_PATH: &str = "/cdn-cgi/tristore/d1";

/// The routes for dump downloads and import uploads.
pub fn file_routes() -> Router<Arc<Store>> {
    Router::new().route(&format!("{FILES_PATH}/{{file}}"), get(download).put(upload))
}

fn transfers(store: &Store) -> PathBuf {
    store.dir().join("d1-transfers")
}

/// A file name we made: letters, digits, `-` and `.` only, so never a path.
fn checked(file: &str) -> Result<&str, ApiError> {
    let fine = !file.is_empty()
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if fine {
        Ok(file)
    } else {
        Err(ApiError::new(
            404,
            7404,
            format!("No transfer file {file:?}"),
        ))
    }
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A bookmark shaped like D1's (`8-8-8-32` hex digits).
fn new_bookmark() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:08x}-{:08x}-{:08x}-{}",
        now.as_secs() >> 32,
        now.as_secs() & 0xffff_ffff,
        now.subsec_micros(),
        random_hex()
    )
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8790");
    format!("http://{host}{FILES_PATH}")
}

/// Keeps a polling answer so that a poll with its bookmark can return it.
fn remember(store: &Store, answer: &Value) -> Result<(), ApiError> {
    let dir = transfers(store);
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    let bookmark = answer["at_bookmark"].as_str().unwrap_or_default();
    std::fs::write(dir.join(format!("{bookmark}.json")), answer.to_string()).map_err(io_error)
}

fn recall(store: &Store, bookmark: &str) -> Result<Value, ApiError> {
    let path = transfers(store).join(format!("{}.json", checked(bookmark)?));
    let text = std::fs::read_to_string(path).map_err(|_| {
        ApiError::new(
            404,
            7404,
            format!("No export or import is known by the bookmark {bookmark}"),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| ApiError::new(500, 7500, e.to_string()))
}

fn io_error(e: std::io::Error) -> ApiError {
    ApiError::new(500, 7500, format!("transfer file: {e}"))
}

#[derive(Deserialize, Default)]
struct ExportBody {
    output_format: Option<String>,
    #[serde(default)]
    dump_options: DumpOptionsBody,
    current_bookmark: Option<String>,
}

#[derive(Deserialize, Default)]
struct DumpOptionsBody {
    #[serde(default)]
    no_data: bool,
    #[serde(default)]
    no_schema: bool,
    #[serde(default)]
    tables: Vec<String>,
}

/// `POST /{db}/export`.
pub async fn export(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ExportBody = json_body(&body)?;
    if body.output_format.as_deref() != Some("polling") {
        return Err(ApiError::new(
            400,
            7400,
            "output_format must be \"polling\"",
        ));
    }
    if let Some(bookmark) = body.current_bookmark {
        return Ok(ok(blocking(move || recall(&store, &bookmark)).await?));
    }
    let base = base_url(&headers);
    let answer = blocking(move || {
        let database = store.d1().database(&db)?;
        let info = store.d1().get(&db)?;
        let options = DumpOptions {
            no_data: body.dump_options.no_data,
            no_schema: body.dump_options.no_schema,
            tables: body.dump_options.tables,
        };
        let dump = database.export(&options)?;
        let filename = format!("{}-{}.sql", info.uuid, random_hex());
        let dir = transfers(&store);
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        std::fs::write(dir.join(&filename), &dump).map_err(io_error)?;
        let answer = json!({
            "success": true,
            "type": "export",
            "at_bookmark": new_bookmark(),
            "status": "complete",
            "messages": [format!("Exported {} bytes of SQL to {filename}", dump.len())],
            "result": {"filename": filename, "signed_url": format!("{base}/{filename}")},
        });
        remember(&store, &answer)?;
        Ok(answer)
    })
    .await?;
    Ok(ok(answer))
}

#[derive(Deserialize)]
struct ImportBody {
    action: String,
    etag: Option<String>,
    filename: Option<String>,
    current_bookmark: Option<String>,
}

/// `POST /{db}/import`: `init`, `ingest` or `poll`.
pub async fn import(
    State(store): State<Arc<Store>>,
    Path((_, db)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ImportBody = json_body(&body)?;
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| ApiError::new(400, 7400, format!("import {} needs {name}", body.action)))
    };
    match body.action.as_str() {
        "init" => {
            let etag = need(body.etag.clone(), "etag")?;
            let info = blocking({
                let store = store.clone();
                move || Ok(store.d1().get(&db)?)
            })
            .await?;
            let filename = format!("{}-import-{}.sql", info.uuid, checked(&etag)?);
            Ok(ok(json!({
                "success": true,
                "type": "import",
                "filename": filename,
                "upload_url": format!("{}/{filename}", base_url(&headers)),
            })))
        }
        "ingest" => {
            let etag = need(body.etag.clone(), "etag")?;
            let filename = need(body.filename.clone(), "filename")?;
            let answer = blocking(move || ingest(&store, &db, &etag, &filename)).await?;
            Ok(ok(answer))
        }
        "poll" => {
            let bookmark = need(body.current_bookmark.clone(), "current_bookmark")?;
            Ok(ok(blocking(move || recall(&store, &bookmark)).await?))
        }
        other => Err(ApiError::new(
            400,
            7400,
            format!("Unknown import action {other:?}: use init, ingest or poll"),
        )),
    }
}

/// Runs an uploaded dump as one transaction; the answer, complete or failed, is kept
/// for polling.
fn ingest(store: &Store, db: &str, etag: &str, filename: &str) -> Result<Value, ApiError> {
    let path = transfers(store).join(checked(filename)?);
    let sql = std::fs::read(&path).map_err(|_| {
        ApiError::new(
            404,
            7404,
            format!(
                "Nothing was uploaded as {filename}: PUT the file to the upload_url of init first"
            ),
        )
    })?;
    let bookmark = new_bookmark();
    let started = std::time::Instant::now();
    let md5 = hex::encode(md5::Md5::digest(&sql));
    let outcome = if md5 != etag {
        Err(format!(
            "The uploaded file's MD5 is {md5}, not the etag {etag} given to init"
        ))
    } else {
        let text =
            String::from_utf8(sql).map_err(|_| "The uploaded file is not UTF-8 SQL".to_owned());
        text.and_then(|text| {
            store
                .d1()
                .database(db)
                .and_then(|d| Ok(d.import(&text)?))
                .map_err(|e| e.to_string())
        })
    };
    let answer = match outcome {
        Ok(summary) => json!({
            "success": true,
            "type": "import",
            "at_bookmark": bookmark,
            "status": "complete",
            "messages": [format!("Ran {} statements", summary.num_queries)],
            "result": {
                "final_bookmark": bookmark,
                "num_queries": summary.num_queries,
                // wrangler prints all four; the import does not count rows read.
                "meta": {
                    "duration": started.elapsed().as_secs_f64() * 1000.0,
                    "rows_read": 0,
                    "rows_written": summary.rows_written,
                    "size_after": summary.size_after,
                },
            },
        }),
        Err(message) => json!({
            "success": false,
            "type": "import",
            "at_bookmark": bookmark,
            "status": "error",
            "error": message,
        }),
    };
    remember(store, &answer)?;
    Ok(answer)
}

async fn download(
    State(store): State<Arc<Store>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let path = transfers(&store).join(checked(&file)?);
    let bytes = blocking(move || {
        std::fs::read(path).map_err(|_| ApiError::new(404, 7404, "No such export file"))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/sql")], bytes).into_response())
}

async fn upload(
    State(store): State<Arc<Store>>,
    Path(file): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = transfers(&store).join(checked(&file)?);
    let etag = hex::encode(md5::Md5::digest(&body));
    blocking(move || {
        std::fs::create_dir_all(path.parent().expect("under the transfers directory"))
            .map_err(io_error)?;
        std::fs::write(&path, &body).map_err(io_error)
    })
    .await?;
    Ok((StatusCode::OK, [(header::ETAG, format!("\"{etag}\""))]).into_response())
}
