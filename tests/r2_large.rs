//! A 2 GiB object streams in and out with bounded memory. Alone in its file so that the
//! process's peak resident memory measures this test only.

use std::io::Read;

use tristore::r2::{R2GetOptions, R2PutOptions, R2Range};
use tristore::Store;

/// Deterministic bytes, generated on the fly so that the test never holds the object:
/// one pseudo-random 1 MiB block, repeated, with each repetition's number stamped in its
/// first eight bytes so that misplaced blocks are caught.
struct Pattern {
    block: Vec<u8>,
    position: u64,
    remaining: u64,
}

impl Pattern {
    fn new(size: u64) -> Self {
        let mut state = 7u64;
        let block = (0..BLOCK)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        Pattern {
            block,
            position: 0,
            remaining: size,
        }
    }
}

const BLOCK: usize = 1 << 20;

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = (self.position % BLOCK as u64) as usize;
        let n = buf.len().min(BLOCK - at).min(self.remaining as usize);
        buf[..n].copy_from_slice(&self.block[at..at + n]);
        let stamp = (self.position / BLOCK as u64).to_le_bytes();
        if at < 8 {
            let end = (at + n).min(8);
            buf[..end - at].copy_from_slice(&stamp[at..end]);
        }
        self.position += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The `length` bytes of the pattern at `offset`, computed without the bytes before.
fn pattern_at(offset: u64, length: u64) -> Vec<u8> {
    let mut pattern = Pattern::new(length);
    pattern.position = offset;
    let mut out = vec![0u8; length as usize];
    pattern.read_exact(&mut out).unwrap();
    out
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_gib_streaming_put_and_get_with_bounded_memory() {
    const SIZE: u64 = 2 << 30;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.r2().create_bucket("big").unwrap();
    let bucket = store.r2().bucket("big").unwrap();
    let before = peak_rss_kib();

    let mut source = Pattern::new(SIZE);
    let put = bucket
        .put_reader("two-gib", &mut source, SIZE, &R2PutOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(put.size, SIZE);

    let mut expected = Pattern::new(SIZE);
    let mut body = bucket
        .get("two-gib", &R2GetOptions::default())
        .unwrap()
        .unwrap()
        .body
        .unwrap();
    let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut total = 0u64;
    loop {
        let n = body.read(&mut got).unwrap();
        if n == 0 {
            break;
        }
        expected.read_exact(&mut want[..n]).unwrap();
        assert!(got[..n] == want[..n], "bytes differ near offset {total}");
        total += n as u64;
    }
    assert_eq!(total, SIZE);

    // A ranged read near the end seeks; it does not read the 2 GiB before it.
    let tail = bucket
        .get(
            "two-gib",
            &R2GetOptions {
                range: Some(R2Range::Suffix(16)),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(tail.object.range.unwrap().offset, SIZE - 16);
    assert_eq!(tail.bytes().unwrap(), pattern_at(SIZE - 16, 16));
    // And one across a block boundary in the middle, so the next block's stamp is in it.
    let middle = SIZE / 2 - 8;
    let across = bucket
        .get(
            "two-gib",
            &R2GetOptions {
                range: Some(R2Range::Offset {
                    offset: middle,
                    length: Some(32),
                }),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
    let expected = pattern_at(middle, 32);
    assert_eq!(
        expected[8..16],
        (SIZE / 2 / BLOCK as u64).to_le_bytes(),
        "the stamp"
    );
    assert_eq!(across.bytes().unwrap(), expected);

    let grown_kib = peak_rss_kib().saturating_sub(before);
    assert!(
        grown_kib < 64 * 1024,
        "peak memory grew by {grown_kib} KiB while streaming 2 GiB"
    );
}
