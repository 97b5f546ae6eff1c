//! Who may publish and subscribe to what on the node's broker: the rules the MQTT front
//! ([`crate::front`]) enforces on every PUBLISH, SUBSCRIBE and will message of an
//! authenticated client. Pure: a principal and a topic (or filter) in, a verdict out.
//!
//! - A device (in practice the person's master device, which logs in as one of the person's
//!   wearables and relays them all) publishes only on the uplink of a device enrolled for its
//!   own person, `vigil/<its person>/<an enrolled device of that person>/up`, and subscribes
//!   only to those devices' reply topics and its person's alert topic, by their exact names.
//!   Which devices are enrolled for whom is the finalized ledger's word (`enrolled_person`).
//! - A staff service (`service:<name>`) subscribes to alert topics only (one person's, or every
//!   person's with `vigil/+/alerts`), and publishes nothing: uplinks carry vital signs, and
//!   replies and alerts are the node's alone.
//! - Nothing else: no `#`, no other wildcard, no `$SYS`, no topic outside `vigil/`.
//!
//! Matching is on whole topic strings, never on prefixes, so `vigil/P/D/up/x` or a filter with
//! a wildcard in the device's place does not pass as the device's own topic.

use vigil_core::{DeviceId, PersonId};

use crate::auth::Principal;
use crate::topic;

/// The one wildcard filter a client may use: every person's alerts, for staff.
pub const ALL_ALERTS_FILTER: &str = "vigil/+/alerts";

/// Whether `principal` may publish on `topic` (also what a will message may name).
/// `enrolled_person` names the person a device is enrolled for (and not revoked).
pub fn may_publish(
    principal: &Principal,
    topic: &str,
    enrolled_person: impl Fn(&DeviceId) -> Option<PersonId>,
) -> bool {
    match principal {
        Principal::Device { person, .. } => topic::parse_uplink(topic).is_some_and(|parsed| {
            persons_device(*person, &parsed, enrolled_person)
                && topic == topic::uplink(parsed.0, &parsed.1)
        }),
        Principal::Service(_) => false,
    }
}

/// Whether `principal` may subscribe with `filter`.
pub fn may_subscribe(
    principal: &Principal,
    filter: &str,
    enrolled_person: impl Fn(&DeviceId) -> Option<PersonId>,
) -> bool {
    match principal {
        Principal::Device { person, .. } => {
            filter == topic::alerts(*person)
                || topic::parse_reply(filter).is_some_and(|parsed| {
                    persons_device(*person, &parsed, enrolled_person)
                        && filter == topic::reply(parsed.0, &parsed.1)
                })
        }
        Principal::Service(_) => filter == ALL_ALERTS_FILTER || is_one_persons_alerts(filter),
    }
}

/// Whether a topic's `(person, device)` is a device enrolled for `person` itself. The caller
/// also compares the topic with its canonical form: a pseudonym in upper case parses, but is
/// not the topic the node answers on.
fn persons_device(
    person: PersonId,
    (topic_person, device): &(PersonId, DeviceId),
    enrolled_person: impl Fn(&DeviceId) -> Option<PersonId>,
) -> bool {
    *topic_person == person && enrolled_person(device) == Some(person)
}

/// `vigil/<pseudonym>/alerts` with a well-formed pseudonym (no wildcard).
fn is_one_persons_alerts(filter: &str) -> bool {
    let mut parts = filter.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(topic::ROOT), Some(person), Some("alerts"), None)
            if person
                .parse::<vigil_core::PersonId>()
                .is_ok_and(|p| filter == topic::alerts(p))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// thermo-1 and oxi-1 are enrolled for person 0x11, scale-9 for person 0x22.
    fn enrolled(device: &DeviceId) -> Option<PersonId> {
        match device.as_str() {
            "thermo-1" | "oxi-1" => Some(PersonId::from_bytes([0x11; 16])),
            "scale-9" => Some(PersonId::from_bytes([0x22; 16])),
            _ => None,
        }
    }

    fn device() -> (Principal, PersonId, DeviceId) {
        let person = PersonId::from_bytes([0x11; 16]);
        let device: DeviceId = "thermo-1".parse().expect("valid");
        (
            Principal::Device {
                person,
                device: device.clone(),
            },
            person,
            device,
        )
    }

    #[test]
    fn a_device_publishes_only_on_the_uplinks_of_its_persons_enrolled_devices() {
        let (me, person, device) = device();
        let other_person = PersonId::from_bytes([0x22; 16]);
        let sibling: DeviceId = "oxi-1".parse().expect("valid");
        let others: DeviceId = "scale-9".parse().expect("valid");
        let unknown: DeviceId = "ghost-1".parse().expect("valid");
        assert!(may_publish(&me, &topic::uplink(person, &device), enrolled));
        assert!(may_publish(&me, &topic::uplink(person, &sibling), enrolled));
        for topic in [
            topic::uplink(person, &others),
            topic::uplink(person, &unknown),
            topic::uplink(other_person, &others),
            topic::uplink(other_person, &device),
            topic::reply(person, &device),
            topic::alerts(person),
            format!("{}/x", topic::uplink(person, &device)),
            "vigil/+/thermo-1/up".to_owned(),
            "$SYS/broker".to_owned(),
            String::new(),
        ] {
            assert!(!may_publish(&me, &topic, enrolled), "{topic}");
        }
    }

    /// A pseudonym in upper case parses as the same person, but is not the topic the node
    /// answers on: refused everywhere.
    #[test]
    fn only_the_canonical_spelling_of_a_topic_passes() {
        let person = PersonId::from_bytes([0xab; 16]);
        let device: DeviceId = "thermo-1".parse().expect("valid");
        let me = Principal::Device {
            person,
            device: device.clone(),
        };
        let ours = |_: &DeviceId| Some(person);
        let staff = Principal::Service("operator".into());
        let shout =
            |topic: String| topic.replace(&person.to_string(), &person.to_string().to_uppercase());
        assert!(may_publish(&me, &topic::uplink(person, &device), ours));
        assert!(!may_publish(
            &me,
            &shout(topic::uplink(person, &device)),
            ours
        ));
        assert!(may_subscribe(&me, &topic::reply(person, &device), ours));
        assert!(!may_subscribe(
            &me,
            &shout(topic::reply(person, &device)),
            ours
        ));
        assert!(!may_subscribe(&me, &shout(topic::alerts(person)), ours));
        assert!(may_subscribe(&staff, &topic::alerts(person), ours));
        assert!(!may_subscribe(&staff, &shout(topic::alerts(person)), ours));
    }

    #[test]
    fn a_device_reads_only_its_persons_replies_and_alerts() {
        let (me, person, device) = device();
        let other_person = PersonId::from_bytes([0x22; 16]);
        let sibling: DeviceId = "oxi-1".parse().expect("valid");
        let others: DeviceId = "scale-9".parse().expect("valid");
        assert!(may_subscribe(&me, &topic::reply(person, &device), enrolled));
        assert!(may_subscribe(
            &me,
            &topic::reply(person, &sibling),
            enrolled
        ));
        assert!(may_subscribe(&me, &topic::alerts(person), enrolled));
        for filter in [
            topic::reply(other_person, &others),
            topic::reply(person, &others),
            "#".to_owned(),
            "vigil/#".to_owned(),
            ALL_ALERTS_FILTER.to_owned(),
            topic::UPLINK_FILTER.to_owned(),
            topic::uplink(person, &device),
            topic::alerts(other_person),
            format!("vigil/{person}/+/reply"),
            format!("vigil/{person}/#"),
            "$SYS/#".to_owned(),
        ] {
            assert!(!may_subscribe(&me, &filter, enrolled), "{filter}");
        }
    }

    #[test]
    fn staff_read_alerts_and_nothing_else_and_publish_nothing() {
        let staff = Principal::Service("operator".into());
        let (_, person, device) = device();
        assert!(may_subscribe(&staff, ALL_ALERTS_FILTER, enrolled));
        assert!(may_subscribe(&staff, &topic::alerts(person), enrolled));
        for filter in [
            "#".to_owned(),
            topic::UPLINK_FILTER.to_owned(),
            topic::reply(person, &device),
            "vigil/+/+/reply".to_owned(),
            "vigil/not-a-pseudonym/alerts".to_owned(),
            "vigil/#/alerts".to_owned(),
        ] {
            assert!(!may_subscribe(&staff, &filter, enrolled), "{filter}");
        }
        for topic in [
            topic::alerts(person),
            topic::reply(person, &device),
            topic::uplink(person, &device),
        ] {
            assert!(!may_publish(&staff, &topic, enrolled), "{topic}");
        }
    }
}
