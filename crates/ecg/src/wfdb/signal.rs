//! Signal files (WFDB `signal(5)`), formats 212 and 16, in `.dat` files or in MATLAB v4 `.mat`
//! files (as PhysioNet distributes some databases, e.g. the CinC 2017 challenge: format `16+24`,
//! the samples after the 24-byte MAT header).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::header::{Header, SignalFormat};
use super::{WfdbError, read_file, with_extension};

/// A record: its header and the samples of every signal, in ADC units.
#[derive(Debug, Clone)]
pub struct Record {
    /// The parsed header.
    pub header: Header,
    /// `signals[i][n]`: sample `n` of signal `i`. All signals have the same length.
    pub signals: Vec<Vec<i32>>,
    /// Checksum and initial-value mismatches found while reading (see [`Check`]).
    pub warnings: Vec<String>,
}

/// What a checksum or initial-value mismatch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Check {
    /// A warning kept in [`Record::warnings`], as the WFDB C library prints one and reads on.
    #[default]
    Warn,
    /// An error ([`WfdbError::SignalMismatch`]).
    Strict,
}

impl Record {
    /// Reads `record.hea` and its signal files; `record` is a path without extension, as in
    /// WFDB (`data/mitdb/100`).
    pub fn open(record: &Path) -> Result<Self, WfdbError> {
        Self::open_checked(record, Check::Warn)
    }

    /// [`Record::open`], with mismatches treated as `check` says.
    pub fn open_checked(record: &Path, check: Check) -> Result<Self, WfdbError> {
        let header_path = with_extension(record, "hea");
        let bytes = read_file(&header_path)?;
        let text = String::from_utf8_lossy(&bytes);
        let header = Header::parse(&text)?;
        let dir = record.parent().map(Path::to_path_buf).unwrap_or_default();
        let (signals, mismatches) = decode_signals_checked(
            &header,
            |name| {
                let path: PathBuf = dir.join(name);
                read_file(&path).map(Cow::Owned)
            },
            check,
        )?;
        let warnings = mismatches.iter().map(ToString::to_string).collect();
        Ok(Self {
            header,
            signals,
            warnings,
        })
    }

    /// Samples per second per signal.
    pub fn sampling_frequency_hz(&self) -> f64 {
        self.header.sampling_frequency_hz
    }

    /// Number of samples per signal.
    pub fn len(&self) -> usize {
        self.signals.first().map_or(0, Vec::len)
    }

    /// True if the record has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes the signals that `header` describes; `file` returns the bytes of a named signal file.
///
/// Signals stored in the same file are interleaved frame by frame in header order and must share
/// one format. With `samples_per_signal` in the header, every file must hold that many complete
/// frames; without it, as many complete frames as the shortest file holds are read. Checksums and
/// initial values given in the header are verified: a mismatch is an error.
pub fn decode_signals<'a>(
    header: &Header,
    file: impl FnMut(&str) -> Result<Cow<'a, [u8]>, WfdbError>,
) -> Result<Vec<Vec<i32>>, WfdbError> {
    decode_signals_checked(header, file, Check::Strict).map(|(signals, _)| signals)
}

/// [`decode_signals`], with checksum and initial-value mismatches returned beside the signals
/// ([`Check::Warn`]) or as an error ([`Check::Strict`]).
pub fn decode_signals_checked<'a>(
    header: &Header,
    mut file: impl FnMut(&str) -> Result<Cow<'a, [u8]>, WfdbError>,
    check: Check,
) -> Result<(Vec<Vec<i32>>, Vec<WfdbError>), WfdbError> {
    // Group signals by file, in order of first appearance.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, spec) in header.signals.iter().enumerate() {
        match groups.iter_mut().find(|(name, _)| *name == spec.file_name) {
            Some((_, members)) => members.push(index),
            None => groups.push((spec.file_name.clone(), vec![index])),
        }
    }
    let mut decoded: Vec<(Vec<usize>, Vec<i32>, usize)> = Vec::with_capacity(groups.len());
    for (name, members) in groups {
        let first = &header.signals[members[0]];
        if members
            .iter()
            .any(|&i| header.signals[i].format != first.format)
        {
            return Err(WfdbError::Unsupported(
                "signals of one file in different formats",
            ));
        }
        let bytes = file(&name)?;
        if is_mat(&name) {
            check_mat4(
                &name,
                &bytes,
                first.format,
                first.byte_offset,
                members.len(),
            )?;
        }
        let body = bytes.get(first.byte_offset..).unwrap_or_default();
        let per_frame = members.len();
        let available = match first.format {
            // Three bytes per pair of samples; a lone last sample takes two bytes.
            SignalFormat::F212 => {
                (body.len() / 3 * 2 + usize::from(body.len() % 3 >= 2)) / per_frame
            }
            SignalFormat::F16 => body.len() / 2 / per_frame,
        };
        let frames = match header.samples_per_signal {
            Some(expected) if expected > available => {
                return Err(WfdbError::TruncatedSignal {
                    file: name,
                    expected,
                    available,
                });
            }
            Some(expected) => expected,
            None => available,
        };
        let samples = match first.format {
            SignalFormat::F212 => decode_212(body, frames * per_frame),
            SignalFormat::F16 => decode_16(body, frames * per_frame),
        };
        decoded.push((members, samples, frames));
    }
    let frames = decoded
        .iter()
        .map(|(_, _, frames)| *frames)
        .min()
        .unwrap_or(0);
    let mut signals = vec![Vec::new(); header.signals.len()];
    for (members, samples, _) in decoded {
        let per_frame = members.len();
        for (slot, &signal) in members.iter().enumerate() {
            signals[signal] = samples
                .iter()
                .skip(slot)
                .step_by(per_frame)
                .take(frames)
                .copied()
                .collect();
        }
    }
    let mismatches = mismatches(header, &signals);
    match check {
        Check::Strict if !mismatches.is_empty() => Err(mismatches
            .into_iter()
            .next()
            .unwrap_or(WfdbError::Unsupported("mismatch"))),
        _ => Ok((signals, mismatches)),
    }
}

fn mismatches(header: &Header, signals: &[Vec<i32>]) -> Vec<WfdbError> {
    let mut out = Vec::new();
    for (index, (spec, samples)) in header.signals.iter().zip(signals).enumerate() {
        if let (Some(expected), Some(&found)) = (spec.initial_value, samples.first())
            && expected != found
        {
            out.push(WfdbError::SignalMismatch {
                signal: index,
                what: "initial value",
                expected: expected.into(),
                found: found.into(),
            });
        }
        if let Some(expected) = spec.checksum {
            // WFDB: the low 16 bits of the sum of all samples, as a signed number.
            let found = samples
                .iter()
                .fold(0i16, |sum, &s| sum.wrapping_add(s as i16));
            if found != expected {
                out.push(WfdbError::SignalMismatch {
                    signal: index,
                    what: "checksum",
                    expected: expected.into(),
                    found: found.into(),
                });
            }
        }
    }
    out
}

fn is_mat(name: &str) -> bool {
    name.len() > 4 && name[name.len() - 4..].eq_ignore_ascii_case(".mat")
}

/// Checks the MATLAB v4 matrix header of a `.mat` signal file against the WFDB header: one
/// little-endian, real, 16-bit integer matrix (type code `MOPT` = 0030) of one row per signal,
/// whose data start at the header's byte offset. WFDB itself only skips the offset; the check
/// refuses files it would misread (another precision, big-endian, complex data).
fn check_mat4(
    name: &str,
    bytes: &[u8],
    format: SignalFormat,
    byte_offset: usize,
    signals: usize,
) -> Result<(), WfdbError> {
    let fail = |message: String| WfdbError::Mat {
        file: name.to_string(),
        message,
    };
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(kind), Some(rows), Some(_cols), Some(imaginary), Some(name_len)) =
        (word(0), word(1), word(2), word(3), word(4))
    else {
        return Err(fail("shorter than a MATLAB v4 header".into()));
    };
    if format != SignalFormat::F16 || kind != 30 || imaginary != 0 {
        return Err(fail(format!(
            "MATLAB v4 type {kind:04} (imaginary {imaginary}) is not little-endian real int16 for format 16"
        )));
    }
    if rows as usize != signals {
        return Err(fail(format!(
            "{rows} rows, header has {signals} signals in it"
        )));
    }
    let data_offset = 20 + name_len as usize;
    if data_offset != byte_offset {
        return Err(fail(format!(
            "data start at byte {data_offset}, header says {byte_offset}"
        )));
    }
    Ok(())
}

/// Sign-extends a 12-bit value.
fn sign12(value: u16) -> i32 {
    i32::from(((value << 4) as i16) >> 4)
}

fn decode_212(body: &[u8], count: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(count);
    for chunk in body.chunks(3) {
        if out.len() >= count {
            break;
        }
        let b0 = u16::from(chunk[0]);
        let b1 = u16::from(chunk.get(1).copied().unwrap_or(0));
        out.push(sign12(b0 | ((b1 & 0x0f) << 8)));
        if out.len() < count
            && let Some(&b2) = chunk.get(2)
        {
            out.push(sign12(u16::from(b2) | ((b1 & 0xf0) << 4)));
        }
    }
    out.truncate(count);
    out
}

fn decode_16(body: &[u8], count: usize) -> Vec<i32> {
    body.chunks_exact(2)
        .take(count)
        .map(|pair| i32::from(i16::from_le_bytes([pair[0], pair[1]])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Header {
        Header::parse(text).unwrap()
    }

    #[test]
    fn decodes_212_interleaved() {
        // Samples 0x123 = 291, -1 (0xfff), 0x7ff = 2047, -2048 (0x800).
        let bytes = [0x23, 0xf1, 0xff, 0xff, 0x87, 0x00];
        let h = header("r 2 360 2\nr.dat 212\nr.dat 212\n");
        let signals = decode_signals(&h, |_| Ok(Cow::Borrowed(&bytes[..]))).unwrap();
        assert_eq!(signals, vec![vec![291, 2047], vec![-1, -2048]]);
    }

    #[test]
    fn decodes_16_with_offset_and_checks_checksum() {
        let bytes = [9, 9, 0x01, 0x00, 0xff, 0xff, 0x00, 0x80];
        let h = header("r 1 100\nr.dat 16+2 200 16 0 1 -32768\n");
        let signals = decode_signals(&h, |_| Ok(Cow::Borrowed(&bytes[..]))).unwrap();
        assert_eq!(signals, vec![vec![1, -1, -32768]]);
        let bad = header("r 1 100\nr.dat 16+2 200 16 0 1 5\n");
        let error = decode_signals(&bad, |_| Ok(Cow::Borrowed(&bytes[..]))).unwrap_err();
        assert!(matches!(
            error,
            WfdbError::SignalMismatch {
                what: "checksum",
                ..
            }
        ));
    }

    #[test]
    fn mismatches_are_warnings_unless_strict() {
        let bytes = [0x01, 0x00, 0xff, 0xff];
        let h = header("r 1 100\nr.dat 16 200 16 0 7 5\n");
        let (signals, warnings) =
            decode_signals_checked(&h, |_| Ok(Cow::Borrowed(&bytes[..])), Check::Warn).unwrap();
        assert_eq!(signals, vec![vec![1, -1]]);
        let what: Vec<&str> = warnings
            .iter()
            .map(|w| match w {
                WfdbError::SignalMismatch { what, .. } => *what,
                _ => "other",
            })
            .collect();
        assert_eq!(what, vec!["initial value", "checksum"]);
        assert!(
            decode_signals_checked(&h, |_| Ok(Cow::Borrowed(&bytes[..])), Check::Strict).is_err()
        );
    }

    #[test]
    fn unsigned_checksum_matches_signed_sum() {
        // Samples summing to -15773 (low 16 bits 49763), as wfdb-python writes the checksum.
        let bytes = (-15773i16).to_le_bytes();
        let h = header("r 1 100\nr.dat 16 200 16 0 -15773 49763\n");
        let (_, warnings) =
            decode_signals_checked(&h, |_| Ok(Cow::Borrowed(&bytes[..])), Check::Strict).unwrap();
        assert!(warnings.is_empty());
    }

    /// A MATLAB v4 file as the CinC 2017 challenge wrote it: a 1 x N int16 matrix named `val`.
    fn mat4(samples: &[i16], kind: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [kind, 1, samples.len() as u32, 0, 4] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(b"val\0");
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn reads_mat4_signal_files() {
        let bytes = mat4(&[-127, -162, 300], 30);
        // The checksum 0 of the challenge's headers is wrong: a warning only.
        let h = header("A1 1 300 3 2014-05-08 05:05:15\nA1.mat 16+24 1000/mV 16 0 -127 0 0 ECG\n");
        let (signals, warnings) =
            decode_signals_checked(&h, |_| Ok(Cow::Borrowed(&bytes[..])), Check::Warn).unwrap();
        assert_eq!(signals, vec![vec![-127, -162, 300]]);
        assert_eq!(warnings.len(), 1);
        let wrong_offset = header("A1 1 300 3\nA1.mat 16+20 1000/mV\n");
        assert!(matches!(
            decode_signals(&wrong_offset, |_| Ok(Cow::Borrowed(&bytes[..]))),
            Err(WfdbError::Mat { .. })
        ));
        let doubles = mat4(&[1, 2, 3], 0);
        assert!(matches!(
            decode_signals(&h, |_| Ok(Cow::Borrowed(&doubles[..]))),
            Err(WfdbError::Mat { .. })
        ));
    }

    #[test]
    fn reports_truncated_files() {
        let bytes = [0u8; 5];
        let h = header("r 2 360 2\nr.dat 212\nr.dat 212\n");
        let error = decode_signals(&h, |_| Ok(Cow::Borrowed(&bytes[..]))).unwrap_err();
        assert!(matches!(
            error,
            WfdbError::TruncatedSignal {
                expected: 2,
                available: 1,
                ..
            }
        ));
    }

    #[test]
    fn separate_files_per_signal() {
        let a = [1u8, 0, 2, 0];
        let b = [3u8, 0, 4, 0];
        let h = header("r 2 100\na.dat 16\nb.dat 16\n");
        let signals = decode_signals(&h, |name| {
            Ok(Cow::Borrowed(if name == "a.dat" { &a[..] } else { &b[..] }))
        })
        .unwrap();
        assert_eq!(signals, vec![vec![1, 2], vec![3, 4]]);
    }
}
