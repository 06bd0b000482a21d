//! `POST /cdn-cgi/tristore/backup`: a backup of the store this server holds, taken by
//! the server itself (the only process that can read its open catalogs and indexes),
//! and `<data>/server.json`, which tells `tristore backup` that a server holds the
//! directory and where to ask.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header::CONTENT_TYPE, HeaderMap};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::envelope::{blocking, json_body, ok, ApiError};
use crate::Store;

/// Where `POST {"destination": "/absolute/path"}` writes a backup, and answers its
/// [`Summary`](crate::backup::Summary).
pub const BACKUP_PATH: &str = "/cdn-cgi/tristore/backup";

/// The file in the data directory that names the server holding it.
pub const SERVER_FILE: &str = "server.json";

#[derive(Deserialize)]
struct Asked {
    destination: PathBuf,
}

/// The backup route; behind the REST port's token and browser guards like the rest.
pub fn routes() -> Router<Arc<Store>> {
    Router::new().route(BACKUP_PATH, post(backup))
}

async fn backup(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    // A web page cannot send this type across sites without a preflight, which the
    // browser guard refuses.
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            415,
            10001,
            "send the destination as JSON, with Content-Type: application/json",
        ));
    }
    let asked: Asked = json_body(&body)?;
    if !asked.destination.is_absolute() {
        return Err(ApiError::new(
            400,
            10001,
            format!(
                "the destination {} is relative, but the server's working directory is not yours: send an absolute path",
                asked.destination.display()
            ),
        ));
    }
    let summary = blocking(move || Ok(crate::backup::backup(&store, &asked.destination)?)).await?;
    Ok(ok(summary))
}

/// `<data>/server.json`: the process serving a data directory, and its REST URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFile {
    /// The serving process.
    pub pid: u32,
    /// `http://127.0.0.1:8790` (or https).
    pub url: String,
}

impl ServerFile {
    /// Records that this process serves `data_dir` at `url`. Not fsynced: after a crash
    /// the process it names is gone, which [`ServerFile::running`] checks.
    pub fn write(data_dir: &Path, url: &str) -> std::io::Result<()> {
        let file = ServerFile {
            pid: std::process::id(),
            url: url.to_owned(),
        };
        let path = data_dir.join(SERVER_FILE);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&file)?)?;
        std::fs::rename(&tmp, &path)
    }

    /// Removes the file, if this process wrote it.
    pub fn remove(data_dir: &Path) {
        let path = data_dir.join(SERVER_FILE);
        if Self::read(data_dir).is_some_and(|f| f.pid == std::process::id()) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The server named in `data_dir`, if its process still runs.
    pub fn running(data_dir: &Path) -> Option<ServerFile> {
        Self::read(data_dir).filter(|f| crate::backup::alive(f.pid as i32))
    }

    fn read(data_dir: &Path) -> Option<ServerFile> {
        let bytes = std::fs::read(data_dir.join(SERVER_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
