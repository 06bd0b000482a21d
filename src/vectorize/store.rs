//! The indexes of one data directory: `<data>/vectorize/<name>/`, each holding
//! `index.json` (name, description, configuration, creation time), its log and segments.
//!
//! Creating builds the directory under a temporary name and renames it into place;
//! deleting renames it away before removing it. A crash in either leaves a `.creating-`
//! or `.deleting-` directory that the next open removes, never a half index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::{code, storage, Op, Result, VectorizeError};
use super::index::{files_at_rest, PinnedFile, VectorizeIndex};
use super::types::{IndexConfig, IndexDescription};
use super::{Limits, VectorizeOptions};
use crate::fsutil;

/// Every Vectorize index of a store.
pub struct VectorizeStore {
    dir: PathBuf,
    limits: Limits,
    options: VectorizeOptions,
    /// Open handles, so that every caller shares one index state.
    open: Mutex<HashMap<String, VectorizeIndex>>,
}

impl std::fmt::Debug for VectorizeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorizeStore")
            .field("dir", &self.dir)
            .finish()
    }
}

const DESCRIPTION: &str = "index.json";

impl VectorizeStore {
    /// Opens (creating if needed) the indexes under `dir`.
    pub(crate) fn open(
        dir: &Path,
        limits: Limits,
        options: VectorizeOptions,
    ) -> crate::Result<Self> {
        fsutil::create_dir_durable(dir)?;
        for entry in std::fs::read_dir(dir).map_err(|e| crate::Error::Io {
            action: "list",
            path: dir.to_owned(),
            source: e,
        })? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".creating-") || name.starts_with(".deleting-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(VectorizeStore {
            dir: dir.to_owned(),
            limits,
            options,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The limits indexes enforce.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Creates an index. Names are 1 to 64 bytes of lowercase letters, digits and `-`,
    /// starting with a letter or digit; the configuration is fixed from now on.
    pub fn create(
        &self,
        name: &str,
        description: &str,
        config: IndexConfig,
    ) -> Result<IndexDescription> {
        let op = Op::Index;
        self.check_name(name)?;
        if config.dimensions == 0 || config.dimensions > self.limits.max_dimensions {
            return Err(VectorizeError::new(
                op,
                code::INVALID_CONFIG,
                format!(
                    "dimensions must be between 1 and {}, but got {}",
                    self.limits.max_dimensions, config.dimensions
                ),
            ));
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(name);
        if path.exists() {
            return Err(VectorizeError::new(
                op,
                code::INDEX_EXISTS,
                format!("an index named {name:?} already exists"),
            ));
        }
        let now = crate::store::now_iso8601();
        let described = IndexDescription {
            name: name.to_owned(),
            description: description.to_owned(),
            config,
            created_on: now.clone(),
            modified_on: now,
        };
        let tmp = self.dir.join(format!(".creating-{}", uuid::Uuid::new_v4()));
        let build = || -> std::io::Result<()> {
            std::fs::create_dir(&tmp)?;
            let json = serde_json::to_vec_pretty(&described).map_err(std::io::Error::other)?;
            fsutil::write_durable(&tmp.join(DESCRIPTION), &json).map_err(std::io::Error::other)?;
            VectorizeIndex::create_files(&tmp)?;
            fsutil::sync_dir(&tmp).map_err(std::io::Error::other)?;
            std::fs::rename(&tmp, &path)?;
            fsutil::sync_dir(&self.dir).map_err(std::io::Error::other)
        };
        if let Err(e) = build() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(storage(op, &path, e));
        }
        let index = VectorizeIndex::open(
            name,
            &path,
            config,
            self.limits.clone(),
            self.options.clone(),
        )
        .map_err(|e| e.during(op))?;
        open.insert(name.to_owned(), index);
        Ok(described)
    }

    fn check_name(&self, name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= self.limits.max_index_name_bytes
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if ok {
            Ok(())
        } else {
            Err(VectorizeError::new(
                Op::Index,
                code::INVALID_CONFIG,
                format!(
                    "invalid index name {name:?}: use 1 to {} lowercase letters, digits and dashes, starting with a letter or digit",
                    self.limits.max_index_name_bytes
                ),
            ))
        }
    }

    /// Every index, by name.
    pub fn list(&self) -> Result<Vec<IndexDescription>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| storage(Op::Index, &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                out.push(self.get(&name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One index's description.
    pub fn get(&self, name: &str) -> Result<IndexDescription> {
        let path = self.path_of(name)?.join(DESCRIPTION);
        let bytes = std::fs::read(&path).map_err(|e| storage(Op::IndexGet, &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| storage(Op::IndexGet, &path, e))
    }

    fn path_of(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if self.check_name(name).is_err() || !path.join(DESCRIPTION).exists() {
            return Err(VectorizeError::new(
                Op::IndexGet,
                code::INDEX_NOT_FOUND,
                format!("index {name:?} not found"),
            ));
        }
        Ok(path)
    }

    /// A handle on an index, opening it on first use.
    pub fn index(&self, name: &str) -> Result<VectorizeIndex> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = open.get(name) {
            return Ok(index.clone());
        }
        let described = self.get(name)?;
        let index = VectorizeIndex::open(
            name,
            &self.dir.join(name),
            described.config,
            self.limits.clone(),
            self.options.clone(),
        )?;
        open.insert(name.to_owned(), index.clone());
        Ok(index)
    }

    /// Holds every write to every index, and index creation and deletion, while
    /// `inside` runs (so that it can pin the other stores at the same instant), and
    /// returns each index's files as they were then with what `inside` returned.
    /// Indexes no handle has open are taken from their files, which nothing writes.
    pub(crate) fn while_frozen<T>(
        &self,
        inside: impl FnOnce() -> crate::Result<T>,
    ) -> crate::Result<(Vec<PinnedIndex>, T)> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let io = |path: &Path| crate::Error::io("reading the index files of", path.to_owned());
        let mut held = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let name = entry.map_err(io(&self.dir))?.file_name();
            let name = name.to_string_lossy().into_owned();
            if !name.starts_with('.') && self.dir.join(&name).join(DESCRIPTION).exists() {
                let handle = open.get(&name).cloned();
                held.push((name, handle));
            }
        }
        let frozen: Vec<_> = held
            .iter()
            .map(|(_, handle)| handle.as_ref().map(VectorizeIndex::freeze))
            .collect();
        let mut pinned = Vec::new();
        for ((name, _), frozen) in held.iter().zip(&frozen) {
            let dir = self.dir.join(name);
            let mut files = match frozen {
                Some(frozen) => frozen.files(),
                None => files_at_rest(&dir),
            }
            .map_err(io(&dir))?;
            let path = dir.join(DESCRIPTION);
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            let len = file.metadata().map_err(io(&path))?.len();
            files.push(PinnedFile {
                name: DESCRIPTION.to_owned(),
                file,
                len,
            });
            pinned.push(PinnedIndex {
                name: name.clone(),
                files,
            });
        }
        let out = inside()?;
        drop(frozen);
        Ok((pinned, out))
    }

    /// Deletes an index and its files; the name can then be reused. Handles still held
    /// elsewhere keep working on the old index's memory, but write nowhere durable.
    pub fn delete(&self, name: &str) -> Result<()> {
        let op = Op::Index;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path_of(name).map_err(|e| e.during(op))?;
        open.remove(name);
        let gone = self.dir.join(format!(".deleting-{}", uuid::Uuid::new_v4()));
        std::fs::rename(&path, &gone).map_err(|e| storage(op, &path, e))?;
        fsutil::sync_dir(&self.dir).map_err(|e| storage(op, &self.dir, e))?;
        std::fs::remove_dir_all(&gone).map_err(|e| storage(op, &gone, e))
    }
}

/// An index's files as a backup takes them (see [`VectorizeStore::while_frozen`]).
pub(crate) struct PinnedIndex {
    pub name: String,
    /// `index.json`, the newest segment and the log up to the frozen instant.
    pub files: Vec<PinnedFile>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectorize::Metric;

    #[test]
    fn create_list_get_delete_and_reuse_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            VectorizeStore::open(dir.path(), Limits::default(), VectorizeOptions::default())
                .unwrap();
        let config = IndexConfig {
            dimensions: 3,
            metric: Metric::Cosine,
        };
        store.create("idx-a", "first", config).unwrap();
        let e = store.create("idx-a", "", config).unwrap_err();
        assert_eq!((e.code, e.http_status()), (code::INDEX_EXISTS, 409));
        for bad in ["", "Upper", "-x", &"a".repeat(65), "a/b"] {
            assert_eq!(
                store.create(bad, "", config).unwrap_err().code,
                code::INVALID_CONFIG,
                "{bad:?}"
            );
        }
        let too_wide = IndexConfig {
            dimensions: 1537,
            metric: Metric::Cosine,
        };
        assert_eq!(
            store.create("wide", "", too_wide).unwrap_err().code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            store
                .list()
                .unwrap()
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["idx-a"]
        );
        assert_eq!(store.get("idx-a").unwrap().description, "first");
        store.delete("idx-a").unwrap();
        assert_eq!(store.get("idx-a").unwrap_err().http_status(), 404);
        assert!(store.list().unwrap().is_empty());
        store.create("idx-a", "again", config).unwrap();
        assert_eq!(store.index("idx-a").unwrap().describe().vector_count, 0);
    }
}
