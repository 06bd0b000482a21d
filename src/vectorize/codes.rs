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
//! above the mean of all unit rows, with two numbers that turn the query's dot product
//! with those signs into an estimate of the row's similarity and a bound on that
//! estimate's error (the estimator of RaBitQ, Gao and Long, SIGMOD 2024, without its
//! random rotation). A scan of many rows estimates them all from their bits (with the
//! word of the two numbers, a seventh of the byte codes' bytes at 384 dimensions),
//! measures the best few hundred on the byte codes, and then
//! every other row whose bound still reaches the best it found: few for a query near
//! the rows, more for one unlike all of them, whose estimates cannot tell the rows
//! apart (docs/benchmarks.md).

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
    /// Per slot, `words` words of bit code, then one word that holds the row's
    /// [`SignTerms`]: a scan reads both, and one fetch brings them together.
    bits: Vec<u64>,
    words: usize,
}

/// How a row's signs relate to the row. With `u` the unit row minus the mean and `s`
/// its signs (±1 per dimension), `u·q ≈ gain · (s·q)` for a unit query `q`, and the
/// error is below `spread` about 68% of the time and below 3 x `spread` about 99.7% of
/// it (measured without the random rotation RaBitQ's proof assumes: 0.25% beyond 3x on
/// both benchmark sets, for queries near the rows and unlike all of them alike).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct SignTerms {
    gain: f32,
    spread: f32,
}

impl SignTerms {
    fn to_word(self) -> u64 {
        u64::from(self.gain.to_bits()) | u64::from(self.spread.to_bits()) << 32
    }

    fn from_word(w: u64) -> Self {
        SignTerms {
            gain: f32::from_bits(w as u32),
            spread: f32::from_bits((w >> 32) as u32),
        }
    }
}

/// Rows' similarities to a query as their bit codes estimate them, in the order the
/// rows were given, and the largest each can be at [`BOUND_SPREADS`] times its
/// estimate's spread. Never NaN: where the arithmetic gives one, +∞.
pub(crate) struct Estimates {
    pub(crate) similarity: Vec<f32>,
    pub(crate) at_most: Vec<f32>,
}

impl Estimates {
    /// A line that at least `n` estimates reach (all of them if there are no more),
    /// and few more than `n`: the lower edge of the bin of a 1,024-bin histogram
    /// between the smallest and the largest finite estimate where the count from the
    /// top reaches `n`. Two passes of simple arithmetic; an exact selection moved the
    /// rows around and cost more than estimating them.
    pub(crate) fn line_reached_by(&self, n: usize) -> f32 {
        const BINS: usize = 1024;
        let finite = self.similarity.iter().filter(|e| e.is_finite());
        let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &e| {
            (lo.min(e), hi.max(e))
        });
        if n >= self.similarity.len() || lo > hi {
            return f32::NEG_INFINITY;
        }
        if lo == hi {
            return lo;
        }
        let scale = BINS as f32 / (hi - lo);
        let mut counts = [0usize; BINS];
        for &e in &self.similarity {
            // +∞ saturates into the top bin.
            counts[(((e - lo) * scale) as usize).min(BINS - 1)] += 1;
        }
        let mut reached = 0;
        for (bin, count) in counts.iter().enumerate().rev() {
            reached += count;
            if reached >= n {
                return lo + bin as f32 / scale;
            }
        }
        f32::NEG_INFINITY
    }
}

/// Added to every bound for the estimate's own f32 arithmetic, so that a row whose
/// spread is zero (its components all differ from the mean by as much) is not ruled
/// out by a rounding of its exact estimate.
const ARITHMETIC_SLACK: f32 = 1e-5;

/// How many spreads above its estimate a row's similarity is taken to reach at most.
/// At 2 the bound failed for 4.5% of rows and a scan of queries unlike every row kept
/// 0.99 of the true top 10; at 3, 0.25% and 1.0, measuring twice as many rows for those
/// queries and, for queries near the rows, almost none more (docs/benchmarks.md).
const BOUND_SPREADS: f32 = 3.0;

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
            bits: pages::zeroed(slots * (words + 1)),
            words,
        };
        let (scale, mean) = (&codes.scale, &codes.mean);
        codes
            .bytes
            .par_chunks_mut(dim.max(1))
            .zip(codes.bits.par_chunks_mut(words + 1))
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
        let bits = slot_mut(&mut self.bits, slot, self.words + 1);
        encode_bits(row, inv_norm, &self.mean, bits);
    }

    /// The terms of `slot`'s bit code.
    fn terms(&self, slot: u32) -> SignTerms {
        SignTerms::from_word(self.bits[(slot as usize + 1) * (self.words + 1) - 1])
    }

    /// The similarities of `slots` to the query `v` (of any length) as their bit codes
    /// estimate them, with bounds.
    pub(crate) fn estimates(&self, v: &[f32], slots: &[u32]) -> Estimates {
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let unit: Vec<f64> = v.iter().map(|x| f64::from(*x) * inv).collect();
        // The query in bytes, scaled to its largest component and padded to whole words.
        let largest = unit.iter().fold(0f64, |m, x| m.max(x.abs()));
        let k = if largest > 0.0 && largest.is_finite() {
            127.0 / largest
        } else {
            0.0
        };
        let mut q = vec![0i8; self.words * 64];
        for (b, x) in q.iter_mut().zip(&unit) {
            *b = round((x * k) as f32).clamp(-127, 127) as i8;
        }
        let total: i32 = q.iter().map(|&b| i32::from(b)).sum();
        // unit row · q = mean · q + u · q, and s · q = (bytes where s is +1) - (the others).
        let base = unit
            .iter()
            .zip(&self.mean)
            .map(|(x, m)| x * f64::from(*m))
            .sum::<f64>() as f32;
        let per_byte = if k > 0.0 { (1.0 / k) as f32 } else { 0.0 };
        // Rounding the query moves s · q by about sqrt(dim / 12) bytes.
        let rounding = (self.dim as f32 / 12.0).sqrt() * per_byte;
        let mut sums = Vec::with_capacity(slots.len());
        kernels::sign_sums(&q, &self.bits, self.words + 1, slots, &mut sums);
        let (mut similarity, mut at_most) = (vec![0f32; slots.len()], vec![0f32; slots.len()]);
        for (((&s, sum), e), most) in slots
            .iter()
            .zip(sums)
            .zip(&mut similarity)
            .zip(&mut at_most)
        {
            let t = self.terms(s);
            let similarity = base + t.gain * (2 * sum - total) as f32 * per_byte;
            let bound =
                similarity + BOUND_SPREADS * (t.spread + t.gain * rounding) + ARITHMETIC_SLACK;
            // An estimate that is not a number rules nothing out: such rows rank first.
            *e = if similarity.is_nan() {
                f32::INFINITY
            } else {
                similarity
            };
            *most = if bound.is_nan() { f32::INFINITY } else { bound };
        }
        Estimates {
            similarity,
            at_most,
        }
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

/// One unit row's bit code (bit `i` is set where component `i` lies above the mean),
/// followed in `out`'s last word by the terms that turn it into estimates.
fn encode_bits(row: &[f32], inv_norm: f32, mean: &[f32], out: &mut [u64]) {
    out.fill(0);
    let (mut l1, mut l2) = (0f64, 0f64);
    for (i, (x, m)) in row.iter().zip(mean).enumerate() {
        let u = x * inv_norm - m;
        if u > 0.0 {
            out[i / 64] |= 1 << (i % 64);
        }
        l1 += f64::from(u.abs());
        l2 += f64::from(u) * f64::from(u);
    }
    out[out.len() - 1] = sign_terms(mean.len(), l1, l2).to_word();
}

/// The terms of a row whose difference `u` from the mean has the norms `|u|₁ = l1`
/// and `|u|² = l2`, in `dim` dimensions.
fn sign_terms(dim: usize, l1: f64, l2: f64) -> SignTerms {
    let dim = dim as f64;
    if !l1.is_finite() || !l2.is_finite() {
        // Nothing can be said of it: every scan measures it.
        return SignTerms {
            gain: 0.0,
            spread: f32::INFINITY,
        };
    }
    if l1 == 0.0 {
        // The row is the mean: its similarity is the mean's, exactly.
        return SignTerms::default();
    }
    // RaBitQ: with o = u / |u| and the signs scaled to a unit vector s / √dim, their
    // cosine a = |u|₁ / (√dim |u|), and o · q ≈ (s / √dim) · q / a, which is off by
    // sqrt(1 - a²) / (a √(dim - 1)) standard deviations of a unit query's projection.
    let norm = l2.sqrt();
    let a = (l1 / (dim.sqrt() * norm)).min(1.0);
    let spread = if dim > 1.0 {
        norm * (1.0 - a * a).sqrt() / (a * (dim - 1.0).sqrt())
    } else {
        f64::INFINITY
    };
    SignTerms {
        gain: (l2 / l1) as f32,
        spread: spread as f32,
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
    fn signs_give_a_row_of_equal_magnitudes_its_exact_similarity() {
        // 70 dimensions (two words, the second partial), every component ±1 around a
        // zero mean: the signs are the row itself, so the estimate is exact but for
        // the query's rounding, and its spread is zero.
        let rows: Vec<Vec<f32>> = (0..71)
            .map(|i| (0..70).map(|d| if d < i { -1.0 } else { 1.0 }).collect())
            .collect();
        let inv: Vec<f32> = rows.iter().map(|_| 1.0 / 70f32.sqrt()).collect();
        let mut codes = Codes::fit(70, rows.len(), &|s| &rows[s], &inv);
        codes.mean.fill(0.0);
        for (s, r) in rows.iter().enumerate() {
            codes.set(s, r, inv[s]);
        }
        assert!(
            (0..rows.len() as u32).all(|s| codes.terms(s).spread < 1e-6),
            "{:?}",
            codes.terms(3)
        );
        let all: Vec<u32> = (0..rows.len() as u32).collect();
        let e = codes.estimates(&rows[10], &all);
        for s in 0..rows.len() {
            // Row j differs from row 10 in |j - 10| of 70 components.
            let exact = 1.0 - 2.0 * (s as f32 - 10.0).abs() / 70.0;
            let got = e.similarity[s];
            assert!((got - exact).abs() < 1e-5, "row {s}: {got} vs {exact}");
            assert!(e.at_most[s] >= exact, "row {s}");
        }
        // The line is reached by at least n rows, and here (distinct estimates, 70
        // rows over 1,024 bins) by exactly n.
        for n in [1, 3, 40, 71] {
            let line = e.line_reached_by(n);
            let reaching = e.similarity.iter().filter(|&&s| s >= line).count();
            assert_eq!(reaching, n, "n = {n}, line {line}");
        }
        assert_eq!(e.line_reached_by(72), f32::NEG_INFINITY);
        let equal = Estimates {
            similarity: vec![0.5; 4],
            at_most: vec![0.5; 4],
        };
        assert_eq!(equal.line_reached_by(1), 0.5, "ties: all of them");
    }

    #[test]
    fn estimates_bound_the_similarity_of_nearly_every_row() {
        // 2,000 rows of 256 dimensions around 10 centres; queries near the rows and
        // unlike any of them (from other centres).
        let mut seed = 5u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let mut around = |n: usize| -> Vec<Vec<f32>> {
            let centres: Vec<Vec<f32>> = (0..10)
                .map(|_| (0..256).map(|_| next()).collect())
                .collect();
            (0..n)
                .map(|i| centres[i % 10].iter().map(|c| c + 0.3 * next()).collect())
                .collect()
        };
        let rows = around(2000);
        let inv: Vec<f32> = rows
            .iter()
            .map(|r| 1.0 / r.iter().map(|x| x * x).sum::<f32>().sqrt())
            .collect();
        let codes = Codes::fit(256, rows.len(), &|s| &rows[s], &inv);
        let all: Vec<u32> = (0..rows.len() as u32).collect();
        let near: Vec<Vec<f32>> = rows.iter().step_by(97).cloned().collect();
        for queries in [near, around(20)] {
            let (mut beyond, mut total, mut error) = (0, 0, 0f64);
            for q in &queries {
                let q = unit(q);
                let e = codes.estimates(&q, &all);
                for (s, row) in rows.iter().enumerate() {
                    let exact: f32 = unit(row).iter().zip(&q).map(|(a, b)| a * b).sum();
                    beyond += usize::from(exact > e.at_most[s]);
                    error += f64::from((exact - e.similarity[s]).abs());
                    total += 1;
                }
            }
            let (beyond, error) = (beyond as f64 / total as f64, error / total as f64);
            assert!(beyond < 0.01, "{beyond} of the rows beyond their bound");
            assert!(error < 0.05, "mean error {error}");
        }
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
