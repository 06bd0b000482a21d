//! R2's errors: `<op>: <message> (<code>)`, with the S3 name and HTTP status each code has.

/// An error from an R2 call, displayed as the binding displays it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message} ({})", .kind.code())]
pub struct R2Error {
    /// The binding operation: `head`, `get`, `put`, `delete`, `list`, `uploadPart`, ...
    pub op: &'static str,
    /// Which R2 error this is.
    pub kind: R2ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

/// R2's error codes (spec 5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum R2ErrorKind {
    InternalError,
    InvalidBucketName,
    NoSuchBucket,
    NoSuchKey,
    BucketNotEmpty,
    BucketAlreadyExists,
    EntityTooSmall,
    MetadataTooLarge,
    IncompleteBody,
    InvalidDigest,
    InvalidObjectName,
    InvalidMaxKeys,
    NoSuchUpload,
    InvalidPart,
    InvalidPartOrder,
    InvalidArgument,
    PreconditionFailed,
    BadDigest,
    InvalidRange,
    NonUniformParts,
    EntityTooLarge,
    /// The account's plan does not allow this: tristore answers it past a free-tier
    /// allowance under `--free-tier enforce`.
    NotEntitled,
    /// A request that cannot apply to this object: SSE-C parameters missing for an
    /// encrypted object, or given for one that is not.
    InvalidRequest,
    /// The SSE-C key is not the one the object (or upload) was written with.
    AccessDenied,
}

impl R2ErrorKind {
    /// R2's numeric code.
    pub fn code(self) -> u32 {
        use R2ErrorKind::*;
        match self {
            InternalError => 10001,
            InvalidBucketName => 10005,
            NoSuchBucket => 10006,
            NoSuchKey => 10007,
            BucketNotEmpty => 10008,
            EntityTooSmall => 10011,
            MetadataTooLarge => 10012,
            IncompleteBody => 10013,
            InvalidDigest => 10014,
            InvalidObjectName => 10020,
            InvalidMaxKeys => 10022,
            NoSuchUpload => 10024,
            // R2 publishes no code of its own for this one: InvalidPart's.
            InvalidPart | InvalidPartOrder => 10025,
            // R2 publishes no code for a misapplied SSE-C request: InvalidArgument's.
            InvalidArgument | InvalidRequest => 10029,
            AccessDenied => 10003,
            PreconditionFailed => 10031,
            BadDigest => 10037,
            InvalidRange => 10039,
            NotEntitled => 10042,
            NonUniformParts => 10048,
            BucketAlreadyExists => 10073,
            EntityTooLarge => 100100,
        }
    }

    /// The S3 error code name.
    pub fn s3_name(self) -> &'static str {
        use R2ErrorKind::*;
        match self {
            InternalError => "InternalError",
            InvalidBucketName => "InvalidBucketName",
            NoSuchBucket => "NoSuchBucket",
            NoSuchKey => "NoSuchKey",
            BucketNotEmpty => "BucketNotEmpty",
            BucketAlreadyExists => "BucketAlreadyExists",
            EntityTooSmall => "EntityTooSmall",
            MetadataTooLarge => "MetadataTooLarge",
            IncompleteBody => "IncompleteBody",
            InvalidDigest => "InvalidDigest",
            InvalidObjectName => "InvalidObjectName",
            InvalidMaxKeys => "InvalidMaxKeys",
            NoSuchUpload => "NoSuchUpload",
            InvalidPart | NonUniformParts => "InvalidPart",
            InvalidPartOrder => "InvalidPartOrder",
            InvalidArgument => "InvalidArgument",
            PreconditionFailed => "PreconditionFailed",
            BadDigest => "BadDigest",
            InvalidRange => "InvalidRange",
            EntityTooLarge => "EntityTooLarge",
            NotEntitled => "NotEntitled",
            InvalidRequest => "InvalidRequest",
            AccessDenied => "AccessDenied",
        }
    }

    /// The HTTP status R2 answers with.
    pub fn http_status(self) -> u16 {
        use R2ErrorKind::*;
        match self {
            InternalError => 500,
            NoSuchBucket | NoSuchKey | NoSuchUpload => 404,
            BucketNotEmpty | BucketAlreadyExists => 409,
            NotEntitled | AccessDenied => 403,
            PreconditionFailed => 412,
            InvalidRange => 416,
            _ => 400,
        }
    }
}

impl R2Error {
    pub(crate) fn new(op: &'static str, kind: R2ErrorKind, message: impl Into<String>) -> Self {
        R2Error {
            op,
            kind,
            message: message.into(),
        }
    }

    /// An internal failure (I/O, catalog), with what was being done.
    pub(crate) fn internal(op: &'static str, what: impl std::fmt::Display) -> Self {
        R2Error::new(
            op,
            R2ErrorKind::InternalError,
            format!("We encountered an internal error. {what}"),
        )
    }
}
