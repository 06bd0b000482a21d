//! The vector arena: fixed-width rows of f32, either in memory or, after opening an index,
//! the vector section of its segment mapped read-only. New rows always go to memory; a
//! write to a mapped row first copies the mapped rows into memory (copy on write), which
//! only updates need.

use std::sync::Arc;

use memmap2::Mmap;

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
}

/// Rows of `width` floats.
#[derive(Clone)]
pub(crate) struct Arena {
    width: usize,
    mapped: Option<Mapped>,
    owned: Vec<f32>,
}

impl Arena {
    pub(crate) fn new(width: usize) -> Self {
        Arena {
            width,
            mapped: None,
            owned: Vec::new(),
        }
    }

    /// An arena over mapped rows.
    pub(crate) fn from_mapped(width: usize, mapped: Mapped) -> Self {
        Arena {
            width,
            mapped: Some(mapped),
            owned: Vec::new(),
        }
    }

    fn mapped_rows(&self) -> usize {
        self.mapped.as_ref().map_or(0, |m| m.rows)
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.mapped_rows() + self.owned.len() / self.width
    }

    /// Row `i`.
    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        let w = self.width;
        match &self.mapped {
            Some(m) if i < m.rows => &m.floats(w)[i * w..(i + 1) * w],
            _ => {
                let j = i - self.mapped_rows();
                &self.owned[j * w..(j + 1) * w]
            }
        }
    }

    /// Appends a row.
    pub(crate) fn push(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.width);
        self.owned.extend_from_slice(row);
    }

    /// Moves mapped rows into memory, so that every row is writable.
    fn materialize(&mut self) {
        if let Some(m) = self.mapped.take() {
            let mut all = Vec::with_capacity(m.rows * self.width + self.owned.len());
            all.extend_from_slice(m.floats(self.width));
            all.append(&mut self.owned);
            self.owned = all;
        }
    }

    /// Row `i`, writable.
    pub(crate) fn row_mut(&mut self, i: usize) -> &mut [f32] {
        if i < self.mapped_rows() {
            self.materialize();
        }
        let j = i - self.mapped_rows();
        let w = self.width;
        &mut self.owned[j * w..(j + 1) * w]
    }

    /// Bytes the rows occupy: allocated memory plus the mapped rows (resident once
    /// searched).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.owned.capacity() * 4 + self.mapped_rows() * self.width * 4
    }

    /// All rows as one slice per storage part, in order (for writing a segment).
    pub(crate) fn parts(&self) -> [&[f32]; 2] {
        [
            self.mapped
                .as_ref()
                .map_or(&[][..], |m| m.floats(self.width)),
            &self.owned,
        ]
    }
}
