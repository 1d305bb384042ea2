//! Bytes from an agent socket peer: decoding a request or response must never panic. Frames whose
//! declared length exceeds the input are decoded from what is there (the reader would allocate
//! the declared length first, which only slows the fuzzer down).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_server::protocol::{Request, Response, decode, read_msg};

fuzz_target!(|data: &[u8]| {
    let declared = data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if declared.is_some_and(|n| n <= data.len() - 4) {
        let _ = read_msg::<Request>(&mut &data[..]);
        let _ = read_msg::<Response>(&mut &data[..]);
    }
    let _ = decode::<Request>(data);
    let _ = decode::<Response>(data);
});
