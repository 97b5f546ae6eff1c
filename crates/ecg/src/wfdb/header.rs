//! `.hea` header files (WFDB `header(5)`), single-segment records.

use super::WfdbError;

/// Storage format of a signal in its `.dat` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum SignalFormat {
    /// Two 12-bit two's-complement samples packed in three bytes.
    F212,
    /// 16-bit two's-complement little-endian samples.
    F16,
}

impl SignalFormat {
    fn from_code(code: u32) -> Result<Self, WfdbError> {
        match code {
            212 => Ok(Self::F212),
            16 => Ok(Self::F16),
            other => Err(WfdbError::UnsupportedFormat(other)),
        }
    }
}

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SignalSpec {
    /// Name of the file holding the samples, relative to the header's directory.
    pub file_name: String,
    /// Storage format.
    pub format: SignalFormat,
    /// Bytes to skip at the start of the file (the `+offset` suffix of the format field).
    pub byte_offset: usize,
    /// ADC units per physical unit (WFDB default 200 when absent or 0).
    pub gain: f64,
    /// Sample value that corresponds to 0 physical units (defaults to `adc_zero`).
    pub baseline: i32,
    /// Physical units (default `mV`).
    pub units: String,
    /// ADC resolution in bits (0 if absent).
    pub adc_resolution_bits: u32,
    /// ADC output for 0 V input.
    pub adc_zero: i32,
    /// Value of the first sample, if given.
    pub initial_value: Option<i32>,
    /// 16-bit sum of all samples, if given. Written signed by the WFDB C library and unsigned
    /// by wfdb-python (`49763` is `-15773`); both are read as the same 16 bits.
    pub checksum: Option<i16>,
    /// Signal description (e.g. `MLII`).
    pub description: String,
}

impl SignalSpec {
    /// Converts an ADC sample to physical units.
    pub fn to_physical(&self, adc: i32) -> f64 {
        (f64::from(adc) - f64::from(self.baseline)) / self.gain
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Header {
    /// Record name.
    pub record_name: String,
    /// Samples per second per signal.
    pub sampling_frequency_hz: f64,
    /// Samples per signal, if given.
    pub samples_per_signal: Option<usize>,
    /// Base time `HH:MM:SS[.sss]` as written, if given.
    pub base_time: Option<String>,
    /// Base date as `(year, month, day)`, if given: `DD/MM/YYYY` (WFDB C library, wfdb-python)
    /// or `YYYY-MM-DD` (as in the PhysioNet/CinC 2017 files).
    pub base_date: Option<(u16, u8, u8)>,
    /// One entry per signal, in the order of the header.
    pub signals: Vec<SignalSpec>,
    /// `#` comment lines, without the `#`.
    pub comments: Vec<String>,
}

/// Bound on the number of signals a header may declare.
pub const SIGNALS_MAX: usize = 256;
/// WFDB's default sampling frequency when the header gives none.
pub const DEFAULT_FREQUENCY_HZ: f64 = 250.0;
/// WFDB's default gain when the header gives none or 0.
pub const DEFAULT_GAIN: f64 = 200.0;

fn err(line: usize, message: impl Into<String>) -> WfdbError {
    WfdbError::Header {
        line,
        message: message.into(),
    }
}

fn int<T: std::str::FromStr>(line: usize, field: &str, what: &str) -> Result<T, WfdbError> {
    field
        .parse()
        .map_err(|_| err(line, format!("{what} {field:?} is not a valid integer")))
}

impl Header {
    /// Parses header text.
    pub fn parse(text: &str) -> Result<Self, WfdbError> {
        let mut comments = Vec::new();
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if let Some(comment) = trimmed.strip_prefix('#') {
                comments.push(comment.trim().to_string());
            } else if !trimmed.is_empty() {
                lines.push((index + 1, trimmed));
            }
        }
        let Some(&(record_line, record)) = lines.first() else {
            return Err(err(1, "no record line"));
        };
        let fields: Vec<&str> = record.split_whitespace().collect();
        let name_field = fields.first().copied().unwrap_or_default();
        if name_field.contains('/') {
            return Err(WfdbError::Unsupported("multi-segment record"));
        }
        let signal_count: usize = match fields.get(1) {
            Some(field) => int(record_line, field, "number of signals")?,
            None => return Err(err(record_line, "missing number of signals")),
        };
        if signal_count > SIGNALS_MAX {
            return Err(err(
                record_line,
                format!("{signal_count} signals, at most {SIGNALS_MAX}"),
            ));
        }
        let sampling_frequency_hz = match fields.get(2) {
            None => DEFAULT_FREQUENCY_HZ,
            Some(field) => {
                // `fs[/counter_frequency[(base_counter)]]`
                let fs = field.split('/').next().unwrap_or_default();
                let value: f64 = fs.parse().map_err(|_| {
                    err(
                        record_line,
                        format!("sampling frequency {fs:?} is not a number"),
                    )
                })?;
                if !value.is_finite() || value <= 0.0 {
                    return Err(err(
                        record_line,
                        format!("sampling frequency {value} is not positive"),
                    ));
                }
                value
            }
        };
        let samples_per_signal = match fields.get(3) {
            None => None,
            Some(field) => Some(int::<usize>(record_line, field, "number of samples")?),
        };
        // Base time then base date (header(5)); some writers (the CinC 2017 files) put the
        // date first, so each field is recognised by its form. Like the WFDB library, a field
        // of neither form is ignored rather than refused: it does not affect the samples.
        let (mut base_time, mut base_date) = (None, None);
        for field in fields.iter().skip(4).take(2) {
            if field.contains(':') {
                base_time = Some(field.to_string());
            } else if let Some(date) = parse_date(field) {
                base_date = Some(date);
            }
        }
        let signal_lines = &lines[1..];
        if signal_lines.len() < signal_count {
            return Err(err(
                record_line,
                format!(
                    "{signal_count} signals announced, {} signal lines found",
                    signal_lines.len()
                ),
            ));
        }
        let signals = signal_lines[..signal_count]
            .iter()
            .map(|&(line, text)| parse_signal_line(line, text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            record_name: name_field.to_string(),
            sampling_frequency_hz,
            samples_per_signal,
            base_time,
            base_date,
            signals,
            comments,
        })
    }
}

fn parse_signal_line(line: usize, text: &str) -> Result<SignalSpec, WfdbError> {
    let mut fields = text.split_whitespace();
    let file_name = fields.next().unwrap_or_default().to_string();
    let format_field = fields
        .next()
        .ok_or_else(|| err(line, "missing signal format"))?;
    // `format[xsamples_per_frame][:skew][+byte_offset]`
    let (format_part, byte_offset) = match format_field.split_once('+') {
        Some((format, offset)) => (format, int::<usize>(line, offset, "byte offset")?),
        None => (format_field, 0),
    };
    if format_part.contains(':') {
        return Err(WfdbError::Unsupported("signal skew"));
    }
    let (code, frame) = match format_part.split_once('x') {
        Some((code, frame)) => (code, Some(frame)),
        None => (format_part, None),
    };
    if let Some(frame) = frame
        && int::<u32>(line, frame, "samples per frame")? != 1
    {
        return Err(WfdbError::Unsupported("more than one sample per frame"));
    }
    let format = SignalFormat::from_code(int(line, code, "signal format")?)?;

    // `gain[(baseline)][/units]`
    let (mut gain, mut baseline, mut units) = (DEFAULT_GAIN, None, "mV".to_string());
    if let Some(field) = fields.next() {
        let (gain_baseline, unit_part) = match field.split_once('/') {
            Some((left, right)) => (left, Some(right)),
            None => (field, None),
        };
        if let Some(unit) = unit_part {
            units = unit.to_string();
        }
        let gain_text = match gain_baseline.split_once('(') {
            Some((gain_text, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| err(line, "unclosed baseline"))?;
                baseline = Some(int::<i32>(line, inner, "baseline")?);
                gain_text
            }
            None => gain_baseline,
        };
        let value: f64 = gain_text
            .parse()
            .map_err(|_| err(line, format!("gain {gain_text:?} is not a number")))?;
        if !value.is_finite() || value < 0.0 {
            return Err(err(line, format!("gain {value} is not valid")));
        }
        if value > 0.0 {
            gain = value;
        }
    }
    let adc_resolution_bits = match fields.next() {
        Some(field) => int(line, field, "ADC resolution")?,
        None => 0,
    };
    let adc_zero = match fields.next() {
        Some(field) => int(line, field, "ADC zero")?,
        None => 0,
    };
    let initial_value = fields
        .next()
        .map(|field| int(line, field, "initial value"))
        .transpose()?;
    let checksum = fields
        .next()
        .map(|field| parse_checksum(line, field))
        .transpose()?;
    let _block_size: Option<u32> = fields
        .next()
        .map(|field| int(line, field, "block size"))
        .transpose()?;
    let description = fields.collect::<Vec<_>>().join(" ");
    Ok(SignalSpec {
        file_name,
        format,
        byte_offset,
        gain,
        baseline: baseline.unwrap_or(adc_zero),
        units,
        adc_resolution_bits,
        adc_zero,
        initial_value,
        checksum,
        description,
    })
}

/// A 16-bit checksum written signed (`-15773`) or unsigned (`49763`).
fn parse_checksum(line: usize, field: &str) -> Result<i16, WfdbError> {
    let value: i64 = int(line, field, "checksum")?;
    if !(i64::from(i16::MIN)..=i64::from(u16::MAX)).contains(&value) {
        return Err(err(
            line,
            format!("checksum {value} does not fit in 16 bits"),
        ));
    }
    // The low 16 bits, as WFDB compares them.
    Ok(value as u16 as i16)
}

/// `DD/MM/YYYY` or `YYYY-MM-DD`.
fn parse_date(field: &str) -> Option<(u16, u8, u8)> {
    let (year, month, day) = if let Some((day, rest)) = field.split_once('/') {
        let (month, year) = rest.split_once('/')?;
        (year, month, day)
    } else {
        let mut parts = field.splitn(3, '-');
        (parts.next()?, parts.next()?, parts.next()?)
    };
    let (year, month, day): (u16, u8, u8) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mitdb_header() {
        let header = Header::parse(
            "101 2 360 650000\n101.dat 212 200 11 1024 955 29832 0 MLII\n\
             101.dat 212 200 11 1024 992 19589 0 V1\n# 75 F 1011 654 x1\n# Diapres\n",
        )
        .unwrap();
        assert_eq!(header.record_name, "101");
        assert_eq!(header.sampling_frequency_hz, 360.0);
        assert_eq!(header.samples_per_signal, Some(650_000));
        assert_eq!(header.signals.len(), 2);
        let s = &header.signals[1];
        assert_eq!(
            (s.format, s.gain, s.baseline, s.adc_zero),
            (SignalFormat::F212, 200.0, 1024, 1024)
        );
        assert_eq!((s.initial_value, s.checksum), (Some(992), Some(19589)));
        assert_eq!(s.description, "V1");
        assert_eq!(header.comments, vec!["75 F 1011 654 x1", "Diapres"]);
    }

    #[test]
    fn parses_baseline_units_offset_and_defaults() {
        let header = Header::parse("r 1\nr.dat 16+24 1000(-5)/uV 16 3\n").unwrap();
        let s = &header.signals[0];
        assert_eq!(header.sampling_frequency_hz, DEFAULT_FREQUENCY_HZ);
        assert_eq!(
            (s.format, s.byte_offset, s.gain, s.baseline),
            (SignalFormat::F16, 24, 1000.0, -5)
        );
        assert_eq!((s.units.as_str(), s.adc_zero, s.checksum), ("uV", 3, None));
        assert_eq!(s.to_physical(995), 1.0);
    }

    #[test]
    fn parses_wfdb_python_header_with_unsigned_checksum() {
        // As wfdb-python's `wrsamp` writes it: time and date, gain with baseline, unsigned sum.
        let header = Header::parse(
            "100 2 360 650000 10:30:00 25/12/2020\n\
             100.dat 212 200(1024)/mV 11 1024 995 49763 0 MLII\n\
             100.dat 212 200(1024)/mV 11 1024 1011 20052 0 V5\n",
        )
        .unwrap();
        assert_eq!(header.base_time.as_deref(), Some("10:30:00"));
        assert_eq!(header.base_date, Some((2020, 12, 25)));
        assert_eq!(header.signals[0].checksum, Some(-15773));
        assert_eq!(header.signals[0].baseline, 1024);
    }

    #[test]
    fn parses_wfdb_c_header_with_signed_checksum_and_date() {
        let header =
            Header::parse("r 1 250 10 0:00:00.000 01/02/1999\nr.dat 16 200 16 0 5 -15773 0 II\n")
                .unwrap();
        assert_eq!(header.base_date, Some((1999, 2, 1)));
        assert_eq!(header.signals[0].checksum, Some(-15773));
    }

    #[test]
    fn parses_cinc2017_header_with_iso_date_and_mat_offset() {
        let header = Header::parse(
            "A00001 1 300 9000 2014-05-08 05:05:15 \nA00001.mat 16+24 1000/mV 16 0 -127 0 0 ECG \n",
        );
        // The challenge wrote the date before the time.
        let header = header.unwrap();
        let s = &header.signals[0];
        assert_eq!(header.base_date, Some((2014, 5, 8)));
        assert_eq!(header.base_time.as_deref(), Some("05:05:15"));
        assert_eq!(
            (s.file_name.as_str(), s.format, s.byte_offset),
            ("A00001.mat", SignalFormat::F16, 24)
        );
        assert_eq!(
            (s.gain, s.initial_value, s.checksum),
            (1000.0, Some(-127), Some(0))
        );
    }

    #[test]
    fn rejects_out_of_range_checksums_and_ignores_invalid_dates() {
        assert!(Header::parse("r 1\nr.dat 16 200 16 0 0 65536\n").is_err());
        assert!(Header::parse("r 1\nr.dat 16 200 16 0 0 -32769\n").is_err());
        let header = Header::parse("r 1 250 10 0:00:00 31/13/2000\nr.dat 16\n").unwrap();
        assert_eq!(header.base_date, None);
    }

    #[test]
    fn rejects_inconsistent_headers() {
        assert!(matches!(Header::parse(""), Err(WfdbError::Header { .. })));
        assert!(matches!(
            Header::parse("r 2 360\nr.dat 212\n"),
            Err(WfdbError::Header { line: 1, .. })
        ));
        assert!(matches!(
            Header::parse("r 1 -3\nr.dat 212\n"),
            Err(WfdbError::Header { .. })
        ));
        assert!(matches!(
            Header::parse("r 1\nr.dat 80\n"),
            Err(WfdbError::UnsupportedFormat(80))
        ));
        assert!(matches!(
            Header::parse("r/2 1\n"),
            Err(WfdbError::Unsupported(_))
        ));
        assert!(matches!(
            Header::parse("r 1\nr.dat 212 x\n"),
            Err(WfdbError::Header { line: 2, .. })
        ));
    }
}
