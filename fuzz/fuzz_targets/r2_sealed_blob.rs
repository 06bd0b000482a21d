//! Sealed (encrypted) R2 blobs: a blob sealed from fuzzed content, then edited at a
//! fuzzed position (or cut short, or read as another size), reads back either exactly
//! the content from the offset asked or an error; never other bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::r2::fuzzing::{read_sealed, seal};
use tristore::r2::EncryptionKey;

fuzz_target!(|input: (Vec<u8>, u32, u8, u32, u16, bool)| {
    let (plain, position, flip, offset, cut, lie_about_size) = input;
    let key = EncryptionKey::new([7; 32]);
    let mut sealed = seal(&key, &plain);
    let size = plain.len() as u64;
    let offset = u64::from(offset) % (size + 1);
    let untouched = read_sealed(&key, &sealed, size, offset).expect("an intact blob reads");
    assert_eq!(untouched, &plain[offset as usize..]);

    let at = position as usize % sealed.len();
    sealed[at] ^= flip;
    sealed.truncate(sealed.len() - (cut as usize % 64).min(sealed.len()));
    let claimed = if lie_about_size { size / 2 } else { size };
    let offset = offset.min(claimed);
    if let Ok(got) = read_sealed(&key, &sealed, claimed, offset) {
        let edited = flip != 0 || sealed.len() < seal(&key, &plain).len() || claimed != size;
        // An edit, a cut or a wrong size can only ever be harmless when nothing read
        // depended on it: what comes back is always the true content.
        assert_eq!(got, &plain[offset as usize..claimed as usize], "edited: {edited}");
    }
});
