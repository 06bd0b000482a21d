//! A directory filled beside its final place and renamed into it at the end, so that a
//! crash or an error at any moment leaves either nothing at the final path or the whole
//! tree: every file and directory is fsynced before the rename, and the parent after.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::ManifestFile;
use crate::error::{Error, Result};
use crate::fsync;

/// What the directory will become: the wording of errors, and of leftover names.
#[derive(Clone, Copy)]
pub(super) enum Purpose {
    Backup,
    Restore,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Backup => "backup",
            Purpose::Restore => "restore",
        }
    }
}

/// The directory being filled; removed when dropped unless [`Staging::finish`] ran.
pub(super) struct Staging {
    dir: PathBuf,
    target: PathBuf,
    /// Directories made so far, to fsync before the rename.
    dirs: BTreeSet<PathBuf>,
    /// Hard links are tried until one fails (another file system): then copies.
    link: bool,
    /// What was written, for the manifest.
    pub files: Vec<ManifestFile>,
    pub linked: usize,
    done: bool,
}

impl Staging {
    /// Starts filling a directory that will become `target`, which must be absent or
    /// an empty directory. Leftovers of earlier runs for the same target whose process
    /// is gone (killed, say) are removed first.
    pub(super) fn begin(target: &Path, purpose: Purpose) -> Result<Staging> {
        let target = absolute(target)?;
        let refuse = |message: String| Error::Backup {
            path: target.clone(),
            message,
        };
        match fs::read_dir(&target) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(refuse(match purpose {
                        Purpose::Backup => "the backup destination exists and is not empty: name a new directory (it is created), or empty this one".into(),
                        Purpose::Restore => "the data directory is not empty, and a restore only fills an empty one: pass --data-dir with a new directory, or move this one away first (a running tristore serve must be stopped)".into(),
                    }));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(refuse(
                    "this is a file, not a directory: name a new directory".into(),
                ));
            }
            Err(e) => return Err(Error::io("reading", target.clone())(e)),
        }
        let (parent, name) = split(&target)?;
        let unwritable = |e: io::Error| Error::Backup {
            path: target.clone(),
            message: format!(
                "cannot write in {} ({e}): choose a place whose parent directory you can write",
                parent.display()
            ),
        };
        fs::create_dir_all(&parent).map_err(unwritable)?;
        let prefix = format!(".{name}.tristore-{}-", purpose.tag());
        remove_leftovers(&parent, &prefix);
        // Unique per call: a server may take two backups to one name at once.
        let dir = parent.join(format!(
            "{prefix}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir(&dir).map_err(unwritable)?;
        Ok(Staging {
            dirs: BTreeSet::from([dir.clone()]),
            dir,
            target,
            link: true,
            files: Vec::new(),
            linked: 0,
            done: false,
        })
    }

    /// The final path.
    pub(super) fn target(&self) -> &Path {
        &self.target
    }

    /// The staging directory itself (to open the store in it before the rename).
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file `rel` (a `/`-separated relative path) goes, its directory made.
    pub(super) fn path(&mut self, rel: &str) -> Result<PathBuf> {
        let path = self.dir.join(rel);
        let mut parent = path.parent().map(Path::to_path_buf);
        fs::create_dir_all(parent.as_deref().unwrap_or(&self.dir))
            .map_err(Error::io("creating directory", path.clone()))?;
        while let Some(p) = parent.filter(|p| p.starts_with(&self.dir)) {
            parent = p.parent().map(Path::to_path_buf);
            self.dirs.insert(p);
        }
        Ok(path)
    }

    /// Writes the first `len` bytes of `source` as `rel`, fsynced, and records them. With
    /// `expect`, the copy must have that BLAKE3 (a restore checking the backup).
    pub(super) fn copy_from(
        &mut self,
        rel: &str,
        source: impl Read,
        len: u64,
        expect: Option<&str>,
    ) -> Result<()> {
        let path = self.path(rel)?;
        let mut hasher = blake3::Hasher::new();
        let copied = (|| -> io::Result<u64> {
            let mut out = File::create(&path)?;
            let mut source = source.take(len);
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                let read = source.read(&mut buf)?;
                if read == 0 {
                    break;
                }
                hasher.update(&buf[..read]);
                out.write_all(&buf[..read])?;
                n += read as u64;
            }
            fsync::file(&out)?;
            Ok(n)
        })()
        .map_err(Error::io("writing", path.clone()))?;
        let hash = hasher.finalize().to_hex().to_string();
        if copied != len || expect.is_some_and(|e| e != hash) {
            return Err(Error::Backup {
                path: path.clone(),
                message: format!("{rel} came out as {copied} bytes with BLAKE3 {hash}, but {len} bytes{} were expected: the source is damaged or changed while being copied", expect.map(|e| format!(" with BLAKE3 {e}")).unwrap_or_default()),
            });
        }
        self.files.push(ManifestFile {
            path: rel.to_owned(),
            bytes: len,
            blake3: Some(hash),
        });
        Ok(())
    }

    /// Records `rel`, which something else (SQLite, redb) wrote at [`Staging::path`],
    /// after fsyncing it.
    pub(super) fn written(&mut self, rel: &str) -> Result<()> {
        let path = self.dir.join(rel);
        let mut file = File::open(&path).map_err(Error::io("reading", path.clone()))?;
        fsync::file(&file).map_err(Error::io("syncing", path.clone()))?;
        let mut hasher = blake3::Hasher::new();
        let bytes = io::copy(&mut file, &mut hasher).map_err(Error::io("reading", path))?;
        self.files.push(ManifestFile {
            path: rel.to_owned(),
            bytes,
            blake3: Some(hasher.finalize().to_hex().to_string()),
        });
        Ok(())
    }

    /// Places the immutable file `source` (an R2 blob) as `rel`: a hard link while the
    /// two directories share a file system, else a copy. A link is not re-read, so it is
    /// recorded with its size only (a blob's name is its BLAKE3).
    pub(super) fn link_or_copy(
        &mut self,
        rel: &str,
        source: &Path,
        len: u64,
        expect: Option<&str>,
    ) -> Result<()> {
        let path = self.path(rel)?;
        let open = || File::open(source).map_err(Error::io("reading", source.to_owned()));
        if self.link {
            match fs::hard_link(source, &path) {
                Ok(()) => {
                    let linked = fs::metadata(&path).map_err(Error::io("reading", path.clone()))?;
                    if linked.len() != len {
                        return Err(Error::Backup {
                            path: source.to_owned(),
                            message: format!("{rel} has {} bytes, {len} were expected: the source is damaged (run tristore fsck on it)", linked.len()),
                        });
                    }
                    self.linked += 1;
                    self.files.push(ManifestFile {
                        path: rel.to_owned(),
                        bytes: len,
                        blake3: None,
                    });
                    return Ok(());
                }
                // Missing: the copy below reports it, naming the source.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return open().map(drop),
                Err(_) => self.link = false,
            }
        }
        self.copy_from(rel, open()?, len, expect)
    }

    /// Writes `manifest` (last, when given), fsyncs every directory, renames the
    /// directory to its final path and fsyncs the parent.
    pub(super) fn finish(mut self, manifest: Option<(&str, &[u8])>) -> Result<PathBuf> {
        if let Some((name, bytes)) = manifest {
            let path = self.path(name)?;
            let write = || -> io::Result<()> {
                let mut f = File::create(&path)?;
                f.write_all(bytes)?;
                fsync::file(&f)
            };
            write().map_err(Error::io("writing", path.clone()))?;
        }
        // Deepest first, so that each directory's entries are durable before it is.
        for dir in self.dirs.iter().rev() {
            crate::fsutil::sync_dir(dir)?;
        }
        // An empty directory at the target is replaced by the rename.
        fs::rename(&self.dir, &self.target).map_err(|e| Error::Backup {
            path: self.target.clone(),
            message: format!(
                "could not move the finished {} into place from {}: {e}",
                if manifest.is_some() {
                    "backup"
                } else {
                    "restore"
                },
                self.dir.display()
            ),
        })?;
        self.done = true;
        let (parent, _) = split(&self.target)?;
        crate::fsutil::sync_dir(&parent)?;
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(Error::io("resolving", path.to_owned()))
}

fn split(target: &Path) -> Result<(PathBuf, String)> {
    match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_owned(), name.to_string_lossy().into_owned())),
        _ => Err(Error::Backup {
            path: target.to_owned(),
            message: "name a directory below /, not / itself".into(),
        }),
    }
}

/// Removes `<parent>/<prefix><pid>-<id>` directories whose process no longer runs.
fn remove_leftovers(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !alive(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a process `pid` exists (signal 0 checks without sending anything).
pub(crate) fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
