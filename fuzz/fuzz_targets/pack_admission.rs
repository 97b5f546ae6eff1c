//! The node's whole admission of an uplink (format detection, parsing, units, bounds,
//! enrollment, signature) against a directory in which every device is enrolled: it never
//! panics, and it never admits bytes that no enrolled key signed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_core::{DeviceId, DeviceKey, PersonId};
use vigil_gateway::{admit, DeviceDirectory, EnrolledDevice};

struct EveryoneEnrolled;

impl DeviceDirectory for EveryoneEnrolled {
    fn device(&self, _: &DeviceId) -> Option<EnrolledDevice> {
        Some(EnrolledDevice {
            person: PersonId::from_bytes([7; 16]),
            key: DeviceKey::from_seed([1; 32]).public(),
            revoked: false,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let person = Some(PersonId::from_bytes([7; 16]));
    let admitted = admit::admit(&EveryoneEnrolled, data, person, admit::Horizon::UNBOUNDED);
    // The fuzzer holds no device key: a pack it made up must never pass the signature check.
    assert!(admitted.is_err(), "an unsigned pack was admitted");
});
