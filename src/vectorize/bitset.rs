//! A fixed-size set of slots, one bit each: what a filter resolves to, and what the graph
//! walk tests candidates against.

/// A set of slots `0..len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// The empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// The set of all of `0..len`.
    pub fn full(len: usize) -> Self {
        let mut words = vec![u64::MAX; len.div_ceil(64)];
        if !len.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last = (1 << (len % 64)) - 1;
            }
        }
        Bitset { words, len }
    }

    /// The size of the universe (not the number of members).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the universe is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `slot` (which must be below `len`).
    pub fn insert(&mut self, slot: u32) {
        self.words[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// Removes `slot`.
    pub fn remove(&mut self, slot: u32) {
        self.words[slot as usize / 64] &= !(1 << (slot % 64));
    }

    /// Whether `slot` is a member; slots past the universe are not.
    #[inline]
    pub fn contains(&self, slot: u32) -> bool {
        self.words
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// Grows the universe to `len` (new slots are not members).
    pub fn grow(&mut self, len: usize) {
        if len > self.len {
            self.words.resize(len.div_ceil(64), 0);
            self.len = len;
        }
    }

    /// Number of members.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Keeps members of both.
    pub fn intersect(&mut self, other: &Bitset) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Adds the members of `other`.
    pub fn union(&mut self, other: &Bitset) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// Removes the members of `other`.
    pub fn subtract(&mut self, other: &Bitset) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    i as u32 * 64 + b
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut a = Bitset::new(130);
        [0, 63, 64, 129].iter().for_each(|&s| a.insert(s));
        let mut b = Bitset::new(130);
        [63, 100].iter().for_each(|&s| b.insert(s));
        assert_eq!(a.count(), 4);
        assert!(a.contains(129) && !a.contains(128) && !a.contains(500));
        let mut i = a.clone();
        i.intersect(&b);
        assert_eq!(i.iter().collect::<Vec<_>>(), vec![63]);
        let mut u = a.clone();
        u.union(&b);
        assert_eq!(u.iter().collect::<Vec<_>>(), vec![0, 63, 64, 100, 129]);
        a.subtract(&b);
        a.remove(0);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![64, 129]);
        a.grow(200);
        assert_eq!((a.len(), a.count()), (200, 2));
        assert_eq!(Bitset::full(130).count(), 130);
        assert_eq!(Bitset::full(128).count(), 128);
        assert!(!Bitset::full(130).contains(130));
    }
}
