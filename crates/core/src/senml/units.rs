//! Which SenML / UCUM units each metric accepts, and how a value in that unit becomes the
//! metric's canonical fixed-point integer.

use crate::Metric;

/// How to turn a value in some unit into canonical units.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Conversion {
    /// Multiply by the scale, then round to the nearest integer.
    Scale(f64),
    /// Degrees Fahrenheit to hundredths of a degree Celsius.
    FahrenheitToCentiCelsius,
    /// Kelvin to hundredths of a degree Celsius.
    KelvinToCentiCelsius,
    /// A code or count that must already be an integer (ACVPU, a 0/1 flag).
    Exact,
}

impl Conversion {
    /// `None` when the result is not a finite integer in range of `i32` (or, for
    /// [`Conversion::Exact`], when the value has a fractional part).
    pub(crate) fn apply(self, value: f64) -> Option<i32> {
        let converted = match self {
            Conversion::Scale(scale) => (value * scale).round(),
            Conversion::FahrenheitToCentiCelsius => ((value - 32.0) * 500.0 / 9.0).round(),
            Conversion::KelvinToCentiCelsius => ((value - 273.15) * 100.0).round(),
            Conversion::Exact if value.fract() == 0.0 => value,
            Conversion::Exact => return None,
        };
        let in_range = converted.is_finite()
            && converted >= f64::from(i32::MIN)
            && converted <= f64::from(i32::MAX);
        // Truncation cannot happen: the value is integral and in range.
        in_range.then_some(converted as i32)
    }
}

/// The record names that carry a metric's value. A position arrives as three records sharing
/// one time: latitude, longitude and (optionally) the fix's accuracy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Scalar(Metric),
    Latitude,
    Longitude,
    Accuracy,
}

impl Field {
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        match name {
            "lat" => Some(Field::Latitude),
            "lon" => Some(Field::Longitude),
            "accuracy" => Some(Field::Accuracy),
            "position" => None,
            other => other.parse().ok().map(Field::Scalar),
        }
    }

    /// Accepted units, the first being the one devices should send. `""` is a record without a
    /// unit, accepted only for dimensionless codes.
    pub(crate) fn units(self) -> &'static [(&'static str, Conversion)] {
        use Conversion::*;
        match self {
            Field::Scalar(Metric::BodyTemperature) => &[
                ("Cel", Scale(100.0)),
                ("[degF]", FahrenheitToCentiCelsius),
                ("K", KelvinToCentiCelsius),
            ],
            Field::Scalar(Metric::HeartRate) => &[
                ("beat/min", Scale(10.0)),
                ("/min", Scale(10.0)),
                ("{beats}/min", Scale(10.0)),
            ],
            Field::Scalar(Metric::RespirationRate) => &[
                ("1/min", Scale(10.0)),
                ("/min", Scale(10.0)),
                ("{breaths}/min", Scale(10.0)),
            ],
            Field::Scalar(Metric::SpO2) => &[("%", Scale(10.0))],
            Field::Scalar(Metric::SystolicBp) => &[("mmHg", Scale(1.0)), ("mm[Hg]", Scale(1.0))],
            Field::Scalar(Metric::Consciousness) => &[("", Exact), ("{ACVPU}", Exact)],
            Field::Scalar(Metric::SupplementalOxygen) => &[("", Exact), ("/", Exact)],
            Field::Scalar(Metric::RrInterval) => &[("ms", Scale(1.0)), ("s", Scale(1000.0))],
            Field::Scalar(Metric::Position) => &[],
            Field::Scalar(Metric::SignalUnusable) => &[("ms", Scale(1.0)), ("s", Scale(1000.0))],
            Field::Latitude => &[("lat", Scale(1e6))],
            Field::Longitude => &[("lon", Scale(1e6))],
            Field::Accuracy => &[("m", Scale(1.0))],
        }
    }

    pub(crate) fn conversion(self, unit: &str) -> Option<Conversion> {
        self.units()
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, conversion)| *conversion)
    }

    /// The unit and divisor a device uses to write a canonical value back into SenML.
    pub(crate) fn preferred_unit(self) -> (&'static str, f64) {
        match self.units().first() {
            Some((unit, Conversion::Scale(scale))) => (unit, *scale),
            Some((unit, _)) => (unit, 1.0),
            None => ("", 1.0),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Scalar(metric) => metric.name(),
            Field::Latitude => "lat",
            Field::Longitude => "lon",
            Field::Accuracy => "accuracy",
        }
    }
}

/// Every unit any metric accepts, to tell "unknown unit" apart from "unit of another metric".
pub(crate) fn is_known_unit(unit: &str) -> bool {
    let scalars = Metric::ALL.into_iter().map(Field::Scalar);
    let position = [Field::Latitude, Field::Longitude, Field::Accuracy];
    scalars
        .chain(position)
        .any(|field| field.conversion(unit).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fahrenheit_and_kelvin_convert_to_centi_celsius() {
        let f = Field::Scalar(Metric::BodyTemperature);
        assert_eq!(
            f.conversion("[degF]").and_then(|c| c.apply(98.6)),
            Some(3700)
        );
        assert_eq!(
            f.conversion("[degF]").and_then(|c| c.apply(100.4)),
            Some(3800)
        );
        assert_eq!(f.conversion("K").and_then(|c| c.apply(310.15)), Some(3700));
        assert_eq!(f.conversion("Cel").and_then(|c| c.apply(38.25)), Some(3825));
    }

    #[test]
    fn exact_codes_reject_fractions_and_huge_values_do_not_wrap() {
        assert_eq!(Conversion::Exact.apply(2.0), Some(2));
        assert_eq!(Conversion::Exact.apply(2.5), None);
        assert_eq!(Conversion::Scale(1e6).apply(1e30), None);
        assert_eq!(Conversion::Scale(10.0).apply(f64::NAN), None);
    }
}
