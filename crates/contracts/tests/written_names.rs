//! Bands are written by their `name` only: serde and parsing go through it, and the spellings
//! are those serde's kebab-case wrote before, which stored contract states and evidence hold.

use vigil_contracts::news2::News2Band;
use vigil_contracts::threshold::Band;

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
