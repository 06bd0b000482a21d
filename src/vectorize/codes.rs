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

use rayon::prelude::*;

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
        let largest = (0..slots)
            .into_par_iter()
            .fold(
                || vec![0f32; dim],
                |mut m, s| {
                    for (m, x) in m.iter_mut().zip(row(s)) {
                        *m = m.max((x * inv_norms[s]).abs());
                    }
                    m
                },
            )
            .reduce(
                || vec![0f32; dim],
                |a, b| a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect(),
            );
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
            bytes: vec![0; slots * dim],
            fitted_for: slots,
        };
        let scale = &codes.scale;
        codes
            .bytes
            .par_chunks_mut(dim.max(1))
            .enumerate()
            .for_each(|(s, out)| encode(row(s), inv_norms[s], scale, out));
        codes
    }

    /// Whether the index has doubled since the scales were fitted.
    pub(crate) fn stale(&self, slots: usize) -> bool {
        slots >= 2 * self.fitted_for
    }

    /// Encodes `row` (with its inverse norm) into `slot`, which is an existing slot or
    /// the next one.
    pub(crate) fn set(&mut self, slot: usize, row: &[f32], inv_norm: f32) {
        let start = slot * self.dim;
        if start == self.bytes.len() {
            self.bytes.resize(start + self.dim, 0);
        }
        encode(
            row,
            inv_norm,
            &self.scale,
            &mut self.bytes[start..start + self.dim],
        );
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
        w.iter().map(|x| (x * k).round() as i8).collect()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.scale.capacity() * 4
    }
}

/// One unit row's code, offset by 128.
fn encode(row: &[f32], inv_norm: f32, scale: &[f32], out: &mut [u8]) {
    for ((o, x), s) in out.iter_mut().zip(row).zip(scale) {
        // `as` saturates, and NaN becomes 0.
        *o = ((x * inv_norm * s).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
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
