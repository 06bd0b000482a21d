//! Memory for the arrays a query reads at random: the byte and bit codes and the
//! layer-0 lists.
//!
//! A walk touches a few hundred rows of these arrays per query, each on a different
//! 4 KiB page, so on 4 KiB pages nearly every row costs a TLB miss and a page walk
//! before its cache miss. Kernels that hand out 2 MiB pages only to regions that ask
//! (`transparent_hugepage=madvise`, the common default) give them to these arrays
//! when asked before the memory is first touched.

/// A vector of `len` default values whose memory asks for 2 MiB pages before it is
/// written.
pub(crate) fn zeroed<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    advise(v.as_ptr() as usize, len * size_of::<T>());
    v.resize(len, T::default());
    v
}

/// A copy of `values` in memory that asked for 2 MiB pages.
pub(crate) fn copied<T: Copy + Default>(values: impl ExactSizeIterator<Item = T>) -> Vec<T> {
    let mut v = Vec::with_capacity(values.len());
    advise(v.as_ptr() as usize, values.len() * size_of::<T>());
    v.extend(values);
    v
}

const HUGE: usize = 2 << 20;

/// Asks for 2 MiB pages over the whole 2 MiB pages inside `[start, start + bytes)`;
/// smaller regions are left alone. Advice only: where the kernel says no, nothing
/// changes.
fn advise(start: usize, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let (from, to) = (start.next_multiple_of(HUGE), (start + bytes) & !(HUGE - 1));
        if to > from {
            // SAFETY: the range lies inside an allocation this process owns; the advice
            // changes how it is backed, not what it holds.
            unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes, HUGE);
}
