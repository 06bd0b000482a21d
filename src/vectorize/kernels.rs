//! Distance kernels: dot product and squared Euclidean distance over `f32`, with
//! hand-written SIMD chosen once at run time (AVX-512F, AVX2+FMA, or scalar).
//!
//! Cosine similarity is a dot product of vectors normalised at ingest, so these two
//! kernels serve all three Vectorize metrics. Every SIMD kernel the CPU running the tests
//! supports is tested against the scalar one on random inputs of every length up to
//! 1,536; one it does not support is named in a notice on stderr.

use std::sync::OnceLock;

/// Which implementation the dispatcher picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, four independent accumulators.
    Scalar,
    /// x86-64 AVX2 with fused multiply-add.
    Avx2Fma,
    /// x86-64 AVX-512 Foundation.
    Avx512,
}

type Kernel = fn(&[f32], &[f32]) -> f32;

struct Kernels {
    isa: Isa,
    dot: Kernel,
    l2: Kernel,
    /// AVX-512 VNNI (and BW, for the masked byte loads): the SIMD of the byte-code and
    /// bit-code kernels.
    vnni: bool,
}

#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512bw")
}

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Kernels {
                    isa: Isa::Avx512,
                    dot: x86::dot_avx512_entry,
                    l2: x86::l2_avx512_entry,
                    vnni: has_vnni(),
                };
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Kernels {
                    isa: Isa::Avx2Fma,
                    dot: x86::dot_avx2_entry,
                    l2: x86::l2_avx2_entry,
                    vnni: false,
                };
            }
        }
        Kernels {
            isa: Isa::Scalar,
            dot: dot_scalar,
            l2: l2_squared_scalar,
            vnni: false,
        }
    })
}

/// The instruction set the kernels use on this machine.
pub fn isa() -> Isa {
    kernels().isa
}

/// Σ aᵢbᵢ. Panics if the lengths differ.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different dimensions");
    (kernels().dot)(a, b)
}

/// Σ (aᵢ − bᵢ)². Panics if the lengths differ.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different dimensions");
    (kernels().l2)(a, b)
}

/// `[a·r₀, a·r₁, a·r₂, a·r₃]`, each bit for bit what [`dot`] gives: on AVX-512 in one
/// pass that loads each piece of `a` once for four rows and keeps four rows' loads in
/// flight, as a graph walk measuring a node's neighbours can. Panics if a length differs.
#[inline]
pub fn dot4(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    for r in rows {
        assert_eq!(a.len(), r.len(), "vectors of different dimensions");
    }
    #[cfg(target_arch = "x86_64")]
    if kernels().isa == Isa::Avx512 {
        // SAFETY: AVX-512F was detected when the table chose that ISA; lengths checked.
        return unsafe { x86::dot4_avx512(a, rows) };
    }
    rows.map(|r| (kernels().dot)(a, r))
}

/// Whether the byte-code kernels below run in SIMD here (AVX-512 VNNI): where they do
/// not, a walk over byte codes would be slower than one over the f32 rows.
pub fn codes_fast() -> bool {
    kernels().vnni
}

/// `[Σ qᵢ·r₀ᵢ, …, Σ qᵢ·r₃ᵢ]` for signed query bytes and unsigned row bytes (the graph
/// walk's byte codes, see `vectorize::codes`), exactly; on AVX-512 VNNI 64 products per
/// instruction. Panics if a length differs.
#[inline]
pub fn codes_dot4(q: &[i8], rows: [&[u8]; 4]) -> [i32; 4] {
    for r in rows {
        assert_eq!(q.len(), r.len(), "codes of different lengths");
    }
    #[cfg(target_arch = "x86_64")]
    if kernels().vnni {
        // SAFETY: AVX-512 VNNI and BW were detected; lengths checked.
        return unsafe { x86::codes_dot4_vnni(q, rows) };
    }
    rows.map(|r| codes_dot_scalar(q, r))
}

/// [`codes_dot4`] for one row.
#[inline]
pub fn codes_dot(q: &[i8], row: &[u8]) -> i32 {
    codes_dot4(q, [row; 4])[0]
}

/// The reference for [`codes_dot4`]. Exact: at most 1,536 products of at most
/// 128 · 255 in magnitude stay far inside `i32`.
pub fn codes_dot_scalar(q: &[i8], row: &[u8]) -> i32 {
    q.iter()
        .zip(row)
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum()
}

/// Asks the CPU to start loading `row` into cache; the graph walk calls it for a node's
/// neighbours before measuring them, so that the loads overlap.
#[inline(always)]
pub fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, even on an invalid address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch(row.as_ptr().cast::<i8>(), _MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// For each of `slots`, the sum of the query bytes `q` where its row of `bits` has a
/// bit set, appended to `out`. Row `s` starts at word `s * stride` and has
/// `q.len() / 64` words (a row may be followed by other words of its own). With the
/// row's other components counted negative, this is the query's dot product with the
/// row's signs, from which `vectorize::codes` estimates the row's similarity. Exact;
/// panics unless `q` is whole words long, within the stride, and every slot's row is
/// inside `bits`.
pub fn sign_sums(q: &[i8], bits: &[u64], stride: usize, slots: &[u32], out: &mut Vec<i32>) {
    assert!(
        q.len().is_multiple_of(64),
        "the query is not whole words long"
    );
    assert!(q.len() / 64 <= stride, "the query is longer than a row");
    if let Some(&last) = slots.iter().max() {
        assert!(
            (last as usize + 1) * stride <= bits.len(),
            "slot past the bits"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if kernels().vnni {
        // SAFETY: AVX-512 VNNI and BW were detected; lengths checked.
        return unsafe { x86::sign_sums_vnni(q, bits, stride, slots, out) };
    }
    sign_sums_scalar(q, bits, stride, slots, out)
}

/// Rows are a line or two of bits each, read in an order the hardware cannot guess:
/// [`sign_sums`] fetches this many rows ahead.
const SIGNS_AHEAD: usize = 16;

/// The reference for [`sign_sums`]: each set bit adds its query byte.
pub fn sign_sums_scalar(q: &[i8], bits: &[u64], stride: usize, slots: &[u32], out: &mut Vec<i32>) {
    let words = q.len() / 64;
    out.reserve(slots.len());
    for (i, &s) in slots.iter().enumerate() {
        if let Some(&next) = slots.get(i + SIGNS_AHEAD) {
            prefetch_all(&bits[next as usize * stride..][..stride]);
        }
        let mut sum = 0;
        for (w, &word) in bits[s as usize * stride..][..words].iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                sum += i32::from(q[w * 64 + rest.trailing_zeros() as usize]);
                rest &= rest - 1;
            }
        }
        out.push(sum);
    }
}

/// [`prefetch`] for every cache line of `row`, for a row needed a little later whole.
#[inline(always)]
pub fn prefetch_all<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = row.as_ptr() as usize;
        let end = start + std::mem::size_of_val(row);
        // From the line the row starts in, so that its last line is fetched too.
        for line in (start & !63..end).step_by(64) {
            // SAFETY: prefetching is a hint; it never faults, whatever the address.
            unsafe { _mm_prefetch(line as *const i8, _MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// The reference dot product, with four accumulators like the SIMD versions. Plain
/// multiply-add, not `mul_add`: without FMA hardware that is a slow library call.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        for j in 0..4 {
            acc[j] += a[i + j] * b[i + j];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// The reference squared Euclidean distance.
pub fn l2_squared_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        for j in 0..4 {
            let d = a[i + j] - b[i + j];
            acc[j] += d * d;
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks..a.len() {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

/// Σ aᵢbᵢ accumulated in f64, where an f32 sum would overflow or lose its digits to
/// subnormal products: each product of two f32 values is exact in f64.
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different dimensions");
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// Σ (aᵢ − bᵢ)² accumulated in f64 (see [`dot_f64`]).
pub fn l2_squared_f64(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different dimensions");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Every kernel this machine can run, by name, for tests and benchmarks.
pub fn available() -> Vec<(Isa, Kernel, Kernel)> {
    let mut out: Vec<(Isa, Kernel, Kernel)> = vec![(Isa::Scalar, dot_scalar, l2_squared_scalar)];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            out.push((Isa::Avx2Fma, x86::dot_avx2_entry, x86::l2_avx2_entry));
        }
        if std::is_x86_feature_detected!("avx512f") {
            out.push((Isa::Avx512, x86::dot_avx512_entry, x86::l2_avx512_entry));
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // The entry points are safe fns for the dispatch table; each is only ever installed
    // after the matching `is_x86_feature_detected!` check.
    pub fn dot_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: installed only when AVX2 and FMA are present; lengths checked by callers.
        unsafe { dot_avx2(a, b) }
    }
    pub fn l2_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { l2_avx2(a, b) }
    }
    pub fn dot_avx512_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: installed only when AVX-512F is present.
        unsafe { dot_avx512(a, b) }
    }
    pub fn l2_avx512_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { l2_avx512(a, b) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(v, 1);
        let lo = _mm256_castps256_ps128(v);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Four 8-wide accumulators (32 floats per step) hide the FMA latency.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, slot) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                let y = _mm256_loadu_ps(pb.add(i + 8 * k));
                *slot = _mm256_fmadd_ps(x, y, *slot);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while i < n {
            sum = (*pa.add(i)).mul_add(*pb.add(i), sum);
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, slot) in acc.iter_mut().enumerate() {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * k)),
                    _mm256_loadu_ps(pb.add(i + 8 * k)),
                );
                *slot = _mm256_fmadd_ps(d, d, *slot);
            }
            i += 32;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while i < n {
            let d = *pa.add(i) - *pb.add(i);
            sum = d.mul_add(d, sum);
            i += 1;
        }
        sum
    }

    /// Four 16-wide accumulators; the tail is one masked load, so no scalar loop.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (k, slot) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * k));
                let y = _mm512_loadu_ps(pb.add(i + 16 * k));
                *slot = _mm512_fmadd_ps(x, y, *slot);
            }
            i += 64;
        }
        while i + 16 <= n {
            acc[0] = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i)),
                _mm512_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
            let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }

    /// [`dot_avx512`] for four rows at once, with the same accumulators and the same
    /// order of additions per row, so each result equals its single-row one exactly.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot4_avx512(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
        let n = a.len();
        let pa = a.as_ptr();
        let pr = rows.map(|r| r.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        let mut i = 0;
        while i + 64 <= n {
            for k in 0..4 {
                let x = _mm512_loadu_ps(pa.add(i + 16 * k));
                for (row, p) in acc.iter_mut().zip(pr) {
                    row[k] = _mm512_fmadd_ps(x, _mm512_loadu_ps(p.add(i + 16 * k)), row[k]);
                }
            }
            i += 64;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            for (row, p) in acc.iter_mut().zip(pr) {
                row[0] = _mm512_fmadd_ps(x, _mm512_loadu_ps(p.add(i)), row[0]);
            }
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
            for (row, p) in acc.iter_mut().zip(pr) {
                row[1] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(mask, p.add(i)), row[1]);
            }
        }
        acc.map(|row| {
            _mm512_reduce_add_ps(_mm512_add_ps(
                _mm512_add_ps(row[0], row[1]),
                _mm512_add_ps(row[2], row[3]),
            ))
        })
    }

    /// Four rows of unsigned bytes against one of signed bytes: `vpdpbusd` adds four
    /// byte products into each 32-bit lane, so 64 products per instruction; the tail is
    /// one masked load. Integer sums: exact in any order.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn codes_dot4_vnni(q: &[i8], rows: [&[u8]; 4]) -> [i32; 4] {
        let n = q.len();
        let pq = q.as_ptr();
        let pr = rows.map(|r| r.as_ptr());
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut i = 0;
        while i + 64 <= n {
            let x = _mm512_loadu_si512(pq.add(i).cast());
            for (a, p) in acc.iter_mut().zip(pr) {
                *a = _mm512_dpbusd_epi32(*a, _mm512_loadu_si512(p.add(i).cast()), x);
            }
            i += 64;
        }
        if i < n {
            let mask: __mmask64 = (1u64 << (n - i)) - 1;
            let x = _mm512_maskz_loadu_epi8(mask, pq.add(i));
            for (a, p) in acc.iter_mut().zip(pr) {
                let y = _mm512_maskz_loadu_epi8(mask, p.add(i).cast());
                *a = _mm512_dpbusd_epi32(*a, y, x);
            }
        }
        acc.map(|a| _mm512_reduce_add_epi32(a))
    }

    /// [`super::sign_sums`]: a word of bits becomes a mask of 64 bytes of one, whose
    /// products with the query's 64 bytes VNNI sums in one instruction. Rows go four
    /// at a time, so that their sums are folded together: one horizontal sum per row
    /// cost as much as the products.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn sign_sums_vnni(
        q: &[i8],
        bits: &[u64],
        stride: usize,
        slots: &[u32],
        out: &mut Vec<i32>,
    ) {
        let words = q.len() / 64;
        let ones = _mm512_set1_epi8(1);
        // A closure: it inherits this function's features, and is inlined.
        let sums = |s: u32| {
            let row = &bits[s as usize * stride..][..words];
            let mut acc = _mm512_setzero_si512();
            for (w, &word) in row.iter().enumerate() {
                let x = _mm512_loadu_si512(q.as_ptr().add(w * 64).cast());
                acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_mov_epi8(word, ones), x);
            }
            acc
        };
        out.reserve(slots.len());
        let fours = slots.len() / 4 * 4;
        for (i, c) in slots[..fours].chunks_exact(4).enumerate() {
            for &next in slots.iter().skip(i * 4 + super::SIGNS_AHEAD).take(4) {
                super::prefetch_all(&bits[next as usize * stride..][..stride]);
            }
            let [a, b, c, d] = [c[0], c[1], c[2], c[3]].map(sums);
            // Within each 128-bit lane: [a, b, c, d] partial sums, then the four lanes
            // added together.
            let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
            let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
            let t = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
            let t = _mm512_add_epi32(t, _mm512_shuffle_i32x4::<0b01_00_11_10>(t, t));
            let t = _mm512_add_epi32(t, _mm512_shuffle_i32x4::<0b10_11_00_01>(t, t));
            let mut four = [0i32; 4];
            _mm_storeu_si128(four.as_mut_ptr().cast(), _mm512_castsi512_si128(t));
            out.extend(four);
        }
        for &s in &slots[fours..] {
            out.push(_mm512_reduce_add_epi32(sums(s)));
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (k, slot) in acc.iter_mut().enumerate() {
                let d = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * k)),
                    _mm512_loadu_ps(pb.add(i + 16 * k)),
                );
                *slot = _mm512_fmadd_ps(d, d, *slot);
            }
            i += 64;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            );
            acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sums of up to 1,536 products in different orders differ by rounding only: compare
    /// with a tolerance scaled by the magnitude of the terms.
    fn close(got: f32, want: f32, scale: f32) -> bool {
        (got - want).abs() <= 1e-5 * scale.max(1.0)
    }

    fn vectors() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (0usize..=1536).prop_flat_map(|n| {
            (
                proptest::collection::vec(-4.0f32..4.0, n),
                proptest::collection::vec(-4.0f32..4.0, n),
            )
        })
    }

    proptest! {
        #[test]
        fn every_kernel_agrees_with_scalar((a, b) in vectors()) {
            let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs() + (x - y).powi(2)).sum();
            for (isa, dot_k, l2_k) in available() {
                prop_assert!(close(dot_k(&a, &b), dot_scalar(&a, &b), scale), "{isa:?} dot");
                prop_assert!(close(l2_k(&a, &b), l2_squared_scalar(&a, &b), scale), "{isa:?} l2");
            }
        }

        /// Search and exact scans measure through `dot4`, queries by id and brute force
        /// through `dot`: a vector's score must not depend on which path found it.
        #[test]
        fn dot4_is_dot_bit_for_bit((a, b) in vectors(), shift in 0usize..4) {
            let rows: Vec<Vec<f32>> = (0..4)
                .map(|r| b.iter().map(|x| x * (r + shift) as f32 - 1.0).collect())
                .collect();
            let got = dot4(&a, [&rows[0], &rows[1], &rows[2], &rows[3]]);
            for (r, g) in rows.iter().zip(got) {
                prop_assert_eq!(g.to_bits(), dot(&a, r).to_bits());
            }
        }
    }

    fn codes() -> impl Strategy<Value = (Vec<i8>, Vec<u8>)> {
        (0usize..=1536).prop_flat_map(|n| {
            (
                proptest::collection::vec(any::<i8>(), n),
                proptest::collection::vec(any::<u8>(), n),
            )
        })
    }

    proptest! {
        /// Integer sums: the SIMD kernel must equal the scalar one exactly, on every
        /// length (the tail is a masked load) and at the extremes of both byte ranges.
        #[test]
        fn byte_code_kernels_are_exact((q, r) in codes(), shift in 0u8..4) {
            let rows: Vec<Vec<u8>> = (0..4u8)
                .map(|k| r.iter().map(|x| x.wrapping_mul(k + shift)).collect())
                .collect();
            let got = codes_dot4(&q, [&rows[0], &rows[1], &rows[2], &rows[3]]);
            for (row, g) in rows.iter().zip(got) {
                prop_assert_eq!(g, codes_dot_scalar(&q, row));
                prop_assert_eq!(codes_dot(&q, row), g);
            }
        }
    }

    proptest! {
        /// Any width, rows in any order and followed by other words or not, query bytes
        /// over their whole range: the SIMD kernel's sums equal the bit-by-bit
        /// reference's, which equal a plain sum.
        #[test]
        fn sign_sums_are_exact(
            (q, bits, extra) in (1usize..=13, 0usize..3).prop_flat_map(|(w, extra)| {
                (
                    proptest::collection::vec(any::<i8>(), w * 64),
                    proptest::collection::vec(any::<u64>(), (w + extra) * 40),
                    Just(extra),
                )
            }),
            order in proptest::collection::vec(0u32..40, 0..60),
        ) {
            let stride = q.len() / 64 + extra;
            let (mut got, mut reference) = (Vec::new(), Vec::new());
            sign_sums(&q, &bits, stride, &order, &mut got);
            sign_sums_scalar(&q, &bits, stride, &order, &mut reference);
            let want: Vec<i32> = order
                .iter()
                .map(|&s| {
                    (0..q.len())
                        .filter(|&i| bits[s as usize * stride + i / 64] >> (i % 64) & 1 == 1)
                        .map(|i| i32::from(q[i]))
                        .sum()
                })
                .collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(reference, want);
        }
    }

    #[test]
    fn byte_code_kernels_at_the_extremes_or_reported_as_skipped() {
        use std::io::Write;
        if !codes_fast() {
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE kernels.rs: codes_dot4_vnni and sign_sums_vnni are NOT tested on \
                 this machine: its CPU lacks avx512vnni and avx512bw. Run the tests on one \
                 that has it."
            );
        }
        for n in [0, 1, 63, 64, 65, 384, 768, 1535, 1536] {
            let q = vec![i8::MIN; n];
            let r = vec![u8::MAX; n];
            let want = -128 * 255 * n as i32;
            assert_eq!(codes_dot4(&q, [&r, &r, &r, &r]), [want; 4], "n = {n}");
        }
    }

    /// The SIMD kernels compiled for this architecture, with the CPU features each needs.
    fn compiled_simd() -> Vec<(Isa, &'static str, &'static str, bool)> {
        #[cfg(target_arch = "x86_64")]
        {
            vec![
                (
                    Isa::Avx2Fma,
                    "dot_avx2, l2_avx2",
                    "avx2 and fma",
                    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
                ),
                (
                    Isa::Avx512,
                    "dot_avx512, dot4_avx512, l2_avx512",
                    "avx512f",
                    std::is_x86_feature_detected!("avx512f"),
                ),
            ]
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Vec::new()
        }
    }

    /// Every compiled SIMD kernel the CPU can run is among `available()` (so the tests
    /// above compare it with the scalar kernel) and is compared here on fixed inputs of
    /// every length from 0 to 300 against an f64 reference; one the CPU cannot run is
    /// named in a notice, written straight to stderr so that `cargo test` shows it
    /// (libtest captures `eprintln!` of passing tests).
    #[test]
    fn every_simd_kernel_is_tested_or_reported_as_skipped() {
        use std::io::Write;
        let kernels = available();
        let available: Vec<Isa> = kernels.iter().map(|(isa, _, _)| *isa).collect();
        for (isa, names, features, runs) in compiled_simd() {
            if !runs {
                assert!(!available.contains(&isa));
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTICE kernels.rs: the {isa:?} kernels ({names}) are NOT tested on this \
                     machine: its CPU lacks {features}. Run the tests on one that has it."
                );
                continue;
            }
            assert!(
                available.contains(&isa),
                "{isa:?} runs here but is not tested"
            );
            let (_, dot_k, l2_k) = *kernels.iter().find(|(i, _, _)| *i == isa).unwrap();
            for n in 0..=300 {
                let a: Vec<f32> = (0..n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0)
                    .collect();
                let b: Vec<f32> = (0..n)
                    .map(|i| ((i * 53 % 89) as f32 - 44.0) / 8.0)
                    .collect();
                let scale = (n as f32 + 1.0) * 64.0;
                let (dot, l2) = (dot_f64(&a, &b) as f32, l2_squared_f64(&a, &b) as f32);
                assert!(close(dot_k(&a, &b), dot, scale), "{isa:?} dot, n = {n}");
                assert!(
                    close(dot_k(&a, &b), dot_scalar(&a, &b), scale),
                    "{isa:?} dot, n = {n}"
                );
                assert!(close(l2_k(&a, &b), l2, scale), "{isa:?} l2, n = {n}");
                assert!(
                    close(l2_k(&a, &b), l2_squared_scalar(&a, &b), scale),
                    "{isa:?} l2, n = {n}"
                );
            }
        }
    }

    #[test]
    fn exact_small_cases_and_every_tail_length() {
        for n in 0..=130 {
            let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
            let want_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let want_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            for (isa, dot_k, l2_k) in available() {
                assert_eq!(dot_k(&a, &b), want_dot, "{isa:?} dot, n = {n}");
                assert_eq!(l2_k(&a, &b), want_l2, "{isa:?} l2, n = {n}");
            }
        }
    }
}
