//! Admission of a device's pack: everything that can be decided without storage. Pure logic:
//! the enrolled devices come through [`DeviceDirectory`], which the node backs with the
//! ledger's finalized state.

use serde::{Deserialize, Serialize};
use vigil_core::senml::{Format, PackError, SignedPack, UnverifiedPack};
use vigil_core::{DeviceId, DevicePublicKey, PersonId, TimestampMs};

/// Why a pack was refused; the code is stable and is what metrics count by. Its one written
/// form is [`Rejection::code`]; printing, parsing and serde all go through it
/// ([`vigil_core::named_enum!`]), so they can never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
#[non_exhaustive]
pub enum Rejection {
    TooLarge,
    Malformed,
    InvalidReading,
    Unsigned,
    UnknownDevice,
    RevokedDevice,
    /// The topic or URL names another person than the one the device is enrolled for.
    WrongPerson,
    BadSignature,
    Replayed,
    TooOld,
    /// The sequence number is above [`SEQUENCE_MAX`], outside what the health record stores.
    SequenceOutOfRange,
    /// A reading is stamped later than the node's clock plus the skew it tolerates.
    FutureReading,
    /// The node could not store the pack (its database failed); the device should retry.
    Unavailable,
}

/// A code that names no [`Rejection`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rejection code {0:?}")]
pub struct UnknownRejection(pub String);

vigil_core::named_enum!(Rejection by code, error UnknownRejection = |code| {
    UnknownRejection(code.to_owned())
});

impl Rejection {
    pub const ALL: [Rejection; 13] = [
        Rejection::TooLarge,
        Rejection::Malformed,
        Rejection::InvalidReading,
        Rejection::Unsigned,
        Rejection::UnknownDevice,
        Rejection::RevokedDevice,
        Rejection::WrongPerson,
        Rejection::BadSignature,
        Rejection::Replayed,
        Rejection::TooOld,
        Rejection::SequenceOutOfRange,
        Rejection::FutureReading,
        Rejection::Unavailable,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Rejection::TooLarge => "too_large",
            Rejection::Malformed => "malformed",
            Rejection::InvalidReading => "invalid_reading",
            Rejection::Unsigned => "unsigned",
            Rejection::UnknownDevice => "unknown_device",
            Rejection::RevokedDevice => "revoked_device",
            Rejection::WrongPerson => "wrong_person",
            Rejection::BadSignature => "bad_signature",
            Rejection::Replayed => "replayed",
            Rejection::TooOld => "too_old",
            Rejection::SequenceOutOfRange => "sequence_out_of_range",
            Rejection::FutureReading => "future_reading",
            Rejection::Unavailable => "unavailable",
        }
    }

    /// The HTTP status for this rejection on the HTTP ingestion route.
    pub const fn http_status(self) -> u16 {
        match self {
            Rejection::TooLarge => 413,
            Rejection::Malformed
            | Rejection::InvalidReading
            | Rejection::SequenceOutOfRange
            | Rejection::FutureReading => 422,
            Rejection::Unsigned | Rejection::BadSignature => 401,
            Rejection::UnknownDevice | Rejection::RevokedDevice | Rejection::WrongPerson => 403,
            Rejection::Replayed | Rejection::TooOld => 409,
            Rejection::Unavailable => 503,
        }
    }

    /// Whether re-sending the same pack later can succeed. A master device drops a pack from its
    /// outbox on a final rejection and keeps it on a transient one.
    pub const fn is_final(self) -> bool {
        !matches!(self, Rejection::Unavailable)
    }
}

/// A refusal: the stable reason and a message that names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{} ({message})", reason.code())]
pub struct Rejected {
    pub reason: Rejection,
    pub message: String,
}

impl Rejected {
    pub fn new(reason: Rejection, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl From<PackError> for Rejected {
    fn from(error: PackError) -> Self {
        let reason = match &error {
            PackError::TooLarge { .. } => Rejection::TooLarge,
            PackError::Malformed { .. } | PackError::Empty => Rejection::Malformed,
            PackError::Unsigned => Rejection::Unsigned,
            PackError::BadSignature { .. } => Rejection::BadSignature,
            _ => Rejection::InvalidReading,
        };
        Rejected::new(reason, error.to_string())
    }
}

/// The largest sequence number a pack may carry: the health record stores sequence numbers as
/// SQLite integers (`i64`). A larger one is refused at admission, alone, before it reaches the
/// storage batch it would otherwise make fail for every pack in it.
pub const SEQUENCE_MAX: u64 = i64::MAX as u64;

/// What admission checks a pack against besides the enrolled devices: the latest reading time
/// the node accepts, its clock plus the skew it tolerates. A reading from the future would be
/// stored and, being the device's latest, keep its no-signal contract from ever firing.
/// Admission reads no clock itself (it stays pure, and contracts clock-free): the caller reads
/// its clock once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    pub latest_ms: TimestampMs,
}

impl Horizon {
    /// Nothing is too late: for offline tools and tests that replay recorded packs.
    pub const UNBOUNDED: Horizon = Horizon {
        latest_ms: TimestampMs::MAX,
    };

    pub fn new(now_ms: TimestampMs, skew: std::time::Duration) -> Horizon {
        let skew_ms = TimestampMs::try_from(skew.as_millis()).unwrap_or(TimestampMs::MAX);
        Horizon {
            latest_ms: now_ms.saturating_add(skew_ms),
        }
    }
}

/// What the ledger says about an enrolled device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrolledDevice {
    pub person: PersonId,
    pub key: DevicePublicKey,
    pub revoked: bool,
}

pub trait DeviceDirectory {
    fn device(&self, id: &DeviceId) -> Option<EnrolledDevice>;
}

/// A pack that passed every check that needs no storage. Whether it is new (not a replay)
/// is decided where it is stored, atomically with storing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub person: PersonId,
    pub pack: SignedPack,
}

/// SenML CBOR packs start with an array header (major type 4); JSON with `[` after optional
/// whitespace. Anything else is parsed as JSON and refused with JSON's error.
pub fn detect_format(bytes: &[u8]) -> Format {
    match bytes.first() {
        Some(0x80..=0x9f) => Format::Cbor,
        _ => Format::Json,
    }
}

/// Parses, validates and authenticates a pack. `claimed_person` is the person named by the
/// topic or URL it arrived on, which must be the one the device is enrolled for.
pub fn admit(
    directory: &dyn DeviceDirectory,
    bytes: &[u8],
    claimed_person: Option<PersonId>,
    horizon: Horizon,
) -> Result<Admitted, Rejected> {
    let screened = screen(directory, bytes, claimed_person, horizon)?;
    let pack = screened.pack.verify(&screened.key)?;
    Ok(Admitted {
        person: screened.person,
        pack,
    })
}

/// [`admit`] for many packs, with the same answer for each, in order; their signatures are
/// checked together in one batch (`UnverifiedPack::verify_all`), at about half the cost.
pub fn admit_all<'a>(
    directory: &dyn DeviceDirectory,
    packs: impl IntoIterator<Item = (&'a [u8], Option<PersonId>)>,
    horizon: Horizon,
) -> Vec<Result<Admitted, Rejected>> {
    let mut to_verify = Vec::new();
    let screened: Vec<Result<PersonId, Rejected>> = packs
        .into_iter()
        .map(|(bytes, claimed)| {
            let screened = screen(directory, bytes, claimed, horizon)?;
            to_verify.push((screened.pack, screened.key));
            Ok(screened.person)
        })
        .collect();
    // `verify_all` answers every pack it is handed, in order.
    let mut verified = UnverifiedPack::verify_all(to_verify).into_iter();
    screened
        .into_iter()
        .map(|person| {
            let person = person?;
            let pack = verified.next().ok_or_else(|| {
                Rejected::new(Rejection::Unavailable, "no signature verdict; send again")
            })??;
            Ok(Admitted { person, pack })
        })
        .collect()
}

/// A pack that passed every check but its signature, with the key to check it against.
struct Screened {
    person: PersonId,
    pack: UnverifiedPack,
    key: DevicePublicKey,
}

fn screen(
    directory: &dyn DeviceDirectory,
    bytes: &[u8],
    claimed_person: Option<PersonId>,
    horizon: Horizon,
) -> Result<Screened, Rejected> {
    let pack = UnverifiedPack::parse(bytes, detect_format(bytes))?;
    if !pack.is_signed() {
        return Err(PackError::Unsigned.into());
    }
    check_range(&pack, horizon)?;
    let device = pack.device().clone();
    let enrolled = directory.device(&device).ok_or_else(|| {
        Rejected::new(
            Rejection::UnknownDevice,
            format!("device {device} is not enrolled"),
        )
    })?;
    if enrolled.revoked {
        return Err(Rejected::new(
            Rejection::RevokedDevice,
            format!("device {device} was revoked"),
        ));
    }
    if let Some(claimed) = claimed_person
        && claimed != enrolled.person
    {
        return Err(Rejected::new(
            Rejection::WrongPerson,
            format!("device {device} is not enrolled for person {claimed}"),
        ));
    }
    Ok(Screened {
        person: enrolled.person,
        pack,
        key: enrolled.key,
    })
}

/// Refuses what the pack says that the node cannot store or must not believe: a sequence
/// number beyond [`SEQUENCE_MAX`], a reading later than `horizon`.
fn check_range(pack: &UnverifiedPack, horizon: Horizon) -> Result<(), Rejected> {
    if let Some(sequence) = pack.sequence()
        && sequence > SEQUENCE_MAX
    {
        return Err(Rejected::new(
            Rejection::SequenceOutOfRange,
            format!("sequence number {sequence} is above {SEQUENCE_MAX}, the largest stored"),
        ));
    }
    if let Some(latest) = pack.latest_time_ms()
        && latest > horizon.latest_ms
    {
        return Err(Rejected::new(
            Rejection::FutureReading,
            format!(
                "a reading is stamped {latest} ms, after {} ms (the node's clock plus the \
                 skew it tolerates): check the device's clock",
                horizon.latest_ms
            ),
        ));
    }
    Ok(())
}

/// The node's answer to one pack, published on the device's reply topic or returned over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The pack's sequence number when it could be read.
    pub sequence: Option<u64>,
    pub accepted: bool,
    /// Readings stored (0 when refused).
    pub stored: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Rejected>,
}

impl Reply {
    pub fn accepted(sequence: u64, stored: usize) -> Self {
        Self {
            sequence: Some(sequence),
            accepted: true,
            stored,
            error: None,
        }
    }

    pub fn rejected(sequence: Option<u64>, error: Rejected) -> Self {
        Self {
            sequence,
            accepted: false,
            stored: 0,
            error: Some(error),
        }
    }
}

/// The sequence number of a pack, if it can be read at all; used to address a rejection to
/// the pack it concerns.
pub fn peek_sequence(bytes: &[u8]) -> Option<u64> {
    UnverifiedPack::parse(bytes, detect_format(bytes))
        .ok()
        .and_then(|pack| pack.sequence())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use vigil_core::senml::PackDraft;
    use vigil_core::{DeviceKey, Metric, Value};

    use super::*;

    struct Directory(HashMap<DeviceId, EnrolledDevice>);

    impl DeviceDirectory for Directory {
        fn device(&self, id: &DeviceId) -> Option<EnrolledDevice> {
            self.0.get(id).copied()
        }
    }

    fn setup() -> (Directory, DeviceKey, PersonId, DeviceId) {
        let key = DeviceKey::from_seed([3; 32]);
        let person = PersonId::from_bytes([9; 16]);
        let device: DeviceId = "thermo-01".parse().expect("valid");
        let entry = EnrolledDevice {
            person,
            key: key.public(),
            revoked: false,
        };
        (
            Directory(HashMap::from([(device.clone(), entry)])),
            key,
            person,
            device,
        )
    }

    /// The tests' clock: a minute after the packs' readings.
    const NOW: Horizon = Horizon {
        latest_ms: 1_700_000_060_000,
    };

    fn pack(key: &DeviceKey, device: &DeviceId) -> SignedPack {
        pack_at(key, device, 5, 1_700_000_000_000)
    }

    fn pack_at(key: &DeviceKey, device: &DeviceId, sequence: u64, time_ms: i64) -> SignedPack {
        let mut draft = PackDraft::new(device.clone(), sequence);
        draft.push(Metric::BodyTemperature, time_ms, Value::Scalar(3_790));
        draft.sign(key)
    }

    /// Issue 13: a sequence number the health record cannot store, and a reading stamped
    /// after the node's clock plus its skew, are each refused at admission with their reason.
    #[test]
    fn sequence_numbers_beyond_storage_and_readings_from_the_future_are_refused() {
        let (directory, key, person, device) = setup();
        let reason = |signed: SignedPack| {
            admit(&directory, &signed.to_json(), Some(person), NOW)
                .map(|a| a.pack.sequence)
                .map_err(|e| e.reason)
        };
        assert_eq!(
            reason(pack_at(&key, &device, SEQUENCE_MAX, 1_700_000_000_000)),
            Ok(SEQUENCE_MAX)
        );
        assert_eq!(
            reason(pack_at(&key, &device, 1 << 63, 1_700_000_000_000)),
            Err(Rejection::SequenceOutOfRange)
        );
        assert_eq!(
            reason(pack_at(&key, &device, u64::MAX, 1_700_000_000_000)),
            Err(Rejection::SequenceOutOfRange)
        );
        assert_eq!(reason(pack_at(&key, &device, 6, NOW.latest_ms)), Ok(6));
        assert_eq!(
            reason(pack_at(&key, &device, 7, NOW.latest_ms + 1)),
            Err(Rejection::FutureReading)
        );
        // Year 2200, as in the issue.
        assert_eq!(
            reason(pack_at(&key, &device, 8, 7_258_118_400_000)),
            Err(Rejection::FutureReading)
        );
        let skewed = Horizon::new(1_700_000_000_000, std::time::Duration::from_secs(300));
        assert_eq!(skewed.latest_ms, 1_700_000_300_000);
        assert_eq!(
            Horizon::new(i64::MAX - 1, std::time::Duration::MAX),
            Horizon::UNBOUNDED
        );
        for rejection in [Rejection::SequenceOutOfRange, Rejection::FutureReading] {
            assert!(rejection.is_final());
            assert_eq!(rejection.http_status(), 422);
        }
    }

    #[test]
    fn enrolled_signed_packs_are_admitted_as_json_and_cbor() {
        let (directory, key, person, device) = setup();
        let signed = pack(&key, &device);
        for bytes in [signed.to_json(), signed.to_cbor()] {
            let admitted = admit(&directory, &bytes, Some(person), NOW).expect("admitted");
            assert_eq!(
                admitted,
                Admitted {
                    person,
                    pack: signed.clone()
                }
            );
            assert_eq!(peek_sequence(&bytes), Some(5));
        }
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let (mut directory, key, person, device) = setup();
        let reason = |directory: &Directory, bytes: &[u8], claimed| {
            admit(directory, bytes, claimed, NOW)
                .expect_err("refused")
                .reason
        };
        let good = pack(&key, &device).to_json();
        assert_eq!(
            reason(&directory, &vec![b'['; 70_000], None),
            Rejection::TooLarge
        );
        assert_eq!(reason(&directory, b"{not json", None), Rejection::Malformed);
        assert_eq!(
            reason(&directory, &[0x81, 0xff], None),
            Rejection::Malformed
        );
        let nan_unit =
            br#"[{"bn":"thermo-01:","bt":1700000000,"n":"body-temperature","u":"bpm","v":3}]"#;
        assert_eq!(
            reason(&directory, nan_unit, None),
            Rejection::InvalidReading
        );
        let unsigned =
            br#"[{"bn":"thermo-01:","bt":1700000000,"n":"body-temperature","u":"Cel","v":37}]"#;
        assert_eq!(reason(&directory, unsigned, None), Rejection::Unsigned);
        let stranger: DeviceId = "oxi-9".parse().expect("valid");
        assert_eq!(
            reason(&directory, &pack(&key, &stranger).to_json(), None),
            Rejection::UnknownDevice
        );
        assert_eq!(
            reason(&directory, &good, Some(PersonId::from_bytes([1; 16]))),
            Rejection::WrongPerson
        );
        let forged = pack(&DeviceKey::from_seed([4; 32]), &device).to_json();
        assert_eq!(
            reason(&directory, &forged, Some(person)),
            Rejection::BadSignature
        );
        if let Some(entry) = directory.0.get_mut(&device) {
            entry.revoked = true;
        }
        assert_eq!(
            reason(&directory, &good, Some(person)),
            Rejection::RevokedDevice
        );
    }

    #[test]
    fn admitting_together_answers_each_pack_as_admitting_it_alone() {
        let (directory, key, person, device) = setup();
        let stranger: DeviceId = "oxi-9".parse().expect("valid");
        let good = pack(&key, &device);
        let packs: Vec<(Vec<u8>, Option<PersonId>)> = vec![
            (good.to_json(), Some(person)),
            (b"{not json".to_vec(), None),
            (
                pack(&DeviceKey::from_seed([4; 32]), &device).to_json(),
                None,
            ),
            (good.to_cbor(), None),
            (pack(&key, &stranger).to_json(), None),
            (good.to_json(), Some(PersonId::from_bytes([1; 16]))),
            (good.to_json(), None),
            (
                pack_at(&key, &device, 1 << 63, 1_700_000_000_000).to_json(),
                None,
            ),
            (pack_at(&key, &device, 9, NOW.latest_ms + 1).to_cbor(), None),
        ];
        let together = admit_all(
            &directory,
            packs
                .iter()
                .map(|(bytes, claimed)| (bytes.as_slice(), *claimed)),
            NOW,
        );
        let alone: Vec<_> = packs
            .iter()
            .map(|(bytes, claimed)| admit(&directory, bytes, *claimed, NOW))
            .collect();
        assert_eq!(together, alone);
        let admitted = together.iter().filter(|answer| answer.is_ok()).count();
        assert_eq!(admitted, 3);
        assert!(admit_all(&directory, [], NOW).is_empty());
    }

    #[test]
    fn codes_and_statuses_are_distinct_and_client_errors() {
        let codes: std::collections::HashSet<_> = Rejection::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Rejection::ALL.len());
        for rejection in Rejection::ALL {
            let json = serde_json::to_string(&rejection).expect("serializes");
            assert_eq!(json, format!("\"{}\"", rejection.code()));
            assert_eq!(
                serde_json::from_str::<Rejection>(&json).ok(),
                Some(rejection)
            );
            assert_eq!(rejection.code().parse::<Rejection>().ok(), Some(rejection));
        }
        assert!("TooLarge".parse::<Rejection>().is_err());
        assert!(serde_json::from_str::<Rejection>("\"nope\"").is_err());
        for rejection in Rejection::ALL {
            let status = rejection.http_status();
            assert!((400..600).contains(&status));
            assert_eq!(rejection.is_final(), status < 500);
        }
    }
}
