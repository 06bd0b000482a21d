//! Vectorize: vector indexes with Cloudflare Vectorize's semantics.
//!
//! [`VectorizeStore`] holds the indexes of a data directory; a [`VectorizeIndex`] has
//! the binding's calls (`insert`, `upsert`, `query`, `query_by_id`, `get_by_ids`,
//! `delete_by_ids`, `describe`) and the REST API's (`list`, metadata indexes).
//!
//! Inside: SIMD distance [`kernels`]; an [`hnsw`] graph over a flat arena whose vectors
//! can live in a mapped segment; metadata postings and [`filter`]s resolved to a bitset
//! before topK is taken; a write-ahead log and immutable checksummed segments
//! (`docs/design.md` describes both files).

mod arena;
pub mod bitset;
mod codes;
pub mod dataset;
pub mod error;
pub mod filter;
pub mod hnsw;
mod index;
pub mod kernels;
pub mod metadata;
pub mod ndjson;
mod pages;
pub(crate) mod segment;
mod store;
pub mod types;
pub(crate) mod wal;

pub use error::{Op, VectorizeError};
pub use hnsw::Metric;
pub use index::VectorizeIndex;
pub use metadata::{MetadataIndex, MetadataIndexType};
pub(crate) use store::PinnedIndex;
pub use store::VectorizeStore;
pub use types::{
    IndexConfig, IndexDescription, QueryOptions, ReturnMetadata, VectorList,
    VectorizeAsyncMutation, VectorizeIndexInfo, VectorizeMatch, VectorizeMatches, VectorizeVector,
};

/// Vectorize's limits (spec 3.8); all configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Dimensions per vector (1,536).
    pub max_dimensions: usize,
    /// Bytes per vector id (64).
    pub max_id_bytes: usize,
    /// Bytes of metadata JSON per vector (10 KiB).
    pub max_metadata_bytes: usize,
    /// Bytes per namespace name (64).
    pub max_namespace_bytes: usize,
    /// Vectors per insert/upsert through the binding (1,000).
    pub max_batch: usize,
    /// Vectors per insert/upsert through the HTTP API, and ids per getByIds/deleteByIds
    /// (5,000).
    pub max_http_batch: usize,
    /// Bytes of filter JSON; a filter must be smaller (2,048).
    pub max_filter_bytes: usize,
    /// topK without values or full metadata (100).
    pub max_top_k: usize,
    /// topK with `returnValues` or `returnMetadata: "all"` (50).
    pub max_top_k_with_values: usize,
    /// Metadata indexes per index (10).
    pub max_metadata_indexes: usize,
    /// Bytes of a string a metadata index keeps (64).
    pub indexed_string_bytes: usize,
    /// Ids per page of `list` (1,000).
    pub max_list_count: usize,
    /// Bytes per index name (64).
    pub max_index_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dimensions: 1536,
            max_id_bytes: 64,
            max_metadata_bytes: 10 * 1024,
            max_namespace_bytes: 64,
            max_batch: 1000,
            max_http_batch: 5000,
            max_filter_bytes: 2048,
            max_top_k: 100,
            max_top_k_with_values: 50,
            max_metadata_indexes: 10,
            indexed_string_bytes: 64,
            max_list_count: 1000,
            max_index_name_bytes: 64,
        }
    }
}

/// Engine settings that are not Vectorize limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorizeOptions {
    /// Candidates explored per graph search (at least topK). Higher is slower and finds
    /// more of the true nearest neighbours.
    pub ef_search: usize,
    /// Queries with at most this many candidates (the whole index, or what the
    /// namespace and filter leave) are answered by a scan instead of the graph: at
    /// ~60 ns per 768-dim distance a few thousand cost less than a graph walk, which
    /// for a selective filter must visit about topK / selectivity nodes. A scan of the
    /// whole index is exact; one of what a namespace or filter leaves is exact too,
    /// unless the walk measures byte codes (see
    /// [`VectorizeOptions::quantized_walk_from`]): then it measures the codes and
    /// ranks the query's ef best on the vectors.
    pub exact_scan_max: usize,
    /// How queries find their matches; [`QueryPlan::Auto`] but to measure or test one
    /// way alone.
    pub plan: QueryPlan,
    /// Write a segment and start a new log once the log passes this many bytes. Smaller
    /// makes opening faster (less log to replay) and writing slower.
    pub checkpoint_bytes: u64,
    /// Bytes of vectors per vector file (rounded down to a power of two rows). A
    /// checkpoint writes each full run of rows to a file of its own once, and rewrites
    /// only runs whose rows changed; the partial last run goes into the segment.
    pub vector_file_bytes: u64,
    /// Cosine indexes holding at least this many vectors walk their graph on one byte
    /// per dimension (a copy of each unit vector, a quarter of its f32 bytes, kept in
    /// memory) and rank what they find on the vectors themselves; `None` walks on the
    /// vectors. Used only where the CPU multiplies bytes in SIMD (AVX-512 VNNI).
    /// Scores do not change; recall at a given `ef_search` moves by a few thousandths
    /// either way (`docs/benchmarks.md`).
    pub quantized_walk_from: Option<usize>,
}

/// How a query finds its matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueryPlan {
    /// A scan when few candidates are left or a filter is selective (see
    /// [`VectorizeOptions::exact_scan_max`]), the graph otherwise, and a scan again
    /// when a filtered walk finds fewer than topK.
    #[default]
    Auto,
    /// Always the graph, filtered or not, with no exact scan behind it: what recall
    /// measurements and the model tests need, since a fallback would hide a walk's
    /// misses.
    Graph,
    /// Always an exact scan of the candidates.
    Exact,
}

/// Entry points for the fuzz targets (`fuzz/`): the file formats' framing, so that
/// fuzzed bytes get past the checksums to the decoders. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::segment::reseal as reseal_segment;
    pub use super::wal::frame as frame_wal;

    /// Opens index `name` under `vectorize_dir` without the rest of a store (whose
    /// setup would dominate a fuzz iteration).
    pub fn open_index(
        vectorize_dir: &std::path::Path,
        name: &str,
    ) -> Result<super::VectorizeIndex, String> {
        let store = super::VectorizeStore::open(
            vectorize_dir,
            super::Limits::default(),
            super::VectorizeOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        store.index(name).map_err(|e| e.to_string())
    }
}
