//! Vectorize indexes: the configuration and metadata indexes first (a metadata index
//! covers only vectors written after it), then the vectors the destination lacks, by
//! id: listed with the v2 `list` endpoint's cursor, read with `get_by_ids`, written as
//! NDJSON upserts of 5,000. An index whose two sides hold the same ids is skipped; an
//! interrupted copy resumes with the ids still missing.

use std::collections::BTreeSet;

use serde_json::json;

use super::api::Api;
use super::{Counts, Direction, Options, Result, TransferError};
use crate::vectorize::{IndexConfig, MetadataIndex, VectorizeIndex, VectorizeVector};
use crate::Store;

/// Vectors per NDJSON upsert: the REST API's limit.
const UPSERT_BATCH: usize = 5000;
/// Ids per `list` page: the API's largest.
const LIST_PAGE: usize = 1000;
/// Ids per `get_by_ids`.
const GET_BATCH: usize = 1000;

/// The names of the remote account's indexes.
pub fn remote_names(api: &Api) -> Result<Vec<String>> {
    let list = api.json("GET", "/vectorize/v2/indexes", None)?;
    Ok(list
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|i| i["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// One side of a copy: the local index or the remote one.
trait Side {
    fn ids(&self) -> Result<BTreeSet<String>>;
    fn metadata_indexes(&self) -> Result<Vec<MetadataIndex>>;
    fn create_metadata_index(&self, m: &MetadataIndex) -> Result<()>;
    fn get(&self, ids: &[&str]) -> Result<Vec<VectorizeVector>>;
    fn upsert(&self, vectors: &[VectorizeVector]) -> Result<()>;
    fn delete(&self, ids: &[&str]) -> Result<()>;
}

impl Side for VectorizeIndex {
    fn ids(&self) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list(Some(LIST_PAGE), cursor.as_deref())?;
            out.extend(page.vectors.into_iter().map(|v| v.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }
    fn metadata_indexes(&self) -> Result<Vec<MetadataIndex>> {
        Ok(self.list_metadata_indexes())
    }
    fn create_metadata_index(&self, m: &MetadataIndex) -> Result<()> {
        VectorizeIndex::create_metadata_index(self, &m.property_name, m.index_type)?;
        Ok(())
    }
    fn get(&self, ids: &[&str]) -> Result<Vec<VectorizeVector>> {
        Ok(self.get_by_ids(ids)?)
    }
    fn upsert(&self, vectors: &[VectorizeVector]) -> Result<()> {
        VectorizeIndex::upsert(self, vectors)?;
        Ok(())
    }
    fn delete(&self, ids: &[&str]) -> Result<()> {
        self.delete_by_ids(ids)?;
        Ok(())
    }
}

struct RemoteIndex<'a> {
    api: &'a Api,
    path: String,
}

impl Side for RemoteIndex<'_> {
    fn ids(&self) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("?count={LIST_PAGE}&cursor={}", percent(c)),
                None => format!("?count={LIST_PAGE}"),
            };
            let page = self
                .api
                .json("GET", &format!("{}/list{query}", self.path), None)?;
            if let Some(vectors) = page["vectors"].as_array() {
                out.extend(
                    vectors
                        .iter()
                        .filter_map(|v| v["id"].as_str().map(str::to_owned)),
                );
            }
            match page["nextCursor"].as_str() {
                Some(next) if page["isTruncated"] != false => cursor = Some(next.to_owned()),
                _ => return Ok(out),
            }
        }
    }
    fn metadata_indexes(&self) -> Result<Vec<MetadataIndex>> {
        let list = self
            .api
            .json("GET", &format!("{}/metadata_index/list", self.path), None)?;
        serde_json::from_value(list["metadataIndexes"].clone()).map_err(|e| {
            TransferError(format!(
                "the remote's metadata index list is not understood: {e}"
            ))
        })
    }
    fn create_metadata_index(&self, m: &MetadataIndex) -> Result<()> {
        let body = serde_json::to_value(m).expect("plain data");
        self.api.json(
            "POST",
            &format!("{}/metadata_index/create", self.path),
            Some(&body),
        )?;
        Ok(())
    }
    fn get(&self, ids: &[&str]) -> Result<Vec<VectorizeVector>> {
        let got = self.api.json(
            "POST",
            &format!("{}/get_by_ids", self.path),
            Some(&json!({ "ids": ids })),
        )?;
        serde_json::from_value(got)
            .map_err(|e| TransferError(format!("the remote's vectors are not understood: {e}")))
    }
    fn upsert(&self, vectors: &[VectorizeVector]) -> Result<()> {
        let mut body = Vec::new();
        for v in vectors {
            serde_json::to_writer(&mut body, v).expect("a vector serialises");
            body.push(b'\n');
        }
        self.api.call(
            "POST",
            &format!("{}/upsert", self.path),
            "application/x-ndjson",
            &body,
        )?;
        Ok(())
    }
    fn delete(&self, ids: &[&str]) -> Result<()> {
        self.api.json(
            "POST",
            &format!("{}/delete_by_ids", self.path),
            Some(&json!({ "ids": ids })),
        )?;
        Ok(())
    }
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Copies index `name` in `direction`.
pub fn copy(
    store: &Store,
    api: &Api,
    direction: Direction,
    name: &str,
    options: &Options,
    counts: &mut Counts,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let path = format!("/vectorize/v2/indexes/{}", percent(name));
    let remote_description = api.find(&path)?;
    let local_description = store.vectorize().get(name).ok();
    let (source_config, source_description): (IndexConfig, String) = match direction {
        Direction::Pull => {
            let d = remote_description.clone().ok_or_else(|| {
                TransferError(format!(
                    "vectorize {name}: the remote account has no such index"
                ))
            })?;
            let config = serde_json::from_value(d["config"].clone()).map_err(|e| {
                TransferError(format!(
                    "vectorize {name}: the remote's config is not understood: {e}"
                ))
            })?;
            (config, d["description"].as_str().unwrap_or("").to_owned())
        }
        Direction::Push => {
            let d = local_description.clone().ok_or_else(|| {
                TransferError(format!("vectorize {name}: there is no such local index"))
            })?;
            (d.config, d.description)
        }
    };
    // The destination's index: made with the source's configuration when missing.
    let destination_config: Option<IndexConfig> = match direction {
        Direction::Pull => local_description.map(|d| d.config),
        Direction::Push => match &remote_description {
            Some(d) => serde_json::from_value(d["config"].clone()).ok(),
            None => None,
        },
    };
    match destination_config {
        Some(c) if c != source_config => {
            return Err(TransferError(format!(
                "vectorize {name}: the destination index has {} dimensions and metric {:?}, the source {} and {:?}; an index's configuration cannot change, so nothing was copied. Delete the destination index, or copy into another name",
                c.dimensions, c.metric, source_config.dimensions, source_config.metric
            )))
        }
        Some(_) => {}
        None => {
            match direction {
                Direction::Pull => {
                    store
                        .vectorize()
                        .create(name, &source_description, source_config)?;
                }
                Direction::Push => {
                    api.json(
                        "POST",
                        "/vectorize/v2/indexes",
                        Some(&json!({
                            "name": name,
                            "description": source_description,
                            "config": {"dimensions": source_config.dimensions, "metric": source_config.metric},
                        })),
                    )?;
                }
            }
            progress(&format!("vectorize {name}: created on the destination"));
        }
    }
    let local = store.vectorize().index(name)?;
    let remote = RemoteIndex { api, path };
    let (source, destination): (&dyn Side, &dyn Side) = match direction {
        Direction::Pull => (&remote, &local),
        Direction::Push => (&local, &remote),
    };
    let have: BTreeSet<String> = destination
        .metadata_indexes()?
        .into_iter()
        .map(|m| m.property_name)
        .collect();
    for m in source.metadata_indexes()? {
        if !have.contains(&m.property_name) {
            destination.create_metadata_index(&m)?;
            progress(&format!(
                "vectorize {name}: metadata index on {} created",
                m.property_name
            ));
        }
    }
    let source_ids = source.ids()?;
    let destination_ids = destination.ids()?;
    let missing: Vec<&str> = source_ids
        .difference(&destination_ids)
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = destination_ids
        .difference(&source_ids)
        .map(String::as_str)
        .collect();
    counts.skipped += (source_ids.len() - missing.len()) as u64;
    if missing.is_empty() && (extra.is_empty() || !options.delete) {
        progress(&format!(
            "vectorize {name}: equal ({} vectors), skipped",
            source_ids.len()
        ));
    }
    let mut done = 0;
    for batch in missing.chunks(UPSERT_BATCH) {
        let mut vectors = Vec::with_capacity(batch.len());
        for ids in batch.chunks(GET_BATCH) {
            vectors.extend(source.get(ids)?);
        }
        destination.upsert(&vectors)?;
        done += vectors.len();
        counts.copied += vectors.len() as u64;
        progress(&format!(
            "vectorize {name}: {done} of {} missing vectors copied",
            missing.len()
        ));
    }
    if options.delete && !extra.is_empty() {
        for batch in extra.chunks(GET_BATCH) {
            destination.delete(batch)?;
        }
        counts.deleted += extra.len() as u64;
        progress(&format!(
            "vectorize {name}: {} vectors the source lacks deleted",
            extra.len()
        ));
    }
    Ok(())
}
