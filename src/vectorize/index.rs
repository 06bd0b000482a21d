//! One Vectorize index: the binding's calls (`insert`, `upsert`, `query`, `queryById`,
//! `getByIds`, `deleteByIds`, `describe`) plus the REST-only ones (list vector ids,
//! metadata indexes), over the graph, the metadata postings, the WAL and the segments.
//!
//! Every mutation is validated whole, logged and fsynced, then applied, all under the
//! index's write lock; queries take the read lock. Mutations therefore apply
//! synchronously: `describe` reports each one as processed as soon as it returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::bitset::Bitset;
use super::error::{code, storage, Op, Result, VectorizeError};
use super::filter::Filter;
use super::hnsw::{Hnsw, HnswParams, Metric, DEFAULT_EF_SEARCH};
use super::metadata::{self, IndexedValues, MetadataIndex, MetadataIndexType, Postings};
use super::types::{
    IndexConfig, QueryOptions, ReturnMetadata, VectorId, VectorList, VectorizeAsyncMutation,
    VectorizeIndexInfo, VectorizeMatch, VectorizeMatches, VectorizeVector,
};
use super::wal::{Change, LoggedVector, Mutation, Wal, WalError};
use super::{segment, Limits, QueryPlan, VectorizeOptions};

/// What the index keeps per live vector besides its row in the graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: Box<str>,
    namespace: Option<Box<str>>,
    /// The metadata's JSON text (parsed only when returned).
    metadata: Option<Box<str>>,
    /// What the metadata indexes took from it when it was written.
    indexed: IndexedValues,
}

/// The part of a segment that is the index's (the graph is the segment's own).
#[derive(Serialize, Deserialize)]
struct SegmentMeta {
    records: Vec<Option<Record>>,
    metadata_indexes: Vec<MetadataIndex>,
    last_mutation: Option<([u8; 16], i64)>,
}

struct State {
    graph: Hnsw,
    /// By slot; `None` for deleted slots.
    records: Vec<Option<Record>>,
    ids: BTreeMap<String, u32>,
    namespaces: HashMap<String, Vec<u32>>,
    postings: Postings,
    last_mutation: Option<([u8; 16], i64)>,
    wal: Wal,
    generation: u64,
    /// The vector files the newest segment names.
    segment_files: Vec<String>,
}

struct Inner {
    name: String,
    dir: PathBuf,
    config: IndexConfig,
    limits: Limits,
    options: VectorizeOptions,
    state: RwLock<State>,
}

/// A handle on one index; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct VectorizeIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VectorizeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorizeIndex")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish()
    }
}

fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:016x}.log"))
}

fn segment_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("segment-{generation:016x}.seg"))
}

/// The generation in a `wal-…` or `segment-…` file name.
fn generation_of(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    u64::from_str_radix(name.strip_prefix(prefix)?.strip_suffix(suffix)?, 16).ok()
}

fn is_vector_file(name: &str) -> bool {
    name.starts_with("vectors-") && name.ends_with(".vec")
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl VectorizeIndex {
    /// Creates the files of a new, empty index in `dir` (which must exist and be empty).
    pub(crate) fn create_files(dir: &Path) -> std::io::Result<()> {
        Wal::create(&wal_path(dir, 0)).map(drop)
    }

    /// Opens the index stored in `dir`: maps its newest segment, replays its log, and
    /// removes files older generations left behind.
    pub(crate) fn open(
        name: &str,
        dir: &Path,
        config: IndexConfig,
        limits: Limits,
        options: VectorizeOptions,
    ) -> Result<Self> {
        let op = Op::IndexGet;
        let mut segments = Vec::new();
        let mut wals = Vec::new();
        let mut vector_files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| storage(op, dir, e))? {
            let entry = entry.map_err(|e| storage(op, dir, e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(g) = generation_of(&file, "segment-", ".seg") {
                segments.push(g);
            } else if let Some(g) = generation_of(&file, "wal-", ".log") {
                wals.push(g);
            } else if is_vector_file(&file) {
                vector_files.push(file);
            } else if file.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let generation = segments.iter().copied().max().unwrap_or(0);
        let (graph, meta) = if segments.is_empty() {
            let mut graph = Hnsw::new(config.dimensions, config.metric, HnswParams::default());
            graph.set_run_bytes(options.vector_file_bytes);
            (graph, None)
        } else {
            let path = segment_path(dir, generation);
            let (graph, meta) = segment::read(&path, options.vector_file_bytes)
                .map_err(|e| storage(op, &path, e))?;
            if graph.dims() != config.dimensions || graph.metric() != config.metric {
                let why = "the segment's dimensions or metric differ from index.json";
                return Err(storage(op, &path, why));
            }
            let meta: SegmentMeta = postcard::from_bytes(&meta)
                .map_err(|e| storage(op, &path, format!("section meta: {e}")))?;
            (graph, Some((path, meta)))
        };
        let wal_file = wal_path(dir, generation);
        let (wal, mutations) = if wals.contains(&generation) {
            Wal::open(&wal_file).map_err(|e: WalError| storage(op, &wal_file, e))?
        } else {
            // A crash between writing a segment and starting its log.
            let wal = Wal::create(&wal_file).map_err(|e| storage(op, &wal_file, e))?;
            crate::fsutil::sync_dir(dir).map_err(|e| storage(op, dir, e))?;
            (wal, Vec::new())
        };
        let segment_files = graph.vector_file_names();
        let mut state = State {
            graph,
            segment_files,
            records: Vec::new(),
            ids: BTreeMap::new(),
            namespaces: HashMap::new(),
            postings: Postings::default(),
            last_mutation: None,
            wal,
            generation,
        };
        if let Some((path, meta)) = meta {
            state
                .load(meta)
                .map_err(|e| storage(op, &path, format!("section meta: {e}")))?;
        }
        let inner = Inner {
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            limits,
            options,
            state: RwLock::new(state),
        };
        {
            let mut state = inner.write();
            for (n, m) in mutations.iter().enumerate() {
                // The checksum says the record is what was written; this says it is
                // something tristore could have written.
                state.check_logged(&inner, m).map_err(|e| {
                    storage(op, &wal_file, format!("record {}: {}", n + 1, e.message))
                })?;
                state.apply(&inner, m);
            }
            // After the log, whose rows the first query's fit then encodes at once.
            let walk = inner.options.quantized_walk();
            state.graph.set_quantized_walk(walk);
        }
        // Older generations are superseded by the segment just opened, and so are the
        // vector files it does not name (older ones, or a checkpoint's that crashed
        // before its segment was in place).
        for g in segments.iter().chain(&wals).filter(|&&g| g < generation) {
            let _ = std::fs::remove_file(segment_path(dir, *g));
            let _ = std::fs::remove_file(wal_path(dir, *g));
        }
        let named = inner.read().segment_files.clone();
        for file in vector_files.iter().filter(|f| !named.contains(f)) {
            let _ = std::fs::remove_file(dir.join(file));
        }
        Ok(VectorizeIndex {
            inner: Arc::new(inner),
        })
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Dimensions and metric.
    pub fn config(&self) -> IndexConfig {
        self.inner.config
    }

    /// `describe()`: vector count, dimensions, and the last mutation processed.
    pub fn describe(&self) -> VectorizeIndexInfo {
        let state = self.inner.read();
        VectorizeIndexInfo {
            vector_count: state.ids.len(),
            dimensions: self.inner.config.dimensions,
            processed_up_to_datetime: state.last_mutation.map(|(_, at)| iso8601(at)),
            processed_up_to_mutation: state
                .last_mutation
                .map(|(id, _)| uuid::Uuid::from_bytes(id).to_string()),
        }
    }

    /// `insert()`: adds vectors; an id that exists keeps its vector (first write wins,
    /// also within the batch). At most 1,000 vectors, as through the binding.
    pub fn insert(&self, vectors: &[VectorizeVector]) -> Result<VectorizeAsyncMutation> {
        self.write_vectors(Op::Insert, vectors, self.inner.limits.max_batch)
    }

    /// `upsert()`: adds vectors, replacing existing ids whole (values, metadata and
    /// namespace; last write wins, also within the batch). At most 1,000 vectors.
    pub fn upsert(&self, vectors: &[VectorizeVector]) -> Result<VectorizeAsyncMutation> {
        self.write_vectors(Op::Upsert, vectors, self.inner.limits.max_batch)
    }

    /// `insert` or `upsert` (by `op`) with a caller-chosen batch cap: the REST API allows
    /// 5,000 ([`Limits::max_http_batch`]).
    pub fn write_vectors(
        &self,
        op: Op,
        vectors: &[VectorizeVector],
        max_batch: usize,
    ) -> Result<VectorizeAsyncMutation> {
        if op != Op::Insert && op != Op::Upsert {
            return Err(VectorizeError::new(
                op,
                code::PARSE,
                "write_vectors takes Op::Insert or Op::Upsert",
            ));
        }
        if vectors.is_empty() {
            return Err(VectorizeError::new(
                op,
                code::PARSE,
                "no vectors to write; pass at least one",
            ));
        }
        if vectors.len() > max_batch {
            return Err(VectorizeError::new(
                op,
                code::BATCH_TOO_LARGE,
                format!(
                    "too many vectors: {} in one batch, the limit is {max_batch}",
                    vectors.len()
                ),
            ));
        }
        let logged = vectors
            .iter()
            .map(|v| check_vector(&self.inner, op, v))
            .collect::<Result<Vec<_>>>()?;
        let change = if op == Op::Insert {
            Change::Insert(logged)
        } else {
            Change::Upsert(logged)
        };
        self.mutate(op, change)
    }

    /// `deleteByIds()`: removes the vectors; unknown ids are ignored.
    pub fn delete_by_ids<S: AsRef<str>>(&self, ids: &[S]) -> Result<VectorizeAsyncMutation> {
        let op = Op::Delete;
        self.check_ids(op, ids)?;
        self.mutate(
            op,
            Change::Delete(ids.iter().map(|i| i.as_ref().to_owned()).collect()),
        )
    }

    fn check_ids<S: AsRef<str>>(&self, op: Op, ids: &[S]) -> Result<()> {
        let max = self.inner.limits.max_http_batch;
        if ids.len() > max {
            return Err(VectorizeError::new(
                op,
                code::BATCH_TOO_LARGE,
                format!("too many ids: {}, the limit is {max}", ids.len()),
            ));
        }
        Ok(())
    }

    /// Logs, fsyncs and applies one mutation; checkpoints when the log has grown.
    fn mutate(&self, op: Op, change: Change) -> Result<VectorizeAsyncMutation> {
        let uuid = uuid::Uuid::new_v4();
        let mutation = Mutation {
            id: *uuid.as_bytes(),
            at_ms: now_ms(),
            change,
        };
        let mut state = self.inner.write();
        state
            .wal
            .append(&mutation)
            .map_err(|e| storage(op, state.wal.path(), e))?;
        state.apply(&self.inner, &mutation);
        if state.wal.len() > self.inner.options.checkpoint_bytes {
            self.inner
                .checkpoint(&mut state)
                .map_err(|e| e.during(op))?;
        }
        Ok(VectorizeAsyncMutation {
            mutation_id: uuid.to_string(),
        })
    }

    /// `getByIds()`: the stored vectors with values and full metadata, in the order asked
    /// (each id once); missing ids are left out.
    pub fn get_by_ids<S: AsRef<str>>(&self, ids: &[S]) -> Result<Vec<VectorizeVector>> {
        self.check_ids(Op::Get, ids)?;
        let state = self.inner.read();
        let mut seen: HashSet<&str> = HashSet::new();
        Ok(ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|&id| seen.insert(id))
            .filter_map(|id| state.ids.get(id))
            .map(|&slot| state.vector_at(slot))
            .collect())
    }

    /// `query()`: the `topK` best matches to `vector` among the vectors that pass the
    /// namespace and filter (filtering happens before topK is taken).
    pub fn query(&self, vector: &[f32], options: &QueryOptions) -> Result<VectorizeMatches> {
        self.query_with_ef(vector, options, self.inner.options.ef_search)
    }

    /// [`query`](Self::query) exploring `ef` graph candidates instead of the configured
    /// [`VectorizeOptions::ef_search`]: the speed / recall knob Vectorize does not
    /// expose, for benchmarks and tuning.
    pub fn query_with_ef(
        &self,
        vector: &[f32],
        options: &QueryOptions,
        ef: usize,
    ) -> Result<VectorizeMatches> {
        let dims = self.inner.config.dimensions;
        if vector.len() != dims {
            return Err(VectorizeError::new(
                Op::Query,
                code::QUERY_DIMENSIONS,
                format!(
                    "invalid query vector, expected {dims} dimensions, and got {} dimensions",
                    vector.len()
                ),
            ));
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(VectorizeError::new(
                Op::Query,
                code::QUERY_DIMENSIONS,
                "invalid query vector: values must be finite",
            ));
        }
        self.check_query_options(options)?;
        let filter = options
            .filter
            .as_ref()
            .map(|f| Filter::parse(f, &self.inner.limits))
            .transpose()?;
        let state = self.inner.read();
        Ok(state.query(&self.inner, vector, options, filter.as_ref(), ef))
    }

    /// `queryById()`: like [`query`](Self::query) with a stored vector's values. An
    /// unknown id is an error (Vectorize does not document this case).
    pub fn query_by_id(&self, id: &str, options: &QueryOptions) -> Result<VectorizeMatches> {
        let values = {
            let state = self.inner.read();
            let Some(&slot) = state.ids.get(id) else {
                return Err(VectorizeError::new(
                    Op::Query,
                    code::VECTOR_NOT_FOUND,
                    format!(
                        "vector id {id:?} does not exist in index {:?}",
                        self.inner.name
                    ),
                ));
            };
            state.graph.vector(slot).to_vec()
        };
        self.query(&values, options)
    }

    fn check_query_options(&self, o: &QueryOptions) -> Result<()> {
        let limits = &self.inner.limits;
        let heavy = o.return_values || o.return_metadata == ReturnMetadata::All;
        let cap = if heavy {
            limits.max_top_k_with_values
        } else {
            limits.max_top_k
        };
        if o.top_k == 0 || o.top_k > cap {
            let message = if heavy {
                format!(
                    "with returnValues=true or returnMetadata=all, max top K is {cap}, but got {}; lower topK, or query without values and with returnMetadata \"none\" or \"indexed\" to get up to {}",
                    o.top_k, limits.max_top_k
                )
            } else {
                format!("topK must be between 1 and {cap}, but got {}", o.top_k)
            };
            return Err(VectorizeError::new(Op::Query, code::TOP_K, message));
        }
        if let Some(ns) = &o.namespace {
            check_namespace(Op::Query, ns, limits)?;
        }
        Ok(())
    }

    /// Lists vector ids in id order, `count` (1..=1,000, default 100) per page.
    /// tristore's cursor is the last id returned, so a later page reflects writes made
    /// since the first (Vectorize iterates a snapshot; see `docs/compatibility.md`).
    pub fn list(&self, count: Option<usize>, cursor: Option<&str>) -> Result<VectorList> {
        let count = count.unwrap_or(100);
        let max = self.inner.limits.max_list_count;
        if count == 0 || count > max {
            return Err(VectorizeError::new(
                Op::List,
                code::PARSE,
                format!("count must be between 1 and {max}, but got {count}"),
            ));
        }
        let after = match cursor {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                VectorizeError::new(
                    Op::List,
                    code::INVALID_CURSOR,
                    format!("invalid cursor {c:?}: pass a nextCursor this index returned"),
                )
            })?),
        };
        let state = self.inner.read();
        let range = match &after {
            Some(a) => state.ids.range::<str, _>((
                std::ops::Bound::Excluded(a.as_str()),
                std::ops::Bound::Unbounded,
            )),
            None => state.ids.range::<str, _>(..),
        };
        let mut vectors: Vec<VectorId> = range
            .take(count + 1)
            .map(|(id, _)| VectorId { id: id.clone() })
            .collect();
        let is_truncated = vectors.len() > count;
        vectors.truncate(count);
        Ok(VectorList {
            count: vectors.len(),
            total_count: state.ids.len(),
            is_truncated,
            next_cursor: is_truncated.then(|| encode_cursor(&vectors[count - 1].id)),
            cursor_expiration_timestamp: None,
            vectors,
        })
    }

    /// Creates a metadata index on `property` (dots address nested properties). It
    /// covers vectors written from now on, as in Vectorize.
    pub fn create_metadata_index(
        &self,
        property: &str,
        index_type: MetadataIndexType,
    ) -> Result<VectorizeAsyncMutation> {
        let op = Op::MetadataIndex;
        self.inner
            .read()
            .check_new_metadata_index(&self.inner, property)?;
        self.mutate(
            op,
            Change::CreateMetadataIndex(MetadataIndex {
                property_name: property.to_owned(),
                index_type,
            }),
        )
    }

    /// The metadata indexes, in creation order.
    pub fn list_metadata_indexes(&self) -> Vec<MetadataIndex> {
        self.inner.read().postings.indexes().cloned().collect()
    }

    /// Deletes the metadata index on `property`.
    pub fn delete_metadata_index(&self, property: &str) -> Result<VectorizeAsyncMutation> {
        let op = Op::MetadataIndex;
        if !self
            .inner
            .read()
            .postings
            .indexes()
            .any(|i| i.property_name == property)
        {
            return Err(VectorizeError::new(
                op,
                code::METADATA_INDEX,
                format!("there is no metadata index on {property:?}"),
            ));
        }
        self.mutate(op, Change::DeleteMetadataIndex(property.to_owned()))
    }

    /// Writes a segment now and starts a new log (done automatically when the log
    /// passes [`VectorizeOptions::checkpoint_bytes`]); it also compacts the graph when
    /// most slots are deleted.
    pub fn checkpoint(&self) -> Result<()> {
        let mut state = self.inner.write();
        self.inner.checkpoint(&mut state)
    }

    /// Memory the index occupies, in bytes: vectors (mapped ones included), graph, ids
    /// and metadata (estimated from their lengths).
    pub fn memory_bytes(&self) -> usize {
        let state = self.inner.read();
        let records: usize = state
            .records
            .iter()
            .flatten()
            // The record's boxes, the id again in the id map with a B-tree entry's
            // share of a node, and the postings entry per indexed value.
            .map(|r| {
                48 + 2 * r.id.len()
                    + 40
                    + r.metadata.as_ref().map_or(0, |m| m.len())
                    + r.indexed.capacity() * 56
                    + r.indexed.len() * 4
            })
            .sum();
        state.graph.memory_bytes()
            + records
            + state.records.capacity() * std::mem::size_of::<Option<Record>>()
    }
}

/// Checks a vector against the index's dimensions and Vectorize's limits, and returns
/// it in its logged form.
fn check_vector(inner: &Inner, op: Op, v: &VectorizeVector) -> Result<LoggedVector> {
    let limits = &inner.limits;
    if v.id.is_empty() || v.id.len() > limits.max_id_bytes {
        return Err(VectorizeError::new(
            op,
            code::INVALID_ID,
            format!(
                "invalid vector id {:?}: ids must be 1 to {} bytes",
                v.id, limits.max_id_bytes
            ),
        ));
    }
    let dims = inner.config.dimensions;
    if v.values.len() != dims {
        return Err(VectorizeError::new(
            op,
            code::INVALID_VECTOR,
            format!(
                "invalid vector for id=\"{}\", expected {dims} dimensions, and got {} dimensions",
                v.id,
                v.values.len()
            ),
        ));
    }
    if let Some(bad) = v.values.iter().position(|x| !x.is_finite()) {
        return Err(VectorizeError::new(
            op,
            code::INVALID_VECTOR,
            format!(
                "invalid vector for id=\"{}\": value {bad} is not a finite float32",
                v.id
            ),
        ));
    }
    if let Some(ns) = &v.namespace {
        check_namespace(op, ns, limits)?;
    }
    if let Some(m) = &v.metadata {
        metadata::validate(op, &v.id, m, limits)?;
    }
    Ok(LoggedVector {
        id: v.id.clone(),
        values: v.values.clone(),
        namespace: v.namespace.clone(),
        metadata: v
            .metadata
            .as_ref()
            .map(|m| Value::Object(m.clone()).to_string()),
    })
}

fn check_namespace(op: Op, ns: &str, limits: &Limits) -> Result<()> {
    if ns.is_empty() || ns.len() > limits.max_namespace_bytes {
        return Err(VectorizeError::new(
            op,
            code::INVALID_NAMESPACE,
            format!(
                "invalid namespace {ns:?}: namespaces must be 1 to {} bytes",
                limits.max_namespace_bytes
            ),
        ));
    }
    Ok(())
}

fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Segment generation g+1 holds everything; then log g+1 starts empty and the files
    /// of generation g go. A crash at any point leaves either generation g (segment and
    /// whole log) or g+1 complete.
    fn checkpoint(&self, state: &mut State) -> Result<()> {
        let op = Op::Upsert;
        if state.graph.slots() > 1024 && state.graph.slots() - state.graph.len() > state.graph.len()
        {
            state.vacuum(self);
        }
        let next = state.generation + 1;
        let path = segment_path(&self.dir, next);
        let tmp = path.with_extension("tmp");
        let written = (state.graph.vectors_mut())
            .write_runs(&self.dir, next)
            .map_err(|e| storage(op, &self.dir, e))?;
        if written > 0 {
            // The new vector files' names are durable before a segment names them.
            crate::fsutil::sync_dir(&self.dir).map_err(|e| storage(op, &self.dir, e))?;
        }
        let meta = postcard::to_allocvec(&SegmentMeta {
            records: state.records.clone(),
            metadata_indexes: state.postings.indexes().cloned().collect(),
            last_mutation: state.last_mutation,
        })
        .map_err(|e| storage(op, &path, e))?;
        segment::write(&tmp, &state.graph, &meta).map_err(|e| storage(op, &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| storage(op, &path, e))?;
        crate::fsutil::sync_dir(&self.dir).map_err(|e| storage(op, &self.dir, e))?;
        let wal_file = wal_path(&self.dir, next);
        let wal = Wal::create(&wal_file).map_err(|e| storage(op, &wal_file, e))?;
        crate::fsutil::sync_dir(&self.dir).map_err(|e| storage(op, &self.dir, e))?;
        let old = state.generation;
        state.wal = wal;
        state.generation = next;
        let _ = std::fs::remove_file(segment_path(&self.dir, old));
        let _ = std::fs::remove_file(wal_path(&self.dir, old));
        let named = state.graph.vector_file_names();
        for file in std::mem::replace(&mut state.segment_files, named.clone()) {
            if !named.contains(&file) {
                let _ = std::fs::remove_file(self.dir.join(file));
            }
        }
        Ok(())
    }
}

impl State {
    /// Fills the maps from a segment's meta (the graph is already in place).
    fn load(&mut self, meta: SegmentMeta) -> Result<(), String> {
        if meta.records.len() != self.graph.slots() {
            return Err(format!(
                "{} records for {} slots",
                meta.records.len(),
                self.graph.slots()
            ));
        }
        for index in meta.metadata_indexes {
            if self
                .postings
                .indexes()
                .any(|i| i.property_name == index.property_name)
            {
                return Err(format!(
                    "metadata index {:?} listed twice",
                    index.property_name
                ));
            }
            self.postings.create(index);
        }
        self.last_mutation = meta.last_mutation;
        self.records = meta.records;
        for (slot, record) in self.records.iter().enumerate() {
            let slot = slot as u32;
            if record.is_some() == self.graph.is_deleted(slot) {
                return Err(format!(
                    "slot {slot}: the graph and the records disagree on whether it is live"
                ));
            }
            if let Some(r) = record {
                if self.ids.insert(r.id.to_string(), slot).is_some() {
                    return Err(format!("id {:?} appears twice", r.id));
                }
                if let Some(ns) = &r.namespace {
                    self.namespaces
                        .entry(ns.to_string())
                        .or_default()
                        .push(slot);
                }
                self.postings.add(slot, &r.indexed);
            }
        }
        Ok(())
    }

    /// Whether a metadata index on `property` may be created now.
    fn check_new_metadata_index(&self, inner: &Inner, property: &str) -> Result<()> {
        let err = |m: String| VectorizeError::new(Op::MetadataIndex, code::METADATA_INDEX, m);
        if property.is_empty()
            || property.len() > 512
            || property.contains('"')
            || property.starts_with('$')
        {
            return Err(err(format!(
                "invalid property name {property:?}: it must be 1 to 512 characters, without '\"', not starting with '$'"
            )));
        }
        if self.postings.indexes().any(|i| i.property_name == property) {
            return Err(err(format!(
                "a metadata index on {property:?} already exists; delete it first to change its type"
            )));
        }
        let max = inner.limits.max_metadata_indexes;
        if self.postings.indexes().count() >= max {
            return Err(err(format!(
                "this index already has {max} metadata indexes, the limit; delete one first"
            )));
        }
        Ok(())
    }

    /// Checks a logged mutation the way the live call checked it before logging it.
    fn check_logged(&self, inner: &Inner, m: &Mutation) -> Result<()> {
        match &m.change {
            Change::Insert(vectors) | Change::Upsert(vectors) => vectors.iter().try_for_each(|v| {
                let metadata = match v.metadata.as_deref().map(serde_json::from_str) {
                    None => None,
                    Some(Ok(m)) => Some(m),
                    Some(Err(e)) => {
                        let why = format!("metadata of {:?} is not a JSON object: {e}", v.id);
                        return Err(VectorizeError::new(Op::Upsert, code::INVALID_METADATA, why));
                    }
                };
                let vector = VectorizeVector {
                    id: v.id.clone(),
                    values: v.values.clone(),
                    namespace: v.namespace.clone(),
                    metadata,
                };
                check_vector(inner, Op::Upsert, &vector).map(drop)
            }),
            Change::Delete(_) => Ok(()),
            Change::CreateMetadataIndex(index) => {
                self.check_new_metadata_index(inner, &index.property_name)
            }
            Change::DeleteMetadataIndex(property) => {
                if self
                    .postings
                    .indexes()
                    .any(|i| &i.property_name == property)
                {
                    Ok(())
                } else {
                    let why = format!("no metadata index on {property:?} to delete");
                    Err(VectorizeError::new(
                        Op::MetadataIndex,
                        code::METADATA_INDEX,
                        why,
                    ))
                }
            }
        }
    }

    /// Applies a logged (so already validated) mutation.
    fn apply(&mut self, inner: &Inner, m: &Mutation) {
        match &m.change {
            Change::Insert(vectors) => {
                let mut seen = HashSet::new();
                let fresh: Vec<&LoggedVector> = vectors
                    .iter()
                    .filter(|v| !self.ids.contains_key(&v.id) && seen.insert(v.id.as_str()))
                    .collect();
                self.add(inner, &fresh);
            }
            Change::Upsert(vectors) => {
                // The last occurrence of an id wins.
                let mut last: HashMap<&str, usize> = HashMap::new();
                for (i, v) in vectors.iter().enumerate() {
                    last.insert(&v.id, i);
                }
                let winners: Vec<&LoggedVector> = vectors
                    .iter()
                    .enumerate()
                    .filter(|(i, v)| last[v.id.as_str()] == *i)
                    .map(|(_, v)| v)
                    .collect();
                for v in &winners {
                    self.remove(&v.id);
                }
                self.add(inner, &winners);
            }
            Change::Delete(ids) => ids.iter().for_each(|id| self.remove(id)),
            Change::CreateMetadataIndex(index) => self.postings.create(index.clone()),
            Change::DeleteMetadataIndex(property) => {
                self.postings.delete(property);
                for r in self.records.iter_mut().flatten() {
                    r.indexed.retain(|(p, _)| p != property);
                }
            }
        }
        self.last_mutation = Some((m.id, m.at_ms));
    }

    fn add(&mut self, inner: &Inner, vectors: &[&LoggedVector]) {
        let rows: Vec<&[f32]> = vectors.iter().map(|v| v.values.as_slice()).collect();
        let slots = self.graph.insert_batch(&rows);
        let max_string = inner.limits.indexed_string_bytes;
        for (v, slot) in vectors.iter().zip(slots) {
            let parsed: Option<Map<String, Value>> = v
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok());
            let indexed = self.postings.extract(parsed.as_ref(), max_string);
            self.postings.add(slot, &indexed);
            if let Some(ns) = &v.namespace {
                self.namespaces.entry(ns.clone()).or_default().push(slot);
            }
            self.ids.insert(v.id.clone(), slot);
            let record = Record {
                id: v.id.as_str().into(),
                namespace: v.namespace.as_deref().map(Into::into),
                metadata: v.metadata.as_deref().map(Into::into),
                indexed,
            };
            let s = slot as usize;
            if s >= self.records.len() {
                self.records.resize(s + 1, None);
            }
            self.records[s] = Some(record);
        }
    }

    fn remove(&mut self, id: &str) {
        let Some(slot) = self.ids.remove(id) else {
            return;
        };
        let record = self.records[slot as usize]
            .take()
            .expect("a live id has a record");
        self.postings.remove(slot, &record.indexed);
        if let Some(ns) = &record.namespace {
            if let Some(list) = self.namespaces.get_mut(&**ns) {
                list.retain(|&s| s != slot);
                if list.is_empty() {
                    self.namespaces.remove(&**ns);
                }
            }
        }
        self.graph.delete(slot);
    }

    /// Rebuilds the graph from the live vectors only.
    fn vacuum(&mut self, inner: &Inner) {
        let live: Vec<u32> = self.ids.values().copied().collect();
        let mut graph = Hnsw::new(
            inner.config.dimensions,
            inner.config.metric,
            HnswParams::default(),
        );
        graph.set_run_bytes(inner.options.vector_file_bytes);
        graph.set_quantized_walk(inner.options.quantized_walk());
        let rows: Vec<&[f32]> = live.iter().map(|&s| self.graph.vector(s)).collect();
        let new_slots = graph.insert_batch(&rows);
        let mut records = vec![None; new_slots.len()];
        for (&old, &new) in live.iter().zip(&new_slots) {
            records[new as usize] = self.records[old as usize].take();
        }
        self.graph = graph;
        self.records = records;
        self.ids.clear();
        self.namespaces.clear();
        let indexes: Vec<MetadataIndex> = self.postings.indexes().cloned().collect();
        self.postings = Postings::default();
        let meta = SegmentMeta {
            records: std::mem::take(&mut self.records),
            metadata_indexes: indexes,
            last_mutation: self.last_mutation,
        };
        self.load(meta)
            .expect("a vacuum keeps records and slots in step");
    }

    fn vector_at(&self, slot: u32) -> VectorizeVector {
        let r = self.records[slot as usize]
            .as_ref()
            .expect("a live slot has a record");
        VectorizeVector {
            id: r.id.to_string(),
            values: self.graph.vector(slot).to_vec(),
            namespace: r.namespace.as_deref().map(String::from),
            metadata: r
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
        }
    }

    /// The candidate set a query may return from: the namespace's vectors and/or the
    /// filter's matches; `None` when every live vector may be returned.
    fn allowed(
        &self,
        inner: &Inner,
        options: &QueryOptions,
        filter: Option<&Filter>,
    ) -> Option<Bitset> {
        if options.namespace.is_none() && filter.is_none() {
            return None;
        }
        let set = match &options.namespace {
            Some(ns) => {
                let mut set = Bitset::new(self.graph.slots());
                self.namespaces
                    .get(ns)
                    .into_iter()
                    .flatten()
                    .for_each(|&s| set.insert(s));
                set
            }
            None => self.graph.live(),
        };
        Some(match filter {
            Some(f) => f.matching(&self.postings, &set, inner.limits.indexed_string_bytes),
            None => set,
        })
    }

    fn query(
        &self,
        inner: &Inner,
        vector: &[f32],
        options: &QueryOptions,
        filter: Option<&Filter>,
        ef: usize,
    ) -> VectorizeMatches {
        let k = options.top_k;
        let ef = ef.max(k);
        let exact_max = inner.options.exact_scan_max.max(k);
        let allowed = self.allowed(inner, options, filter);
        let found = match (inner.options.plan, allowed) {
            (QueryPlan::Exact, None) => self.graph.brute_force(vector, k),
            (QueryPlan::Exact, Some(allowed)) => self.graph.exact(vector, k, allowed.iter()),
            (QueryPlan::Graph, allowed) => {
                self.graph.search_filtered(vector, k, ef, allowed.as_ref())
            }
            (QueryPlan::Auto, None) if self.ids.len() <= exact_max => {
                self.graph.brute_force(vector, k)
            }
            (QueryPlan::Auto, None) => self.graph.search(vector, k, ef),
            (QueryPlan::Auto, Some(allowed)) => {
                // A scan measures each candidate once (see `scan_cost`). A walk that hops over
                // rejected neighbours measures up to 2 x `degree` accepted ones per step,
                // plus the reading of the lists it hops through (about half as much
                // again); one that does not visits about ef / selectivity nodes. Scan
                // when that is cheaper.
                let candidates = allowed.count();
                let degree = self.graph.degree();
                let step = degree.saturating_mul(ef);
                let walk_cost = if self.graph.hops_for(candidates) {
                    // Two hops from a node reach about degree² others. When fewer than one
                    // list's worth of those match, the walk loses its way: a 1% filter
                    // on 1M x 768 (10 matches in reach) found 0.81 of the top 10 at ef
                    // 64, slower than a scan of its 10,000 rows (docs/benchmarks.md).
                    let reach = candidates.saturating_mul(degree * degree) / self.graph.slots();
                    if reach < degree {
                        usize::MAX
                    } else {
                        3 * step
                    }
                } else {
                    step.saturating_mul(self.graph.slots()) / candidates.max(1)
                };
                let scan_cost = self.graph.scan_cost(candidates, ef);
                if candidates <= exact_max || scan_cost <= walk_cost {
                    self.graph.scan(vector, k, ef, allowed.iter())
                } else {
                    let walked = self.graph.search_filtered(vector, k, ef, Some(&allowed));
                    if walked.len() < k {
                        self.graph.scan(vector, k, ef, allowed.iter())
                    } else {
                        walked
                    }
                }
            }
        };
        let matches: Vec<VectorizeMatch> = found
            .into_iter()
            .map(|(slot, distance)| {
                let r = self.records[slot as usize]
                    .as_ref()
                    .expect("search returns live slots");
                VectorizeMatch {
                    id: r.id.to_string(),
                    score: score(inner.config.metric, distance),
                    values: options
                        .return_values
                        .then(|| self.graph.vector(slot).to_vec()),
                    metadata: match options.return_metadata {
                        ReturnMetadata::None => None,
                        ReturnMetadata::Indexed => Some(Postings::indexed_view(&r.indexed)),
                        ReturnMetadata::All => Some(
                            r.metadata
                                .as_deref()
                                .and_then(|m| serde_json::from_str(m).ok())
                                .unwrap_or_default(),
                        ),
                    },
                    namespace: r.namespace.as_deref().map(String::from),
                }
            })
            .collect();
        VectorizeMatches {
            count: matches.len(),
            matches,
        }
    }
}

/// Vectorize's score from the graph's distance (spec 3.6): cosine similarity; the
/// Euclidean distance itself (not squared); the negated dot product.
fn score(metric: Metric, distance: f64) -> f64 {
    match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::Euclidean => distance.max(0.0).sqrt(),
        Metric::DotProduct => distance,
    }
}

impl VectorizeOptions {
    /// [`VectorizeOptions::quantized_walk_from`] where this CPU makes it pay.
    fn quantized_walk(&self) -> Option<usize> {
        self.quantized_walk_from
            .filter(|_| super::kernels::codes_fast())
    }
}

impl Default for VectorizeOptions {
    fn default() -> Self {
        VectorizeOptions {
            ef_search: DEFAULT_EF_SEARCH,
            exact_scan_max: 2048,
            plan: QueryPlan::Auto,
            checkpoint_bytes: 32 << 20,
            vector_file_bytes: super::arena::DEFAULT_RUN_BYTES,
            quantized_walk_from: Some(4096),
        }
    }
}

/// One file of an index at the instant its writes were held: an open handle, so that a
/// checkpoint deleting the file afterwards does not take its content away, and the
/// length that belonged to that instant (a log goes on growing).
pub(crate) struct PinnedFile {
    /// The file's name in the index's directory.
    pub name: String,
    pub file: std::fs::File,
    pub len: u64,
}

/// An index whose writes wait until this is dropped (see [`VectorizeIndex::freeze`]).
pub(crate) struct Frozen<'a> {
    state: RwLockWriteGuard<'a, State>,
    dir: &'a Path,
}

impl VectorizeIndex {
    /// Holds every write to the index (reads wait too) until the result is dropped.
    pub(crate) fn freeze(&self) -> Frozen<'_> {
        Frozen {
            state: self.inner.write(),
            dir: &self.inner.dir,
        }
    }
}

impl Frozen<'_> {
    /// The files that hold the index as it is now: its newest segment, if it has one,
    /// the vector files that segment names, and the part of its log written so far.
    /// Opening them replays to this state.
    pub(crate) fn files(&self) -> std::io::Result<Vec<PinnedFile>> {
        let g = self.state.generation;
        let mut files = Vec::new();
        for name in &self.state.segment_files {
            let file = std::fs::File::open(self.dir.join(name))?;
            files.push(PinnedFile {
                name: name.clone(),
                len: file.metadata()?.len(),
                file,
            });
        }
        let segment = segment_path(self.dir, g);
        match std::fs::File::open(&segment) {
            Ok(file) => files.push(PinnedFile {
                name: file_name(&segment),
                len: file.metadata()?.len(),
                file,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let wal = wal_path(self.dir, g);
        files.push(PinnedFile {
            name: file_name(&wal),
            file: std::fs::File::open(&wal)?,
            len: self.state.wal.len(),
        });
        Ok(files)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files of an index no handle has open (so nothing writes to them): every segment
/// and log, whole. Opening such a copy does what opening the original would.
pub(crate) fn files_at_rest(dir: &Path) -> std::io::Result<Vec<PinnedFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = generation_of(&name, "segment-", ".seg")
            .or_else(|| generation_of(&name, "wal-", ".log"))
            .is_some()
            || is_vector_file(&name);
        if ours {
            let file = std::fs::File::open(entry.path())?;
            let len = file.metadata()?.len();
            files.push(PinnedFile { name, file, len });
        }
    }
    Ok(files)
}
