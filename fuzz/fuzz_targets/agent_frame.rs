//! Bytes from an agent socket peer: decoding a request or response must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_server::protocol::{Request, Response, read_msg};

fuzz_target!(|data: &[u8]| {
    let _ = read_msg::<Request>(&mut &data[..]);
    let _ = read_msg::<Response>(&mut &data[..]);
});
