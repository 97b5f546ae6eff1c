//! MQTT topics: one uplink and one reply topic per person and device, one alert topic per
//! person. Pseudonyms only, never names.

use vigil_core::{DeviceId, PersonId};

pub const ROOT: &str = "vigil";
/// What the ingestion link subscribes to.
pub const UPLINK_FILTER: &str = "vigil/+/+/up";

/// `vigil/<pseudonym>/<device>/up`: where a master device publishes a device's signed packs.
pub fn uplink(person: PersonId, device: &DeviceId) -> String {
    format!("{ROOT}/{person}/{device}/up")
}

/// `vigil/<pseudonym>/<device>/reply`: the node's verdict on each pack.
pub fn reply(person: PersonId, device: &DeviceId) -> String {
    format!("{ROOT}/{person}/{device}/reply")
}

/// `vigil/<pseudonym>/alerts`: finalized alerts pushed to the person's master device.
pub fn alerts(person: PersonId) -> String {
    format!("{ROOT}/{person}/alerts")
}

/// The person and device an uplink topic names, or `None` for any other topic.
pub fn parse_uplink(topic: &str) -> Option<(PersonId, DeviceId)> {
    parse_device_topic(topic, "up")
}

/// The person and device a reply topic names, or `None` for any other topic.
pub fn parse_reply(topic: &str) -> Option<(PersonId, DeviceId)> {
    parse_device_topic(topic, "reply")
}

fn parse_device_topic(topic: &str, expected_leaf: &str) -> Option<(PersonId, DeviceId)> {
    let mut parts = topic.split('/');
    let (root, person, device, leaf) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if root != ROOT || leaf != expected_leaf || parts.next().is_some() {
        return None;
    }
    Some((person.parse().ok()?, device.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_topics_round_trip_and_others_are_ignored() {
        let person = PersonId::from_bytes([0xab; 16]);
        let device: DeviceId = "oxi-2".parse().expect("valid");
        assert_eq!(
            parse_uplink(&uplink(person, &device)),
            Some((person, device.clone()))
        );
        assert_eq!(
            parse_reply(&reply(person, &device)),
            Some((person, device.clone()))
        );
        for other in [
            reply(person, &device),
            alerts(person),
            format!("vigil/{person}/oxi-2/up/extra"),
            "vigil/nothex/oxi-2/up".to_owned(),
            format!("other/{person}/oxi-2/up"),
            format!("vigil/{person}/bad device/up"),
        ] {
            assert_eq!(parse_uplink(&other), None, "{other}");
        }
    }
}
