//! The vector arena: fixed-width rows of f32 in *runs* of a fixed power-of-two number
//! of rows, so that row `i` is found with a shift and a mask.
//!
//! A run is either in memory or mapped read-only from a file: a run of its own (a
//! *vector file*, written once when the run is full) or a window of a segment (the
//! partial last run, and every run of a segment written before vector files existed).
//! A checkpoint writes only the full runs that have no file yet, so a growing index
//! writes each vector to disk a bounded number of times instead of once per
//! checkpoint. New rows go to memory; a write to a mapped row first copies that run
//! into memory (copy on write), and the run loses its file until the next checkpoint
//! writes it again.

use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

/// A read-only window of f32 rows inside a mapped file.
#[derive(Clone)]
pub(crate) struct Mapped {
    map: Arc<Mmap>,
    /// Byte offset of the first row; a multiple of 4 (checked on creation).
    offset: usize,
    rows: usize,
}

impl Mapped {
    /// The rows `offset..offset + rows * width * 4` of `map`, or `None` if that range is
    /// outside the file or not aligned for f32.
    pub(crate) fn new(map: Arc<Mmap>, offset: usize, rows: usize, width: usize) -> Option<Self> {
        let bytes = rows.checked_mul(width)?.checked_mul(4)?;
        let end = offset.checked_add(bytes)?;
        let aligned = (map.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<f32>());
        (end <= map.len() && aligned && cfg!(target_endian = "little")).then_some(Mapped {
            map,
            offset,
            rows,
        })
    }

    fn floats(&self, width: usize) -> &[f32] {
        let len = self.rows * width;
        // SAFETY: `new` checked that the range lies inside the map and is f32-aligned,
        // every bit pattern is a valid f32, the map is read-only and lives as long as
        // `self` (Arc), and the target is little-endian like the file format.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.offset).cast::<f32>(), len) }
    }

    /// This window as consecutive windows of `per_run` rows of `width` floats (the
    /// last may hold fewer).
    fn split(self, per_run: usize, width: usize) -> impl Iterator<Item = Mapped> {
        let Mapped { map, offset, rows } = self;
        (0..rows.div_ceil(per_run)).map(move |k| Mapped {
            map: map.clone(),
            offset: offset + k * per_run * width * 4,
            rows: per_run.min(rows - k * per_run),
        })
    }
}

/// Where a run's rows live now.
#[derive(Clone)]
enum Rows {
    Mapped(Mapped),
    Owned(Vec<f32>),
}

/// The vector file that holds a run's rows exactly as they are (see
/// [`vector_file_name`]), with the CRC-32 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunFile {
    pub generation: u64,
    pub crc: u32,
}

#[derive(Clone)]
struct Run {
    rows: Rows,
    file: Option<RunFile>,
}

impl Run {
    fn floats(&self, width: usize) -> &[f32] {
        match &self.rows {
            Rows::Mapped(m) => m.floats(width),
            Rows::Owned(v) => v,
        }
    }

    fn len(&self, width: usize) -> usize {
        match &self.rows {
            Rows::Mapped(m) => m.rows,
            Rows::Owned(v) => v.len() / width,
        }
    }

    /// The rows, writable: a mapped run is copied into memory and loses its file.
    fn owned(&mut self, width: usize) -> &mut Vec<f32> {
        if let Rows::Mapped(m) = &self.rows {
            self.rows = Rows::Owned(m.floats(width).to_vec());
        }
        self.file = None;
        match &mut self.rows {
            Rows::Owned(v) => v,
            Rows::Mapped(_) => unreachable!("just copied into memory"),
        }
    }
}

/// Bytes of rows per run unless the index's options say otherwise: a checkpoint's worth
/// of log (see `VectorizeOptions::checkpoint_bytes`), so that a growing index fills
/// about one run between checkpoints.
pub(crate) const DEFAULT_RUN_BYTES: u64 = 32 << 20;

/// The name of run `run`'s vector file written at checkpoint `generation`.
pub(crate) fn vector_file_name(run: usize, generation: u64) -> String {
    format!("vectors-{run:08}-{generation:016}.vec")
}

/// Rows per run for rows of `width` floats: the largest power of two whose rows fit in
/// `bytes` (at least one row).
pub(crate) fn rows_per_run(width: usize, bytes: u64) -> usize {
    let rows = (bytes / (width.max(1) as u64 * 4)).max(1);
    1 << (63 - rows.leading_zeros()).min(30)
}

/// Rows of `width` floats, in runs of `1 << shift`.
#[derive(Clone)]
pub(crate) struct Arena {
    width: usize,
    shift: u32,
    /// Every run but the last holds exactly `1 << shift` rows.
    runs: Vec<Run>,
}

impl Arena {
    /// An empty arena in runs of `per_run` rows (a power of two).
    pub(crate) fn new(width: usize, per_run: usize) -> Self {
        assert!(per_run.is_power_of_two(), "runs hold a power of two rows");
        Arena {
            width,
            shift: per_run.trailing_zeros(),
            runs: Vec::new(),
        }
    }

    /// An arena over `files` (full runs, in order, each with its file) followed by
    /// `tail` (the remaining rows, which have no file of their own).
    pub(crate) fn from_mapped(
        width: usize,
        per_run: usize,
        files: Vec<(Mapped, RunFile)>,
        tail: Mapped,
    ) -> Option<Self> {
        let mut arena = Arena::new(width, per_run);
        for (rows, file) in files {
            if rows.rows != per_run {
                return None;
            }
            arena.runs.push(Run {
                rows: Rows::Mapped(rows),
                file: Some(file),
            });
        }
        arena
            .runs
            .extend(tail.split(per_run, width).map(|rows| Run {
                rows: Rows::Mapped(rows),
                file: None,
            }));
        Some(arena)
    }

    /// Rows per run.
    pub(crate) fn per_run(&self) -> usize {
        1 << self.shift
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.runs.last().map_or(0, |r| {
            (self.runs.len() - 1) * self.per_run() + r.len(self.width)
        })
    }

    /// Row `i`.
    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        let w = self.width;
        let j = i & (self.per_run() - 1);
        &self.runs[i >> self.shift].floats(w)[j * w..(j + 1) * w]
    }

    /// Appends a row.
    pub(crate) fn push(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.width);
        if self
            .runs
            .last()
            .is_none_or(|r| r.len(self.width) == self.per_run())
        {
            self.runs.push(Run {
                rows: Rows::Owned(Vec::new()),
                file: None,
            });
        }
        let run = self.runs.last_mut().expect("a run to append to");
        run.owned(self.width).extend_from_slice(row);
    }

    /// Row `i`, writable.
    pub(crate) fn row_mut(&mut self, i: usize) -> &mut [f32] {
        let w = self.width;
        let j = i & (self.per_run() - 1);
        &mut self.runs[i >> self.shift].owned(w)[j * w..(j + 1) * w]
    }

    /// Bytes the rows occupy: allocated memory plus the mapped rows (resident once
    /// searched).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| match &r.rows {
                Rows::Mapped(m) => m.rows * self.width * 4,
                Rows::Owned(v) => v.capacity() * 4,
            })
            .sum::<usize>()
            + self.runs.capacity() * std::mem::size_of::<Run>()
    }

    /// The vector files of the full runs, in order, up to the first full run that has
    /// none (after [`Arena::write_runs`], every full run has one).
    pub(crate) fn run_files(&self) -> Vec<RunFile> {
        let full = self.rows() / self.per_run();
        self.runs[..full].iter().map_while(|r| r.file).collect()
    }

    /// The names of the vector files that hold runs as they are now.
    pub(crate) fn file_names(&self) -> Vec<String> {
        (self.runs.iter().enumerate())
            .filter_map(|(k, r)| r.file.map(|f| vector_file_name(k, f.generation)))
            .collect()
    }

    /// The rows after the last full run, which go into the segment itself.
    pub(crate) fn tail(&self) -> &[f32] {
        let full = self.rows() / self.per_run();
        self.runs.get(full).map_or(&[], |r| r.floats(self.width))
    }

    /// Writes each full run that has no vector file into one named for `generation` in
    /// `dir`, fsyncs it and maps it in place of the run's memory. Returns how many it
    /// wrote; the caller syncs `dir` before anything names them.
    pub(crate) fn write_runs(&mut self, dir: &Path, generation: u64) -> std::io::Result<usize> {
        let (width, per_run) = (self.width, self.per_run());
        let full = self.rows() / per_run;
        let mut written = 0;
        for (k, run) in self.runs[..full].iter_mut().enumerate() {
            if run.file.is_some() {
                continue;
            }
            let path = dir.join(vector_file_name(k, generation));
            let bytes = bytes_of(run.floats(width));
            let crc = crc32fast::hash(bytes);
            // Read access too: the file is mapped once written.
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            std::io::Write::write_all(&mut file, bytes)?;
            crate::fsync::file(&file)?;
            // SAFETY: vector files are immutable once written; tristore only deletes
            // one after no segment names it.
            let map = Arc::new(unsafe { Mmap::map(&file) }?);
            let rows = Mapped::new(map, 0, per_run, width).ok_or_else(|| {
                std::io::Error::other("a vector file just written cannot be mapped")
            })?;
            *run = Run {
                rows: Rows::Mapped(rows),
                file: Some(RunFile { generation, crc }),
            };
            written += 1;
        }
        Ok(written)
    }
}

/// The bytes of an f32 or u32 slice as stored (the format is little-endian, and so is
/// every host tristore maps vector files on; see [`Mapped::new`]).
pub(crate) fn bytes_of<T: Copy>(words: &[T]) -> &[u8] {
    // SAFETY: f32 and u32 have no padding and any byte is a valid u8; the length is the
    // slice's size in bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_hold_a_power_of_two_rows_that_fit() {
        assert_eq!(rows_per_run(768, 32 << 20), 8192);
        assert_eq!(rows_per_run(4, 16 * 7), 4);
        assert_eq!(rows_per_run(4, 1), 1);
        assert_eq!(rows_per_run(1, u64::MAX), 1 << 30);
    }

    #[test]
    fn rows_are_found_across_runs_and_written_copy_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut arena = Arena::new(3, 4);
        for i in 0..10 {
            arena.push(&[i as f32, 0.5, -1.0]);
        }
        assert_eq!(arena.rows(), 10);
        assert_eq!(arena.write_runs(dir.path(), 7).unwrap(), 2);
        assert_eq!(arena.write_runs(dir.path(), 8).unwrap(), 0);
        assert_eq!(
            arena.file_names(),
            [vector_file_name(0, 7), vector_file_name(1, 7)]
        );
        assert_eq!(arena.tail(), [8.0, 0.5, -1.0, 9.0, 0.5, -1.0]);
        for i in 0..10 {
            assert_eq!(arena.row(i), [i as f32, 0.5, -1.0]);
        }
        arena.row_mut(5)[0] = 50.0;
        assert_eq!(arena.file_names(), [vector_file_name(0, 7)]);
        assert_eq!(arena.row(5)[0], 50.0);
        assert_eq!(arena.row(4)[0], 4.0);
        assert_eq!(arena.write_runs(dir.path(), 9).unwrap(), 1);
        let on_disk = std::fs::read(dir.path().join(vector_file_name(1, 9))).unwrap();
        assert_eq!(on_disk.len(), 4 * 3 * 4);
        assert_eq!(&on_disk[12..16], &50.0f32.to_le_bytes());
    }
}
