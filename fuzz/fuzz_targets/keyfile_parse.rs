//! Untrusted key file bytes: parsing must never panic; a parsed file re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor::keyfile::KeyFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = KeyFile::parse(data) {
        assert_eq!(kf.encode(), data);
    }
});
