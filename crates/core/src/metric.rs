use serde::{Deserialize, Serialize};

/// What a reading measures. Each metric has one canonical fixed-point unit, which is the only
/// unit contracts ever see, so their arithmetic is integer and the same on every validator.
/// Its one written form is [`Metric::name`]: `Display`, `FromStr` and serde all go through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
#[repr(u8)]
pub enum Metric {
    /// Body temperature in hundredths of a degree Celsius (`3712` is 37.12 °C).
    BodyTemperature,
    /// Heart rate in tenths of a beat per minute (`725` is 72.5 /min).
    HeartRate,
    /// Respiration rate in tenths of a breath per minute.
    RespirationRate,
    /// Peripheral oxygen saturation in tenths of a percent (`975` is 97.5 %).
    SpO2,
    /// Systolic blood pressure in whole mmHg.
    SystolicBp,
    /// Level of consciousness on the ACVPU scale, as a [`Consciousness`] code.
    Consciousness,
    /// Whether the person breathes supplemental oxygen: 1 yes, 0 no (NEWS2's "air or oxygen").
    SupplementalOxygen,
    /// Interval between two successive R peaks of the ECG, in milliseconds.
    RrInterval,
    /// A position fix: micro-degrees of latitude and longitude, accuracy in metres.
    Position,
    /// The sensor's signal was unusable (motion noise, lead-off, saturation) for this many
    /// milliseconds up to the reading's time: sent instead of a heart rate or RR intervals, so
    /// the node hears "signal unusable" rather than a rate computed from noise.
    SignalUnusable,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::BodyTemperature,
        Metric::HeartRate,
        Metric::RespirationRate,
        Metric::SpO2,
        Metric::SystolicBp,
        Metric::Consciousness,
        Metric::SupplementalOxygen,
        Metric::RrInterval,
        Metric::Position,
        Metric::SignalUnusable,
    ];

    /// A stable one-byte code for canonical encodings (signatures, digests). Never reuse one.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The name used in SenML records, in configuration files and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::BodyTemperature => "body-temperature",
            Metric::HeartRate => "heart-rate",
            Metric::RespirationRate => "respiration-rate",
            Metric::SpO2 => "spo2",
            Metric::SystolicBp => "systolic-bp",
            Metric::Consciousness => "consciousness",
            Metric::SupplementalOxygen => "supplemental-oxygen",
            Metric::RrInterval => "rr-interval",
            Metric::Position => "position",
            Metric::SignalUnusable => "signal-unusable",
        }
    }

    /// The canonical unit, as UCUM, with its fixed-point scale written out.
    pub const fn canonical_unit(self) -> &'static str {
        match self {
            Metric::BodyTemperature => "cCel",
            Metric::HeartRate => "beat/min x10",
            Metric::RespirationRate => "1/min x10",
            Metric::SpO2 => "% x10",
            Metric::SystolicBp => "mm[Hg]",
            Metric::Consciousness => "ACVPU code",
            Metric::SupplementalOxygen => "boolean",
            Metric::RrInterval => "ms",
            Metric::Position => "udeg, m",
            Metric::SignalUnusable => "ms",
        }
    }

    /// Values outside this closed range (canonical units) are rejected as implausible: they
    /// come from a faulty or misplaced sensor, not from a living person. Positions are checked
    /// by [`GeoFix::is_plausible`] instead.
    pub const fn plausible_range(self) -> (i32, i32) {
        match self {
            Metric::BodyTemperature => (2_500, 4_500),
            Metric::HeartRate => (200, 3_000),
            Metric::RespirationRate => (20, 800),
            Metric::SpO2 => (500, 1_000),
            Metric::SystolicBp => (40, 300),
            Metric::Consciousness => (0, 4),
            Metric::SupplementalOxygen => (0, 1),
            Metric::RrInterval => (200, 3_000),
            Metric::Position => (i32::MIN, i32::MAX),
            // Up to a day of unusable signal in one report.
            Metric::SignalUnusable => (1, 86_400_000),
        }
    }
}

crate::named_enum!(Metric by name, error String = |s| format!("unknown metric {s:?}"));

/// NEWS2's ACVPU scale. Codes are stable: they travel in SenML records and contract evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Consciousness {
    Alert = 0,
    NewConfusion = 1,
    Voice = 2,
    Pain = 3,
    Unresponsive = 4,
}

impl Consciousness {
    pub const fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Alert),
            1 => Some(Self::NewConfusion),
            2 => Some(Self::Voice),
            3 => Some(Self::Pain),
            4 => Some(Self::Unresponsive),
            _ => None,
        }
    }
}

/// A position fix in fixed point. Micro-degrees keep about 0.11 m of resolution at the
/// equator, well below GPS accuracy, and fit in an `i32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeoFix {
    pub lat_udeg: i32,
    pub lon_udeg: i32,
    /// Radius of the fix's uncertainty (the horizontal accuracy a GPS reports), in metres.
    pub accuracy_m: u32,
}

impl GeoFix {
    pub const LAT_UDEG_MAX: i32 = 90_000_000;
    pub const LON_UDEG_MAX: i32 = 180_000_000;
    pub const ACCURACY_M_MAX: u32 = 100_000;

    pub fn is_plausible(&self) -> bool {
        self.lat_udeg.abs() <= Self::LAT_UDEG_MAX
            && self.lon_udeg.abs() <= Self::LON_UDEG_MAX
            && self.accuracy_m <= Self::ACCURACY_M_MAX
    }
}

/// A reading's value in its metric's canonical fixed-point unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Scalar(i32),
    Position(GeoFix),
}

impl Value {
    pub const fn scalar(&self) -> Option<i32> {
        match self {
            Value::Scalar(v) => Some(*v),
            Value::Position(_) => None,
        }
    }

    pub const fn position(&self) -> Option<GeoFix> {
        match self {
            Value::Position(fix) => Some(*fix),
            Value::Scalar(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names serde wrote before it went through `Metric::name` (kebab-case of the variants,
    /// `spo2`): stored records and configurations hold them.
    #[test]
    fn metrics_keep_their_written_names_in_every_form() {
        let written = [
            "body-temperature",
            "heart-rate",
            "respiration-rate",
            "spo2",
            "systolic-bp",
            "consciousness",
            "supplemental-oxygen",
            "rr-interval",
            "position",
            "signal-unusable",
        ];
        for (metric, name) in Metric::ALL.into_iter().zip(written) {
            assert_eq!(metric.to_string(), name);
            let json = serde_json::to_string(&metric).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Metric>(&json).ok(), Some(metric));
            assert_eq!(name.parse::<Metric>().ok(), Some(metric));
        }
        assert!(serde_json::from_str::<Metric>("\"SpO2\"").is_err());
        assert!("Spo2".parse::<Metric>().is_err());
    }
}
