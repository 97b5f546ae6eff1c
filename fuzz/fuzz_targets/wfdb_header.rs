//! A WFDB header (`.hea`) as other software writes it: parsing never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_ecg::wfdb::Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Header::parse(text);
    }
});
