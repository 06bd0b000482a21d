//! D1's export and import over REST, with the polling protocol (spec 2.3).
//!
//! Both run to completion within the first request, so the first answer already says
//! `status: "complete"`; polling with `current_bookmark` returns the same answer again.
//! Dumps and uploads are files under `<data dir>/d1-transfers/`, downloaded and uploaded
//! through `/cdn-cgi/tristore/d1/<file>`. In production these are R2 presigned URLs, and
//! wrangler sends them no API token, so here the URL is the capability, as a presigned
//! URL is: the file name holds 128 random bits, a `GET` serves only dumps that `export`
//! wrote and a `PUT` only names that `import init` issued, and with `--api-token` the URL
//! also carries a signature made with the token ([`UrlSigner`]). Uploads stream to disk;
//! an upload is removed once ingested, and every file (and kept polling answer) after
//! [`TRANSFER_TTL`].

use std::io::{Read, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hmac::Mac;
use md5::Digest;
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::{blocking, json_body, ok, ApiError};
use super::stream;
use crate::d1::dump::DumpOptions;
use crate::Store;

/// Where downloads and uploads live, under the server's root.
pub const FILES_PATH: &str = "/cdn-cgi/tristore/d1";

/// How long dumps, issued upload names and polling answers are kept: wrangler uses them
/// within seconds.
pub const TRANSFER_TTL: Duration = Duration::from_secs(3600);

/// The routes for dump downloads and import uploads.
pub fn file_routes() -> Router<Arc<Store>> {
    Router::new().route(&format!("{FILES_PATH}/{{file}}"), get(download).put(upload))
}

/// Signs the transfer URLs that `export` and `import init` hand out, when the server has
/// an API token: the signature is an HMAC of the file name keyed by the token, so only a
/// holder of the token can have obtained the URL, and wrangler, which sends the URL no
/// token, still works. (Added to the REST router as an [`Extension`].)
#[derive(Clone, Default)]
pub struct UrlSigner {
    token: Option<Arc<str>>,
    https: bool,
}

impl UrlSigner {
    /// A signer for a server whose API token is `token` (none: URLs are not signed),
    /// handing out `https` URLs when the server serves HTTPS.
    pub fn new(token: Option<&str>, https: bool) -> Self {
        UrlSigner {
            token: token.map(Arc::from),
            https,
        }
    }

    fn signature(&self, file: &str) -> Option<String> {
        let token = self.token.as_deref()?;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
        mac.update(b"tristore d1 transfer\n");
        mac.update(file.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    fn url(&self, headers: &HeaderMap, file: &str) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1:8790");
        let scheme = if self.https { "https" } else { "http" };
        match self.signature(file) {
            Some(signature) => {
                format!("{scheme}://{host}{FILES_PATH}/{file}?signature={signature}")
            }
            None => format!("{scheme}://{host}{FILES_PATH}/{file}"),
        }
    }

    fn check(&self, file: &str, given: &SignatureQuery) -> Result<(), ApiError> {
        let Some(expected) = self.signature(file) else {
            return Ok(());
        };
        let matches = given.signature.as_deref().is_some_and(|given| {
            // Constant-time comparison through the MAC type is overkill for hex text of
            // one length; comparing every byte keeps the time independent of the prefix.
            given.len() == expected.len()
                && given
                    .bytes()
                    .zip(expected.bytes())
                    .fold(0, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if matches {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                10000,
                "Authentication error: this transfer URL is not signed for this server's API token; use the URL export or import init returned",
            ))
        }
    }
}

#[derive(Deserialize)]
struct SignatureQuery {
    signature: Option<String>,
}

fn transfers(store: &Store) -> PathBuf {
    store.dir().join("d1-transfers")
}

/// Dumps written by `export`.
fn exports(store: &Store) -> PathBuf {
    transfers(store).join("exports")
}

/// Upload names issued by `import init` (`<name>.issued`) and the files uploaded to
/// them (`<name>`).
fn imports(store: &Store) -> PathBuf {
    transfers(store).join("imports")
}

/// Polling answers, by kind and bookmark: an export and an import of one state share
/// its bookmark.
fn answers(store: &Store) -> PathBuf {
    transfers(store).join("answers")
}

fn issued(store: &Store, file: &str) -> PathBuf {
    imports(store).join(format!("{file}.issued"))
}

/// Removes transfer files older than [`TRANSFER_TTL`], those of earlier versions too
/// (they kept everything in one directory). A file that cannot be removed is left for
/// the next sweep.
fn sweep(store: &Store) {
    sweep_older_than(&transfers(store), TRANSFER_TTL);
}

fn sweep_older_than(dir: &FsPath, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            sweep_older_than(&entry.path(), age);
        } else if is_older(&meta, age) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn is_older(meta: &std::fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
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

/// Keeps a polling answer so that a poll with its bookmark can return it.
fn remember(store: &Store, answer: &Value) -> Result<(), ApiError> {
    let dir = answers(store);
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    let kind = answer["type"].as_str().unwrap_or_default();
    let bookmark = answer["at_bookmark"].as_str().unwrap_or_default();
    std::fs::write(
        dir.join(format!("{kind}-{bookmark}.json")),
        answer.to_string(),
    )
    .map_err(io_error)
}

/// The answer an `export` or `import` (`kind`) gave at `bookmark`.
fn recall(store: &Store, kind: &str, bookmark: &str) -> Result<Value, ApiError> {
    let path = answers(store).join(format!("{kind}-{}.json", checked(bookmark)?));
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
    Extension(signer): Extension<UrlSigner>,
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
        return Ok(ok(
            blocking(move || recall(&store, "export", &bookmark)).await?
        ));
    }
    let answer = blocking(move || {
        sweep(&store);
        let database = store.d1().database(&db)?;
        let info = store.d1().get(&db)?;
        let options = DumpOptions {
            no_data: body.dump_options.no_data,
            no_schema: body.dump_options.no_schema,
            tables: body.dump_options.tables,
        };
        let at_bookmark = database.bookmark();
        let dump = database.export(&options)?;
        let filename = format!("{}-{}.sql", info.uuid, random_hex());
        let dir = exports(&store);
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        std::fs::write(dir.join(&filename), &dump).map_err(io_error)?;
        let answer = json!({
            "success": true,
            "type": "export",
            "at_bookmark": at_bookmark,
            "status": "complete",
            "messages": [format!("Exported {} bytes of SQL to {filename}", dump.len())],
            "result": {"filename": filename, "signed_url": signer.url(&headers, &filename)},
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
    Extension(signer): Extension<UrlSigner>,
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
            checked(&etag)?;
            let filename = blocking(move || {
                sweep(&store);
                let info = store.d1().get(&db)?;
                let filename = format!("{}-import-{etag}-{}.sql", info.uuid, random_hex());
                std::fs::create_dir_all(imports(&store)).map_err(io_error)?;
                std::fs::write(issued(&store, &filename), b"").map_err(io_error)?;
                Ok(filename)
            })
            .await?;
            Ok(ok(json!({
                "success": true,
                "type": "import",
                "filename": filename,
                "upload_url": signer.url(&headers, &filename),
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
            Ok(ok(
                blocking(move || recall(&store, "import", &bookmark)).await?
            ))
        }
        other => Err(ApiError::new(
            400,
            7400,
            format!("Unknown import action {other:?}: use init, ingest or poll"),
        )),
    }
}

/// Runs an uploaded dump as one transaction and removes it (a retry starts again with
/// `init`); the answer, complete or failed, is kept for polling.
fn ingest(store: &Store, db: &str, etag: &str, filename: &str) -> Result<Value, ApiError> {
    let path = imports(store).join(checked(filename)?);
    let sql = std::fs::read(&path).map_err(|_| {
        ApiError::new(
            404,
            7404,
            format!(
                "Nothing was uploaded as {filename}: PUT the file to the upload_url of init first"
            ),
        )
    })?;
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(issued(store, filename));
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
    // The state after the import (or, after a failure, the untouched one).
    let bookmark = store.d1().database(db)?.bookmark();
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
    Extension(signer): Extension<UrlSigner>,
    Path(file): Path<String>,
    Query(signature): Query<SignatureQuery>,
) -> Result<Response, ApiError> {
    signer.check(&file, &signature)?;
    let path = exports(&store).join(checked(&file)?);
    let bytes = blocking(move || {
        std::fs::read(path).map_err(|_| ApiError::new(404, 7404, "No such export file"))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/sql")], bytes).into_response())
}

/// Streams the body to a temporary file beside the issued name and renames it into
/// place, so memory stays bounded and a broken upload leaves nothing behind.
async fn upload(
    State(store): State<Arc<Store>>,
    Extension(signer): Extension<UrlSigner>,
    Path(file): Path<String>,
    Query(signature): Query<SignatureQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    signer.check(&file, &signature)?;
    let marker = issued(&store, checked(&file)?);
    let expected = blocking(move || {
        Ok(std::fs::metadata(&marker).is_ok_and(|meta| !is_older(&meta, TRANSFER_TTL)))
    })
    .await?;
    if !expected {
        return Err(ApiError::new(
            404,
            7404,
            format!("No upload is expected as {file}: call import with action \"init\" and PUT to its upload_url within an hour"),
        ));
    }
    let target = imports(&store).join(&file);
    let part = imports(&store).join(format!("{file}.{}.part", random_hex()));
    let written = receive(body, part.clone()).await;
    let etag = blocking(move || {
        let renamed = written.and_then(|etag| {
            std::fs::rename(&part, &target)
                .map(|()| etag)
                .map_err(io_error)
        });
        if renamed.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        renamed
    })
    .await?;
    Ok((StatusCode::OK, [(header::ETAG, format!("\"{etag}\""))]).into_response())
}

/// Writes `body` to `path`, at most the REST body limit, and returns its MD5 in hex. The
/// body is read as S3 uploads are ([`stream::body_reader`]): in an upload slot, failing
/// if it stalls for the body timeout.
async fn receive(body: Body, path: PathBuf) -> Result<String, ApiError> {
    let _slot = stream::upload_slot().await;
    let (reader, pump) = stream::body_reader(body);
    let (written, ()) = tokio::join!(blocking(move || write_upload(reader, &path)), pump);
    written
}

fn write_upload(reader: impl Read, path: &FsPath) -> Result<String, ApiError> {
    let mut out = std::fs::File::create(path).map_err(io_error)?;
    let mut md5 = md5::Md5::new();
    let mut reader = reader.take(super::REST_BODY_LIMIT as u64 + 1);
    let mut size = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| ApiError::new(400, 10001, format!("The upload could not be read: {e}")))?;
        if n == 0 {
            break;
        }
        size += n;
        if size > super::REST_BODY_LIMIT {
            return Err(ApiError::new(
                413,
                10001,
                format!(
                    "The upload is larger than {} MiB, the most tristore imports at once: split the SQL file",
                    super::REST_BODY_LIMIT >> 20
                ),
            ));
        }
        md5.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_error)?;
    }
    crate::fsync::file(&out).map_err(io_error)?;
    Ok(hex::encode(md5.finalize()))
}
