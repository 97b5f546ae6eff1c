//! A WFDB annotation file (MIT format, `.atr`): parsing never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil_ecg::wfdb::parse_annotations(data);
});
