//! Byte codes of a cosine graph's rows, which the query walk measures instead of the f32
//! rows.
//!
//! A walk spends most of its time measuring rows it then discards; at 768 dimensions a
//! row is 3 KiB of f32 and the walk is bound by fetching and multiplying them. Each
//! row's code is its unit vector with one signed byte per dimension, scaled per
//! dimension so that the largest component seen uses the whole byte: a quarter of the
//! bytes, and 64 products per AVX-512 VNNI instruction instead of 16. The walk's
//! candidates are then re-scored on the f32 rows, so the scores a query reports, and
//! which vectors `getByIds` returns, do not depend on the codes.
//!
//! Codes are derived, never stored: for an index just opened the first query starts
//! their fit on one core in the background (queries walk the f32 rows until it ends),
//! and inserts keep them up to date.
//! A component beyond the fitted range is clamped; the scales are fitted again each time
//! the index doubles, so they follow what is stored.
//!
//! Each row also has a bit code: one bit per dimension, set where the unit row lies
//! above the mean of all unit rows. A scan of many rows counts differing bits first
//! (an eighth of the codes' bytes) and measures only the nearest few hundred on the
//! byte codes: on MiniLM embeddings the 128 nearest by bits held 98.5% of the true
//! top 10 among 4,300 rows (docs/benchmarks.md).

use rayon::prelude::*;

use super::{kernels, pages};

/// The codes of a graph's rows, and the scales they were made with.
pub(crate) struct Codes {
    dim: usize,
    /// Per dimension: what a unit row's component is multiplied by before rounding.
    scale: Vec<f32>,
    /// Per slot, `dim` bytes: each code plus 128 (VNNI multiplies unsigned bytes by
    /// signed ones; the offset adds the same constant to every distance of a query).
    bytes: Vec<u8>,
    /// Slots when the scales were fitted.
    fitted_for: usize,
    /// Per dimension, the mean of the unit rows' components: where bits split.
    mean: Vec<f32>,
    /// Per slot, `words` words of bit code.
    bits: Vec<u64>,
    words: usize,
}

impl Codes {
    /// Fits scales to the `slots` rows `row(0..slots)` (each with its inverse norm) and
    /// encodes them all, on every core.
    pub(crate) fn fit<'a>(
        dim: usize,
        slots: usize,
        row: &(dyn Fn(usize) -> &'a [f32] + Sync),
        inv_norms: &[f32],
    ) -> Codes {
        // Per dimension: the largest magnitude and the sum of the unit components.
        let (largest, sum) = (0..slots)
            .into_par_iter()
            .fold(
                || (vec![0f32; dim], vec![0f64; dim]),
                |(mut m, mut t), s| {
                    for ((m, t), x) in m.iter_mut().zip(&mut t).zip(row(s)) {
                        let u = x * inv_norms[s];
                        *m = m.max(u.abs());
                        if u.is_finite() {
                            *t += f64::from(u);
                        }
                    }
                    (m, t)
                },
            )
            .reduce(
                || (vec![0f32; dim], vec![0f64; dim]),
                |(a, t), (b, u)| {
                    (
                        a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect(),
                        t.iter().zip(&u).map(|(x, y)| x + y).collect(),
                    )
                },
            );
        let words = dim.div_ceil(64);
        let mut codes = Codes {
            dim,
            scale: largest
                .iter()
                .map(|&m| {
                    if m > 0.0 && m.is_finite() {
                        127.0 / m
                    } else {
                        0.0
                    }
                })
                .collect(),
            bytes: pages::zeroed(slots * dim),
            fitted_for: slots,
            mean: sum
                .iter()
                .map(|t| (t / slots.max(1) as f64) as f32)
                .collect(),
            bits: pages::zeroed(slots * words),
            words,
        };
        let (scale, mean) = (&codes.scale, &codes.mean);
        codes
            .bytes
            .par_chunks_mut(dim.max(1))
            .zip(codes.bits.par_chunks_mut(words.max(1)))
            .enumerate()
            .for_each(|(s, (out, bits))| {
                encode(row(s), inv_norms[s], scale, out);
                encode_bits(row(s), inv_norms[s], mean, bits);
            });
        codes
    }

    /// Whether the index has doubled since the scales were fitted.
    pub(crate) fn stale(&self, slots: usize) -> bool {
        slots >= 2 * self.fitted_for
    }

    /// Encodes `row` (with its inverse norm) into `slot`, which is an existing slot or
    /// the next one.
    pub(crate) fn set(&mut self, slot: usize, row: &[f32], inv_norm: f32) {
        let bytes = slot_mut(&mut self.bytes, slot, self.dim);
        encode(row, inv_norm, &self.scale, bytes);
        let bits = slot_mut(&mut self.bits, slot, self.words);
        encode_bits(row, inv_norm, &self.mean, bits);
    }

    /// The query's bit code, for [`Codes::nearest_by_bits`].
    pub(crate) fn query_bits(&self, v: &[f32]) -> Vec<u64> {
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 };
        let mut bits = vec![0; self.words];
        encode_bits(v, inv, &self.mean, &mut bits);
        bits
    }

    /// Of `slots`, the `n` whose bit codes differ least from the query's (all of them
    /// if there are no more than `n`; ties at the cut in the order given), in the
    /// order given.
    pub(crate) fn nearest_by_bits(&self, q: &[u64], slots: &[u32], n: usize) -> Vec<u32> {
        if slots.len() <= n {
            return slots.to_vec();
        }
        let mut differ = Vec::with_capacity(slots.len());
        kernels::hamming_rows(q, &self.bits, slots, &mut differ);
        // Counting select: distances are at most `dim`, so a histogram finds the
        // cut-off without sorting. Four interleaved counts, because most distances
        // fall in a few bins and one array would make each increment wait for the
        // one before.
        let bins = self.words * 64 + 1;
        let mut counts = vec![0usize; 4 * bins];
        for four in differ.chunks(4) {
            for (lane, &d) in four.iter().enumerate() {
                counts[lane * bins + usize::from(d)] += 1;
            }
        }
        let histogram: Vec<usize> = (0..bins)
            .map(|b| (0..4).map(|lane| counts[lane * bins + b]).sum())
            .collect();
        let (mut cut, mut below) = (0, 0);
        while below + histogram[cut] < n {
            below += histogram[cut];
            cut += 1;
        }
        let mut at_cut = n - below;
        let mut out = Vec::with_capacity(n);
        for (&s, &d) in slots.iter().zip(&differ) {
            let d = usize::from(d);
            if d < cut {
                out.push(s);
            } else if d == cut && at_cut > 0 {
                out.push(s);
                at_cut -= 1;
            }
        }
        out
    }

    /// The code of `slot`.
    #[inline]
    pub(crate) fn row(&self, slot: u32) -> &[u8] {
        let start = slot as usize * self.dim;
        &self.bytes[start..start + self.dim]
    }

    /// A query in the form [`crate::vectorize::kernels::codes_dot4`] takes against the
    /// codes: `Σ qᵢ · codeᵢ` then orders the rows as the query's dot product with their
    /// unit vectors does (up to rounding), for a query of any length.
    pub(crate) fn query(&self, v: &[f32]) -> Vec<i8> {
        // codeᵢ ≈ uᵢ · scaleᵢ, so q·u ≈ Σ (qᵢ / scaleᵢ) · codeᵢ: fold 1 / scaleᵢ into
        // the query and give the result a byte of its own, scaled to its largest part.
        let w: Vec<f32> = v
            .iter()
            .zip(&self.scale)
            .map(|(x, s)| if *s > 0.0 { x / s } else { 0.0 })
            .collect();
        let largest = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        let k = if largest > 0.0 && largest.is_finite() {
            127.0 / largest
        } else {
            0.0
        };
        w.iter()
            .map(|x| round(x * k).clamp(-127, 127) as i8)
            .collect()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.bits.capacity() * 8
            + (self.scale.capacity() + self.mean.capacity()) * 4
    }
}

/// Slot `slot`'s `width` entries of `v`, appended when it is the next slot.
fn slot_mut<T: Copy + Default>(v: &mut Vec<T>, slot: usize, width: usize) -> &mut [T] {
    let start = slot * width;
    if start == v.len() {
        v.resize(start + width, T::default());
    }
    &mut v[start..start + width]
}

/// One unit row's code, offset by 128.
fn encode(row: &[f32], inv_norm: f32, scale: &[f32], out: &mut [u8]) {
    for ((o, x), s) in out.iter_mut().zip(row).zip(scale) {
        *o = (round(x * inv_norm * s).clamp(-127, 127) + 128) as u8;
    }
}

/// `x` rounded to the nearest integer, saturated, NaN as 0 (`as` does both). Not
/// `f32::round`: without SSE4.1 that is a library call, and a query rounds each of its
/// components (a profile of MiniLM queries put 0.65% of all samples in `roundf`).
#[inline]
fn round(x: f32) -> i32 {
    // Not 0.5: 0.49999997 + 0.5 rounds up to 1.0 in f32.
    (x + 0.499_999_97f32.copysign(x)) as i32
}

/// One unit row's bit code: bit `i` is set where component `i` lies above the mean.
fn encode_bits(row: &[f32], inv_norm: f32, mean: &[f32], out: &mut [u64]) {
    out.fill(0);
    for (i, (x, m)) in row.iter().zip(mean).enumerate() {
        if x * inv_norm > *m {
            out[i / 64] |= 1 << (i % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectorize::kernels::codes_dot;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn codes_order_rows_as_their_cosines_do() {
        // 97 distinct rows (row i + 97 would repeat row i).
        let rows: Vec<Vec<f32>> = (0..97)
            .map(|i| {
                (0..48)
                    .map(|d| ((i * 31 + d * 17) % 97) as f32 - 48.0 + (d as f32) * 0.5)
                    .collect()
            })
            .collect();
        let inv: Vec<f32> = rows
            .iter()
            .map(|r| 1.0 / r.iter().map(|x| x * x).sum::<f32>().sqrt())
            .collect();
        let codes = Codes::fit(48, rows.len(), &|s| &rows[s], &inv);
        let query = unit(&rows[7]);
        let q = codes.query(&query);
        let cosine =
            |s: usize| -> f32 { unit(&rows[s]).iter().zip(&query).map(|(a, b)| a * b).sum() };
        // The best by code is the row itself, and the codes' order agrees with the exact
        // one on pairs whose cosines differ clearly.
        let best = (0..rows.len())
            .max_by_key(|&s| codes_dot(&q, codes.row(s as u32)))
            .unwrap();
        assert_eq!(best, 7);
        for a in 0..rows.len() {
            for b in 0..rows.len() {
                if cosine(a) > cosine(b) + 0.05 {
                    assert!(
                        codes_dot(&q, codes.row(a as u32)) > codes_dot(&q, codes.row(b as u32)),
                        "rows {a} and {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn bits_keep_the_rows_whose_bits_differ_least() {
        // 70 dimensions (two words, the second partial): row i has its first i
        // components negative, and one more row is half and half.
        let rows: Vec<Vec<f32>> = (0..71)
            .map(|i| (0..70).map(|d| if d < i { -1.0 } else { 1.0 }).collect())
            .chain(std::iter::once(
                (0..70).map(|d| if d < 35 { 1.0 } else { -1.0 }).collect(),
            ))
            .collect();
        let inv: Vec<f32> = rows.iter().map(|_| 1.0 / 70f32.sqrt()).collect();
        let mut codes = Codes::fit(70, rows.len(), &|s| &rows[s], &inv);
        codes.mean.fill(0.0);
        for (s, r) in rows.iter().enumerate() {
            codes.set(s, r, inv[s]);
        }
        // The query is row 10: row j differs from it in |j - 10| bits.
        let q = codes.query_bits(&rows[10]);
        let all: Vec<u32> = (0..rows.len() as u32).collect();
        assert_eq!(codes.nearest_by_bits(&q, &all, 5), [8, 9, 10, 11, 12]);
        // Ties at the cut are taken in the order given, up to the count asked for.
        assert_eq!(codes.nearest_by_bits(&q, &all, 4), [8, 9, 10, 11]);
        assert_eq!(codes.nearest_by_bits(&q, &all[..3], 5), [0, 1, 2]);
        let mut differ = Vec::new();
        kernels::hamming_rows(&q, &codes.bits, &[10, 0, 70, 71], &mut differ);
        assert_eq!(differ, [0, 10, 60, 45]);
    }

    #[test]
    fn set_appends_or_overwrites_and_clamps_beyond_the_fitted_range() {
        let rows = [vec![0.5f32, -0.5], vec![0.1, 0.2]];
        let inv = [1.0f32, 1.0];
        let mut codes = Codes::fit(2, 2, &|s| &rows[s], &inv);
        assert_eq!(codes.row(0), &[255, 1]);
        codes.set(2, &[1.0, 0.0], 1.0);
        assert_eq!(codes.row(2), &[255, 128], "clamped to the fitted range");
        codes.set(0, &[0.0, 0.25], 1.0);
        assert_eq!(codes.row(0), &[128, 192]);
        assert!(!codes.stale(3));
        assert!(codes.stale(4));
        // A zero vector and non-finite input encode to the middle, not to garbage.
        codes.set(1, &[f32::NAN, 0.0], 0.0);
        assert_eq!(codes.row(1), &[128, 128]);
    }
}
