//! `--config` files: any text parses or fails with a message, as TOML and as JSON with
//! comments; stripping comments from JSON that has none changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::provision::{strip_jsonc, WranglerConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = WranglerConfig::parse(text, true);
    let _ = WranglerConfig::parse(text, false);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let plain = value.to_string();
        assert_eq!(strip_jsonc(&plain), plain);
    }
});
