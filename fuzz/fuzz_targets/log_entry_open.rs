//! Untrusted commit and audit entries: opening must fail cleanly, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor::chain::{Chain, GENESIS, LogKind};
use tresor_crypto::Key;

fuzz_target!(|data: &[u8]| {
    let root = Key::from_bytes(&mut [3u8; 32]);
    for kind in [LogKind::Commit, LogKind::Audit] {
        let chain = Chain::new(kind, &root, [2; 16]);
        let _ = chain.open(1, &GENESIS, data);
    }
});
