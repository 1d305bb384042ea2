//! Untrusted envelope bytes: opening must fail cleanly (never panic), and the unwrap of a wrapped
//! key and the framing decoder too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_crypto::envelope::{Context, open};
use tresor_crypto::{Key, payload, wrap};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes(&mut [7u8; 32]);
    let ctx = Context { vault_id: &[1; 16], role: "blob", object: "blob/1/x", epoch: 1, extra: b"" };
    let _ = open(&key, &ctx, data);
    let _ = wrap::unwrap_key(&key, b"aad", data);
    let _ = payload::decode(data);
});
