//! A power-loss simulator for tests, in the manner of LazyFS or a dm-log-writes replay:
//! while a [`Recording`] runs, every fsync under its root (tristore's own, through
//! [`crate::fsync`]; the catalogs' through their storage backend; SQLite's through a
//! pass-through VFS) is recorded with what it made durable. [`Recording::materialize`]
//! then builds the directory a power cut after any number of those fsyncs would leave:
//! each file as of its last fsync (empty if it never had one), each directory with the
//! entries it had at its last fsync; writes, creations, renames and removals not made
//! durable are gone.
//!
//! A recording can also leave one fsync site out ([`Recording::start_without`]): the
//! call still happens, but the simulated disk ignores it, which is what removing that
//! fsync from the code would do. `tests/power_loss.rs` uses this to show that each
//! fsync the workloads reach is one the tests notice.
//!
//! Not a stable API; one recording at a time per process. A file whose inode number is
//! reused after removal inherits its predecessor's durable content until its own first
//! fsync; the workloads sync every file they create, so this does not hide a loss.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

const PAGE: usize = 4096;

static ACTIVE: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
struct Entry {
    name: OsString,
    ino: u64,
    dir: bool,
}

#[derive(Debug)]
enum Event {
    /// A file's content at an fsync: its length and the pages that changed since the
    /// content the replay has for that inode.
    File {
        ino: u64,
        len: usize,
        pages: Vec<(usize, Vec<u8>)>,
        site: String,
    },
    /// A directory's entries at an fsync. Directories are known by inode, as files
    /// are: one made under a temporary name and renamed keeps what it synced.
    Dir {
        ino: u64,
        entries: Vec<Entry>,
        site: String,
    },
}

struct State {
    root: PathBuf,
    root_ino: u64,
    skip: Option<String>,
    base_dirs: HashMap<u64, Vec<Entry>>,
    base_files: HashMap<u64, Vec<u8>>,
    /// The content the replay has for each inode after the last event.
    last: HashMap<u64, Vec<u8>>,
    events: Vec<Event>,
}

/// A running recording of the fsyncs under one directory; stops when dropped.
pub struct Recording {
    _private: (),
}

impl Recording {
    /// Starts recording under `root`, whose present content counts as durable.
    pub fn start(root: &Path) -> std::io::Result<Recording> {
        Recording::start_without(root, None)
    }

    /// Like [`start`](Recording::start), but the fsyncs made at `site` (a `file:line`
    /// of tristore's source, or an `sqlite ...` site of the VFS) make nothing durable.
    pub fn start_without(root: &Path, site: Option<&str>) -> std::io::Result<Recording> {
        sqlite_vfs::install();
        let root = root.canonicalize()?;
        let mut base_dirs = HashMap::new();
        let mut base_files = HashMap::new();
        snapshot(&root, &mut base_dirs, &mut base_files)?;
        let root_ino = std::fs::metadata(&root)?.ino();
        let mut slot = state();
        assert!(slot.is_none(), "one power-loss recording at a time");
        *slot = Some(State {
            root,
            root_ino,
            skip: site.map(String::from),
            last: base_files.clone(),
            base_dirs,
            base_files,
            events: Vec::new(),
        });
        ACTIVE.store(true, Ordering::SeqCst);
        Ok(Recording { _private: () })
    }

    /// How many fsyncs were recorded so far: taken right after a write is
    /// acknowledged, it is the earliest cut that write must survive.
    pub fn mark(&self) -> usize {
        state().as_ref().map_or(0, |s| s.events.len())
    }

    /// The sites of the fsyncs recorded between two marks (a left-out site has none).
    pub fn sites_between(&self, from: usize, to: usize) -> BTreeSet<String> {
        let guard = state();
        let events = guard.as_ref().map_or(&[][..], |s| {
            let to = to.min(s.events.len());
            &s.events[from.min(to)..to]
        });
        events
            .iter()
            .map(|e| match e {
                Event::File { site, .. } | Event::Dir { site, .. } => site.clone(),
            })
            .collect()
    }

    /// The recorded fsyncs, one per line (inode, length or entries, site): for a
    /// failing test to show.
    pub fn log(&self) -> String {
        let guard = state();
        let events = guard.as_ref().map_or(&[][..], |s| &s.events[..]);
        let line = |(i, e): (usize, &Event)| match e {
            Event::File { ino, len, site, .. } => {
                format!("{i}: file {ino}, {len} bytes, at {site}")
            }
            Event::Dir { ino, entries, site } => {
                let names: Vec<_> = entries.iter().map(|e| (&e.name, e.ino)).collect();
                format!("{i}: directory {ino} {names:?} at {site}")
            }
        };
        events
            .iter()
            .enumerate()
            .map(line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes into `into` (an empty or missing directory) what the root would hold
    /// after a power cut once the first `cut` fsyncs had completed.
    pub fn materialize(&self, cut: usize, into: &Path) -> std::io::Result<()> {
        let guard = state();
        let s = guard.as_ref().expect("recording");
        let mut dirs = s.base_dirs.clone();
        let mut files = s.base_files.clone();
        for event in &s.events[..cut.min(s.events.len())] {
            match event {
                Event::File {
                    ino, len, pages, ..
                } => {
                    let content = files.entry(*ino).or_default();
                    apply(content, *len, pages);
                }
                Event::Dir { ino, entries, .. } => {
                    dirs.insert(*ino, entries.clone());
                }
            }
        }
        build(&dirs, &files, s.root_ino, into)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
        *state() = None;
    }
}

fn apply(content: &mut Vec<u8>, len: usize, pages: &[(usize, Vec<u8>)]) {
    content.resize(len, 0);
    for (at, bytes) in pages {
        content[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
}

/// Writes directory `ino`'s durable entries into `here`, recursively.
fn build(
    dirs: &HashMap<u64, Vec<Entry>>,
    files: &HashMap<u64, Vec<u8>>,
    ino: u64,
    here: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(here)?;
    for e in dirs.get(&ino).into_iter().flatten() {
        if e.dir {
            build(dirs, files, e.ino, &here.join(&e.name))?;
        } else {
            let content = files.get(&e.ino).map_or(&[][..], |c| c.as_slice());
            std::fs::write(here.join(&e.name), content)?;
        }
    }
    Ok(())
}

fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        entries.push(Entry {
            name: e.file_name(),
            ino: e.ino(),
            dir: e.file_type()?.is_dir(),
        });
    }
    Ok(entries)
}

fn snapshot(
    dir: &Path,
    dirs: &mut HashMap<u64, Vec<Entry>>,
    files: &mut HashMap<u64, Vec<u8>>,
) -> std::io::Result<()> {
    let entries = list(dir)?;
    for e in &entries {
        if e.dir {
            snapshot(&dir.join(&e.name), dirs, files)?;
        } else {
            files.insert(e.ino, std::fs::read(dir.join(&e.name))?);
        }
    }
    dirs.insert(std::fs::metadata(dir)?.ino(), entries);
    Ok(())
}

/// Called by [`crate::fsync`] after an fsync of an open file.
pub(crate) fn synced_file(f: &File, site: &dyn std::fmt::Display) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // The descriptor's own path names the file even when it was opened write-only.
    let fd = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
    if let Ok(path) = std::fs::read_link(&fd) {
        record_file(&fd, &path, &site.to_string());
    }
}

/// Called by [`crate::fsync`] after an fsync of a directory.
pub(crate) fn synced_dir(path: &Path, site: &dyn std::fmt::Display) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let Ok(path) = path.canonicalize() else {
        return;
    };
    let site = site.to_string();
    let mut guard = state();
    let Some(s) = guard.as_mut() else {
        return;
    };
    if !path.starts_with(&s.root) {
        return;
    }
    if s.skip.as_deref() == Some(site.as_str()) {
        return;
    }
    if let (Ok(entries), Ok(meta)) = (list(&path), std::fs::metadata(&path)) {
        s.events.push(Event::Dir {
            ino: meta.ino(),
            entries,
            site,
        });
    }
}

/// Records the content of the file at `open` (a path to read it by) whose name is
/// `path`, if it lies under the root.
fn record_file(open: &Path, path: &Path, site: &str) {
    let mut guard = state();
    let Some(s) = guard.as_mut() else {
        return;
    };
    if !path.starts_with(&s.root) {
        return;
    }
    if s.skip.as_deref() == Some(site) {
        return;
    }
    let (Ok(content), Ok(meta)) = (std::fs::read(open), std::fs::metadata(open)) else {
        return;
    };
    let ino = meta.ino();
    let before = s.last.entry(ino).or_default();
    let pages: Vec<(usize, Vec<u8>)> = content
        .chunks(PAGE)
        .enumerate()
        .filter(|(i, page)| before.get(i * PAGE..i * PAGE + page.len()) != Some(page))
        .map(|(i, page)| (i * PAGE, page.to_vec()))
        .collect();
    apply(before, content.len(), &pages);
    s.events.push(Event::File {
        ino,
        len: content.len(),
        pages,
        site: site.to_owned(),
    });
}

/// A redb storage backend over a file whose syncs the recording sees.
#[derive(Debug)]
pub(crate) struct RecordedFile {
    inner: redb::backends::FileBackend,
    /// A second handle on the same file, to name it when it is synced.
    file: File,
}

impl RecordedFile {
    /// Opens (creating if needed) and locks the database file at `path`, as
    /// [`redb::Database::create`] does.
    pub(crate) fn open(path: &Path) -> Result<RecordedFile, redb::DatabaseError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let second = file.try_clone()?;
        Ok(RecordedFile {
            inner: redb::backends::FileBackend::new(file)?,
            file: second,
        })
    }
}

impl redb::StorageBackend for RecordedFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
        self.inner.sync_data(eventual)?;
        synced_file(&self.file, &"redb catalog");
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write(offset, data)
    }
}

/// A pass-through SQLite VFS over the default one that reports each sync: installed
/// as the default VFS by the first recording, so that connections opened after it
/// (D1's) use it. Only `xOpen`, `xDelete`, and the files' `xSync` and `xClose` are
/// wrapped; every other call goes straight to the default VFS.
mod sqlite_vfs {
    use std::collections::HashMap;
    use std::ffi::{c_char, c_int, CStr, CString};
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, Once};

    use rusqlite::ffi;

    /// The default VFS this one wraps (a `*mut sqlite3_vfs`, as an address).
    static BELOW: Mutex<usize> = Mutex::new(0);
    /// Open files by address: their path and what SQLite opened them as.
    static FILES: Mutex<Option<HashMap<usize, (PathBuf, &'static str)>>> = Mutex::new(None);
    /// Method tables: (ours, the one below), both leaked for the process's life.
    static METHODS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    fn below() -> *mut ffi::sqlite3_vfs {
        *BELOW.lock().unwrap_or_else(|p| p.into_inner()) as *mut ffi::sqlite3_vfs
    }

    fn original(ours: *const ffi::sqlite3_io_methods) -> *const ffi::sqlite3_io_methods {
        let methods = METHODS.lock().unwrap_or_else(|p| p.into_inner());
        methods
            .iter()
            .find(|(o, _)| *o == ours as usize)
            .map_or(ours, |(_, b)| *b as *const ffi::sqlite3_io_methods)
    }

    fn ours(below: *const ffi::sqlite3_io_methods) -> *const ffi::sqlite3_io_methods {
        let mut methods = METHODS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((o, _)) = methods.iter().find(|(_, b)| *b == below as usize) {
            return *o as *const ffi::sqlite3_io_methods;
        }
        // SAFETY: `below` is a method table SQLite just installed; a copy with two
        // entries replaced keeps every other method and the version.
        let mut table = unsafe { std::ptr::read(below) };
        table.xSync = Some(x_sync);
        table.xClose = Some(x_close);
        let ours: &'static ffi::sqlite3_io_methods = Box::leak(Box::new(table));
        let ours = ours as *const ffi::sqlite3_io_methods;
        methods.push((ours as usize, below as usize));
        ours
    }

    pub(super) fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| unsafe {
            // SAFETY: plain SQLite API calls; the new VFS struct is leaked, so it
            // outlives every connection.
            let below = ffi::sqlite3_vfs_find(std::ptr::null());
            assert!(!below.is_null(), "SQLite has a default VFS");
            *BELOW.lock().unwrap_or_else(|p| p.into_inner()) = below as usize;
            let mut vfs = std::ptr::read(below);
            vfs.zName = CString::new("tristore-power-loss").unwrap().into_raw();
            vfs.pNext = std::ptr::null_mut();
            vfs.xOpen = Some(x_open);
            vfs.xDelete = Some(x_delete);
            let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 1);
            assert_eq!(rc, ffi::SQLITE_OK, "registering the power-loss VFS");
        });
    }

    fn kind(flags: c_int) -> &'static str {
        if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            "sqlite database"
        } else if flags & ffi::SQLITE_OPEN_WAL != 0 {
            "sqlite wal"
        } else if flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0 {
            "sqlite journal"
        } else {
            "sqlite other"
        }
    }

    unsafe extern "C" fn x_open(
        _vfs: *mut ffi::sqlite3_vfs,
        name: *const c_char,
        file: *mut ffi::sqlite3_file,
        flags: c_int,
        out: *mut c_int,
    ) -> c_int {
        let below = below();
        // SAFETY: the arguments are SQLite's, passed on unchanged.
        let rc = unsafe { ((*below).xOpen.expect("xOpen"))(below, name, file, flags, out) };
        // SAFETY: on success `file` was set up by the VFS below.
        unsafe {
            if rc == ffi::SQLITE_OK && !(*file).pMethods.is_null() && !name.is_null() {
                let path = PathBuf::from(CStr::from_ptr(name).to_string_lossy().into_owned());
                FILES
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(HashMap::new)
                    .insert(file as usize, (path, kind(flags)));
                (*file).pMethods = ours((*file).pMethods);
            }
        }
        rc
    }

    unsafe extern "C" fn x_delete(
        _vfs: *mut ffi::sqlite3_vfs,
        name: *const c_char,
        sync_dir: c_int,
    ) -> c_int {
        let below = below();
        // SAFETY: as in `x_open`.
        let rc = unsafe { ((*below).xDelete.expect("xDelete"))(below, name, sync_dir) };
        if rc == ffi::SQLITE_OK && sync_dir != 0 && !name.is_null() {
            // SAFETY: SQLite passes a NUL-terminated path.
            let path = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            if let Some(parent) = Path::new(&path).parent() {
                super::synced_dir(parent, &"sqlite delete");
            }
        }
        rc
    }

    unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
        // SAFETY: `file` is one of ours, whose methods map back to the ones below.
        let rc = unsafe {
            let below = original((*file).pMethods);
            ((*below).xSync.expect("xSync"))(file, flags)
        };
        if rc == ffi::SQLITE_OK {
            let known = FILES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|f| f.get(&(file as usize)).cloned());
            if let Some((path, kind)) = known {
                if super::ACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = path.canonicalize().unwrap_or(path);
                    super::record_file(&path, &path, kind);
                    // The unix VFS fsyncs a new journal's directory at its first sync.
                    if kind != "sqlite database" {
                        if let Some(parent) = path.parent() {
                            super::synced_dir(parent, &kind);
                        }
                    }
                }
            }
        }
        rc
    }

    unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
        if let Some(files) = FILES.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            files.remove(&(file as usize));
        }
        // SAFETY: as in `x_sync`.
        unsafe {
            let below = original((*file).pMethods);
            ((*below).xClose.expect("xClose"))(file)
        }
    }
}
