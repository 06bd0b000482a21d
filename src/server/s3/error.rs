//! S3 errors, answered as `<Error><Code>…</Code><Message>…</Message>…</Error>`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::xml::Xml;
use crate::r2::presign::SigV4Error;
use crate::r2::R2Error;

/// An S3 error: status, code, message and any extra elements AWS adds (the
/// canonical request of a signature mismatch, the resource, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct S3Error {
    /// HTTP status.
    pub status: u16,
    /// S3 error code, e.g. `NoSuchKey`.
    pub code: &'static str,
    /// What went wrong and, where it helps, what to do.
    pub message: String,
    /// Further `<Name>value</Name>` elements.
    pub extra: Vec<(&'static str, String)>,
}

impl S3Error {
    /// An error with no extra elements.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        S3Error {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    /// Adds a `<name>value</name>` element.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// R2's answer to an S3 feature it does not offer: 501 `<what> not implemented`.
    pub fn not_implemented(what: &str) -> Self {
        S3Error::new(501, "NotImplemented", format!("{what} not implemented"))
    }

    /// 400 `InvalidArgument`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        S3Error::new(400, "InvalidArgument", message)
    }

    /// 400 `InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        S3Error::new(400, "InvalidRequest", message)
    }

    /// 500 `InternalError`.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        S3Error::new(
            500,
            "InternalError",
            format!("We encountered an internal error. {what}"),
        )
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut xml = Xml::bare("Error");
        xml.leaf("Code", self.code);
        xml.leaf("Message", &self.message);
        for (name, value) in &self.extra {
            xml.leaf(name, value);
        }
        xml.finish()
    }
}

impl From<R2Error> for S3Error {
    fn from(e: R2Error) -> Self {
        S3Error::new(e.kind.http_status(), e.kind.s3_name(), e.message)
    }
}

impl From<SigV4Error> for S3Error {
    fn from(e: SigV4Error) -> Self {
        S3Error {
            extra: e.details,
            ..S3Error::new(e.status, e.code, e.message)
        }
    }
}

impl IntoResponse for S3Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, self.to_xml()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        response
    }
}
