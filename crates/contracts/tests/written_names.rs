//! Bands are written by their `name` only: serde and parsing go through it, and the spellings
//! are those serde's kebab-case wrote before, which stored contract states and evidence hold.

use vigil_contracts::news2::News2Band;
use vigil_contracts::threshold::Band;
use vigil_contracts::{Kind, Params};

#[test]
fn bands_keep_their_written_names_in_every_form() {
    let threshold = [
        "critical-low",
        "warning-low",
        "normal",
        "warning-high",
        "critical-high",
    ];
    for (band, name) in Band::ALL.into_iter().zip(threshold) {
        assert_eq!(band.name(), name);
        let json = serde_json::to_string(&band).expect("serializes");
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Band>(&json).ok(), Some(band));
    }
    let news2 = ["zero", "low", "low-red-single", "medium", "high"];
    for (band, name) in News2Band::ALL.into_iter().zip(news2) {
        assert_eq!(band.name(), name);
        let json = serde_json::to_string(&band).expect("serializes");
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<News2Band>(&json).ok(), Some(band));
    }
    assert!(serde_json::from_str::<Band>("\"Normal\"").is_err());
    assert!("medium ".parse::<News2Band>().is_err());
}

/// `Kind` is written by its name, and `Params`' serde tag (derived separately) spells each kind
/// the same way.
#[test]
fn contract_kinds_keep_their_written_names_and_match_the_params_tag() {
    let written = [
        "threshold",
        "news2",
        "geofence",
        "no-signal",
        "heart-rhythm",
    ];
    for (kind, name) in Kind::ALL.into_iter().zip(written) {
        assert_eq!(kind.to_string(), name);
        let json = serde_json::to_string(&kind).expect("serializes");
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Kind>(&json).ok(), Some(kind));
        assert_eq!(name.parse::<Kind>().ok(), Some(kind));
    }
    let threshold: Params = serde_json::from_value(serde_json::json!({
        "kind": "threshold", "metric": "body-temperature", "warning_above": 3750
    }))
    .expect("a threshold");
    assert_eq!(
        serde_json::to_value(&threshold).expect("serializes")["kind"],
        threshold.kind().name()
    );
}
