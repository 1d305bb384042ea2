//! Untrusted archive bytes: parsing must never panic or allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tresor::archive::parse(data);
});
