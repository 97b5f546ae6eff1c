//! Alert evidence from a client or a peer: decoding never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil_ledger::evidence::decode(data);
});
