//! A SenML JSON pack from a device: parsing never panics, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_core::senml::{Format, UnverifiedPack};

fuzz_target!(|data: &[u8]| {
    let _ = UnverifiedPack::parse(data, Format::Json);
});
