//! Vectorize's errors: `<OP>_ERROR (code = <n>): <message>`, the text the Worker binding
//! throws (spec 3.9), with the HTTP status the service answers with.

/// The binding operation an error belongs to; it prefixes the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `describe()` / REST `info`.
    IndexGet,
    /// Index create / delete (REST only).
    Index,
    /// `query()` and `queryById()`.
    Query,
    /// `insert()`.
    Insert,
    /// `upsert()`.
    Upsert,
    /// `getByIds()`.
    Get,
    /// `deleteByIds()`.
    Delete,
    /// Listing vector ids (REST only).
    List,
    /// Metadata index create / list / delete (REST only).
    MetadataIndex,
}

impl Op {
    /// The prefix the binding puts before `_ERROR`.
    pub fn prefix(self) -> &'static str {
        match self {
            Op::IndexGet => "INDEX_GET",
            Op::Index => "INDEX",
            Op::Query => "VECTOR_QUERY",
            Op::Insert => "VECTOR_INSERT",
            Op::Upsert => "VECTOR_UPSERT",
            Op::Get => "VECTOR_GET",
            Op::Delete => "VECTOR_DELETE",
            Op::List => "VECTOR_LIST",
            Op::MetadataIndex => "METADATA_INDEX",
        }
    }
}

/// Vectorize's numeric error codes. The first four were observed on the live service;
/// the others are tristore's choices in the same range (see `docs/compatibility.md`).
pub mod code {
    /// The query vector has the wrong number of dimensions.
    pub const QUERY_DIMENSIONS: u32 = 40006;
    /// A written vector is invalid: wrong dimensions or a non-finite value.
    pub const INVALID_VECTOR: u32 = 40012;
    /// `topK` is over the cap.
    pub const TOP_K: u32 = 40025;
    /// The request could not be parsed (bad JSON, bad option type, bad NDJSON line).
    pub const PARSE: u32 = 40026;
    /// A vector id is empty or longer than 64 bytes.
    pub const INVALID_ID: u32 = 40002;
    /// Metadata is too large or has a forbidden key.
    pub const INVALID_METADATA: u32 = 40003;
    /// A namespace is longer than 64 bytes.
    pub const INVALID_NAMESPACE: u32 = 40004;
    /// A batch has too many vectors or ids.
    pub const BATCH_TOO_LARGE: u32 = 40005;
    /// The filter is malformed or too large.
    pub const INVALID_FILTER: u32 = 40007;
    /// `queryById` named a vector that does not exist.
    pub const VECTOR_NOT_FOUND: u32 = 40008;
    /// A metadata index request is invalid (type, name, limit of 10, duplicate).
    pub const METADATA_INDEX: u32 = 40009;
    /// The index does not exist.
    pub const INDEX_NOT_FOUND: u32 = 3000;
    /// An index of that name exists.
    pub const INDEX_EXISTS: u32 = 3002;
    /// The index configuration or name is invalid.
    pub const INVALID_CONFIG: u32 = 3001;
    /// The list cursor is not one this index handed out.
    pub const INVALID_CURSOR: u32 = 40010;
    /// Storage failed (I/O, corrupt files).
    pub const STORAGE: u32 = 1001;
    /// The free tier's queried-dimensions allowance is used up (`--free-tier enforce`).
    pub const FREE_TIER: u32 = 40011;
}

/// An error from a Vectorize call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}_ERROR (code = {code}): {message}", .op.prefix())]
pub struct VectorizeError {
    /// The operation.
    pub op: Op,
    /// The numeric code (see [`code`]).
    pub code: u32,
    /// The service's message.
    pub message: String,
}

impl VectorizeError {
    /// An error of `op` with `code`.
    pub fn new(op: Op, code: u32, message: impl Into<String>) -> Self {
        VectorizeError {
            op,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status the service answers with.
    pub fn http_status(&self) -> u16 {
        match self.code {
            code::INDEX_NOT_FOUND => 404,
            code::INDEX_EXISTS => 409,
            code::STORAGE => 500,
            _ => 400,
        }
    }

    /// The same error attributed to another operation (a shared check failing inside
    /// `upsert` rather than `insert`, say).
    pub fn during(mut self, op: Op) -> Self {
        self.op = op;
        self
    }
}

/// Shorthand for results of Vectorize calls.
pub type Result<T, E = VectorizeError> = std::result::Result<T, E>;

/// A storage failure, naming the file.
pub(crate) fn storage(op: Op, path: &std::path::Path, e: impl std::fmt::Display) -> VectorizeError {
    VectorizeError::new(op, code::STORAGE, format!("{}: {e}", path.display()))
}
