//! The S3 calls `pull` and `push` make to R2, signed with SigV4 in the `Authorization`
//! header ([`crate::r2::presign::OutgoingRequest`]).

use std::sync::Mutex;
use std::time::SystemTime;

use serde::Deserialize;

use super::http::{BaseUrl, Connection, Response};
use super::{Result, TransferError};
use crate::r2::presign::{Credentials, OutgoingRequest};

/// An R2 account's S3 endpoint.
pub struct S3 {
    base: BaseUrl,
    credentials: Credentials,
    connection: Mutex<Option<Connection>>,
}

/// One object of a listing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Listed {
    /// The key.
    pub key: String,
    /// The ETag, quotes removed by [`S3::list`].
    #[serde(rename = "ETag")]
    pub etag: String,
    /// Bytes.
    pub size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Listed>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAllMyBucketsResult {
    buckets: Buckets,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Buckets {
    #[serde(default)]
    bucket: Vec<BucketName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BucketName {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateMultipartUploadResult {
    upload_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3ErrorBody {
    code: String,
    message: Option<String>,
}

impl S3 {
    /// The S3 API at `endpoint` (e.g. `https://<account>.r2.cloudflarestorage.com`) with
    /// an R2 access key pair.
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<S3> {
        let base =
            BaseUrl::parse(endpoint).map_err(|e| TransferError(format!("--s3-endpoint: {e}")))?;
        Ok(S3 {
            base,
            credentials,
            connection: Mutex::new(None),
        })
    }

    /// Sends one signed request; `Ok` only for a 2xx answer (or `allowed`'s statuses).
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
        allowed: &[u16],
    ) -> Result<Response> {
        let full_path = format!("{}{path}", self.base.path);
        let request = OutgoingRequest {
            method,
            host: &self.base.authority,
            path: &full_path,
            query,
            headers,
            region: "auto",
            now: SystemTime::now(),
        };
        let target = request.target();
        let signature = request.sign(&self.credentials);
        let mut all: Vec<(&str, &str)> = signature.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(headers);
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        let mut reused = slot.is_some();
        let response = loop {
            if slot.is_none() {
                *slot = Some(self.base.connect().map_err(|e| self.unreachable(&e))?);
            }
            match slot
                .as_mut()
                .expect("set above")
                .send(method, &target, &all, body)
            {
                Ok(r) => break r,
                // A kept connection the server closed while idle: once more on a new one.
                Err(_) if reused => {
                    *slot = None;
                    reused = false;
                }
                Err(e) => {
                    *slot = None;
                    return Err(self.unreachable(&e));
                }
            }
        };
        if (200..300).contains(&response.status) || allowed.contains(&response.status) {
            return Ok(response);
        }
        let (code, message) = match quick_xml::de::from_str::<S3ErrorBody>(&response.text()) {
            Ok(e) => (e.code, e.message.unwrap_or_default()),
            Err(_) => (String::new(), response.text().chars().take(300).collect()),
        };
        let hint = match response.status {
            401 | 403 => " (check --s3-access-key-id and --s3-secret-access-key)",
            _ => "",
        };
        Err(TransferError(format!(
            "the remote S3 API answered {} {code} to {method} {path}: {message}{hint}",
            response.status
        )))
    }

    fn unreachable(&self, e: &std::io::Error) -> TransferError {
        TransferError(format!(
            "cannot reach the remote S3 API at {}://{}: {e} (check --s3-endpoint and the network)",
            if self.base.https { "https" } else { "http" },
            self.base.authority
        ))
    }

    fn xml<T: serde::de::DeserializeOwned>(what: &str, response: &Response) -> Result<T> {
        quick_xml::de::from_str(&response.text()).map_err(|e| {
            TransferError(format!("the remote's {what} answer is not understood: {e}"))
        })
    }

    fn object_path(bucket: &str, key: &str) -> String {
        format!("/{bucket}/{key}")
    }

    /// The account's buckets.
    pub fn buckets(&self) -> Result<Vec<String>> {
        let response = self.send("GET", "/", &[], &[], &[], &[])?;
        let list: ListAllMyBucketsResult = Self::xml("ListBuckets", &response)?;
        Ok(list.buckets.bucket.into_iter().map(|b| b.name).collect())
    }

    /// Creates `bucket` unless it exists.
    pub fn ensure_bucket(&self, bucket: &str) -> Result<bool> {
        let response = self.send("PUT", &format!("/{bucket}"), &[], &[], &[], &[409])?;
        Ok(response.status != 409)
    }

    /// Every object of `bucket` (ListObjectsV2, 1,000 a page).
    pub fn list(&self, bucket: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("max-keys", "1000")];
            if let Some(t) = &token {
                query.push(("continuation-token", t));
            }
            let response = self.send("GET", &format!("/{bucket}"), &query, &[], &[], &[])?;
            let page: ListBucketResult = Self::xml("ListObjectsV2", &response)?;
            out.extend(page.contents.into_iter().map(|mut o| {
                o.etag = o.etag.trim_matches('"').to_owned();
                o
            }));
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// The size of part 1 of a multipart object (HEAD with `partNumber=1`): the part
    /// size its multipart ETag was computed with.
    pub fn first_part_size(&self, bucket: &str, key: &str) -> Result<u64> {
        let response = self.send(
            "HEAD",
            &Self::object_path(bucket, key),
            &[("partNumber", "1")],
            &[],
            &[],
            &[],
        )?;
        response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| TransferError(format!("{bucket}/{key}: the remote sent no part size")))
    }

    /// Bytes `start..start + length` of an object, with the response's headers.
    pub fn get_range(&self, bucket: &str, key: &str, start: u64, length: u64) -> Result<Response> {
        let range = format!("bytes={start}-{}", start + length - 1);
        self.send(
            "GET",
            &Self::object_path(bucket, key),
            &[],
            &[("Range", &range)],
            &[],
            &[],
        )
    }

    /// A whole object.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Response> {
        self.send("GET", &Self::object_path(bucket, key), &[], &[], &[], &[])
    }

    /// Stores a whole object in one request.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<()> {
        self.send(
            "PUT",
            &Self::object_path(bucket, key),
            &[],
            headers,
            body,
            &[],
        )?;
        Ok(())
    }

    /// Starts a multipart upload; returns its id.
    pub fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> Result<String> {
        let response = self.send(
            "POST",
            &Self::object_path(bucket, key),
            &[("uploads", "")],
            headers,
            &[],
            &[],
        )?;
        Ok(
            Self::xml::<InitiateMultipartUploadResult>("CreateMultipartUpload", &response)?
                .upload_id,
        )
    }

    /// Uploads part `number`; returns its ETag.
    pub fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        number: usize,
        body: &[u8],
    ) -> Result<String> {
        let number = number.to_string();
        let response = self.send(
            "PUT",
            &Self::object_path(bucket, key),
            &[("partNumber", &number), ("uploadId", upload)],
            &[],
            body,
            &[],
        )?;
        response.header("etag").map(str::to_owned).ok_or_else(|| {
            TransferError(format!(
                "{bucket}/{key}: the remote gave part {number} no ETag"
            ))
        })
    }

    /// Completes a multipart upload from its parts' ETags, in order.
    pub fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<()> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                etag.replace('&', "&amp;").replace('<', "&lt;")
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        self.send(
            "POST",
            &Self::object_path(bucket, key),
            &[("uploadId", upload)],
            &[("Content-Type", "application/xml")],
            xml.as_bytes(),
            &[],
        )?;
        Ok(())
    }

    /// Abandons a multipart upload (its parts are freed).
    pub fn abort_multipart(&self, bucket: &str, key: &str, upload: &str) -> Result<()> {
        self.send(
            "DELETE",
            &Self::object_path(bucket, key),
            &[("uploadId", upload)],
            &[],
            &[],
            &[404],
        )?;
        Ok(())
    }

    /// Deletes an object.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.send(
            "DELETE",
            &Self::object_path(bucket, key),
            &[],
            &[],
            &[],
            &[404],
        )?;
        Ok(())
    }
}
