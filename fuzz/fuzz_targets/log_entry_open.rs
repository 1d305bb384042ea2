//! Untrusted commit and audit entries: opening must fail cleanly, never panic. Each input is tried
//! as it is and with its header fixed up to sequence 1 after the genesis link, so the fuzzer also
//! reaches the envelope and payload decoding behind the header checks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tresor::chain::{Chain, GENESIS, HEADER_LEN, LogKind};
use tresor_crypto::Key;

fn chains() -> &'static [Chain; 2] {
    static CHAINS: OnceLock<[Chain; 2]> = OnceLock::new();
    CHAINS.get_or_init(|| {
        let root = Key::from_bytes(&mut [3u8; 32]);
        [Chain::new(LogKind::Commit, &root, [2; 16]), Chain::new(LogKind::Audit, &root, [2; 16])]
    })
}

fuzz_target!(|data: &[u8]| {
    for (i, chain) in chains().iter().enumerate() {
        let _ = chain.open(1, &GENESIS, data);
        if data.len() >= HEADER_LEN {
            let mut fixed = data.to_vec();
            fixed[..4].copy_from_slice(b"TRSL");
            fixed[4] = 1;
            fixed[5] = i as u8 + 1;
            fixed[6..14].copy_from_slice(&1u64.to_be_bytes());
            fixed[14..HEADER_LEN].fill(0);
            let _ = chain.open(1, &GENESIS, &fixed);
        }
    }
});
