//! The links between the three stores, as Metacogna makes them: a document's row in
//! D1 (`documents.id`, `documents.r2Key`), its original file in R2 (at `r2Key`), and
//! its chunks' vectors in Vectorize (ids `<docId>-chunk-<n>`, metadata `docId` and
//! `chunkIndex`). Each store keeps its own data consistent; nothing keeps these links,
//! since an app writes the three stores one after the other and can stop between two.
//! [`check`] finds every broken link; [`repair`] removes what nothing points to.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::error::Result;
use crate::r2::R2ListOptions;
use crate::Store;

/// Which database, index and bucket hold one app's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// The D1 database with the `documents` table.
    pub database: String,
    /// The Vectorize index of the chunks.
    pub index: String,
    /// The R2 bucket of the original files.
    pub bucket: String,
}

impl Default for Links {
    /// Metacogna's.
    fn default() -> Self {
        Links {
            database: crate::defaults::METACOGNA_DATABASE.into(),
            index: crate::defaults::METACOGNA_INDEX.into(),
            bucket: crate::defaults::METACOGNA_BUCKET.into(),
        }
    }
}

/// A broken link, with the ids involved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// `documents.r2Key` names no object.
    MissingObject { document: String, r2_key: String },
    /// A document has no vectors at all.
    DocumentWithoutVectors { document: String },
    /// A document's chunk numbers have a gap: chunk `chunk_index` has no vector.
    MissingChunk { document: String, chunk_index: u64 },
    /// A vector whose `docId` names no document (or that has no `docId`).
    OrphanVector {
        vector: String,
        doc_id: Option<String>,
    },
    /// An object no document's `r2Key` names.
    OrphanObject { key: String },
}

impl Problem {
    /// Whether [`repair`] removes it (orphans only: what is missing cannot be made).
    pub fn is_orphan(&self) -> bool {
        matches!(
            self,
            Problem::OrphanVector { .. } | Problem::OrphanObject { .. }
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingObject { document, r2_key } => write!(
                f,
                "document {document}: its r2Key {r2_key:?} names no object in the bucket"
            ),
            Problem::DocumentWithoutVectors { document } => {
                write!(f, "document {document}: no vector has docId {document:?}")
            }
            Problem::MissingChunk {
                document,
                chunk_index,
            } => write!(
                f,
                "document {document}: chunk {chunk_index} has no vector (expected id {document}-chunk-{chunk_index})"
            ),
            Problem::OrphanVector {
                vector,
                doc_id: Some(doc),
            } => write!(f, "vector {vector}: its docId {doc:?} names no document"),
            Problem::OrphanVector {
                vector,
                doc_id: None,
            } => write!(f, "vector {vector}: it has no docId"),
            Problem::OrphanObject { key } => {
                write!(f, "object {key:?}: no document's r2Key names it")
            }
        }
    }
}

/// What [`check`] looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Documents read.
    pub documents: usize,
    /// Vectors read.
    pub vectors: usize,
    /// Objects listed.
    pub objects: usize,
    /// Every broken link, sorted.
    pub problems: Vec<Problem>,
}

/// Ids read per call to the index: its largest page.
const PAGE: usize = 1000;

/// Every broken link between the documents of `links.database`, the vectors of
/// `links.index` and the objects of `links.bucket`.
pub fn check(store: &Store, links: &Links) -> Result<Report> {
    let db = store.d1().database(&links.database)?;
    let rows = db.prepare("SELECT id, r2Key FROM documents").raw(false)?;
    let documents: BTreeMap<String, Option<String>> = rows
        .into_iter()
        .map(|row| {
            let text = |v: &Value| v.as_str().map(str::to_owned);
            let id = text(&row[0]).unwrap_or_else(|| row[0].to_string());
            (id, text(&row[1]))
        })
        .collect();

    let bucket = store.r2().bucket(&links.bucket)?;
    let mut objects = BTreeSet::new();
    let mut options = R2ListOptions::default();
    loop {
        let page = bucket.list(&options)?;
        objects.extend(page.objects.into_iter().map(|o| o.key));
        match page.cursor.filter(|_| page.truncated) {
            Some(cursor) => options.cursor = Some(cursor),
            None => break,
        }
    }

    let index = store.vectorize().index(&links.index)?;
    // docId -> chunk indexes present.
    let mut chunks: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut vectors = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = index.list(Some(PAGE), cursor.as_deref())?;
        let ids: Vec<&str> = page.vectors.iter().map(|v| v.id.as_str()).collect();
        for vector in index.get_by_ids(&ids)? {
            vectors += 1;
            let metadata = vector.metadata.unwrap_or_default();
            let doc_id = metadata.get("docId").and_then(Value::as_str);
            match doc_id {
                Some(doc) if documents.contains_key(doc) => {
                    let chunk = metadata.get("chunkIndex").and_then(Value::as_u64);
                    let present = chunks.entry(doc.to_owned()).or_default();
                    present.extend(chunk);
                }
                _ => problems.push(Problem::OrphanVector {
                    vector: vector.id,
                    doc_id: doc_id.map(str::to_owned),
                }),
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    for (document, r2_key) in &documents {
        if let Some(key) = r2_key {
            if !objects.contains(key) {
                problems.push(Problem::MissingObject {
                    document: document.clone(),
                    r2_key: key.clone(),
                });
            }
        }
        match chunks.get(document) {
            None => problems.push(Problem::DocumentWithoutVectors {
                document: document.clone(),
            }),
            Some(present) => {
                let last = present.iter().next_back().copied().unwrap_or(0);
                problems.extend((0..last).filter(|i| !present.contains(i)).map(|i| {
                    Problem::MissingChunk {
                        document: document.clone(),
                        chunk_index: i,
                    }
                }));
            }
        }
    }
    let named: BTreeSet<&str> = documents.values().flatten().map(String::as_str).collect();
    problems.extend(
        objects
            .iter()
            .filter(|key| !named.contains(key.as_str()))
            .map(|key| Problem::OrphanObject { key: key.clone() }),
    );
    problems.sort();
    Ok(Report {
        documents: documents.len(),
        vectors,
        objects: objects.len(),
        problems,
    })
}

/// Removes the orphans among `problems` (vectors and objects nothing points to); the
/// rest needs the app that wrote them. Returns how many vectors and objects went.
pub fn repair(store: &Store, links: &Links, problems: &[Problem]) -> Result<(usize, usize)> {
    let vectors: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::OrphanVector { vector, .. } => Some(vector.as_str()),
            _ => None,
        })
        .collect();
    let objects: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::OrphanObject { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let index = store.vectorize().index(&links.index)?;
    for batch in vectors.chunks(PAGE) {
        index.delete_by_ids(batch)?;
    }
    let bucket = store.r2().bucket(&links.bucket)?;
    for batch in objects.chunks(PAGE) {
        bucket.delete(batch)?;
    }
    Ok((vectors.len(), objects.len()))
}
