//! A transaction from a client or a peer: decoding (bounds, canonical re-encoding) never
//! panics, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_ledger::tx::Tx;

fuzz_target!(|data: &[u8]| {
    let _ = Tx::decode(bytes::Bytes::copy_from_slice(data));
});
