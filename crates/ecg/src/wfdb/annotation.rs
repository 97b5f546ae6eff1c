//! Annotation files in MIT format (WFDB `annot(5)`).
//!
//! The file is a sequence of 16-bit little-endian words. In each word the 6 high bits are a code
//! `A` and the 10 low bits a value `I`:
//! - `A` in 1..=49: an annotation of type `A`, `I` samples after the previous one;
//! - `A = 59` (SKIP): the next two words hold a 32-bit time increment (high word first) that
//!   applies to the next annotation;
//! - `A = 60` (NUM), `61` (SUB), `62` (CHN): set the `num`, `subtype` or `channel` field of the
//!   annotation just read (`num` and `channel` then carry over to the following annotations);
//! - `A = 63` (AUX): `I` bytes of auxiliary text follow, padded to an even length (rhythm labels
//!   such as `(AFIB`);
//! - `A = 0, I = 0`: end of file. `A = 0, I > 0` is a `NOTQRS` annotation.

use std::path::Path;

use super::{WfdbError, read_file, with_extension};

/// A WFDB annotation type code (`anntyp`), e.g. 1 = `N`, 5 = `V`, 28 = `+` (rhythm change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnnotationCode(pub u8);

/// Mnemonics of codes 0..=49, as in WFDB's `ecgcodes.h` (`' '` where none is defined).
const MNEMONICS: [&str; 50] = [
    " ", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", " ", "|", " ", "s",
    "T", "*", "D", "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n", "@", "x",
    "f", "(", ")", "r", " ", " ", " ", " ", " ", " ", " ", " ",
];

impl AnnotationCode {
    /// Rhythm change (`+`); the rhythm is in the aux text, e.g. `(AFIB`.
    pub const RHYTHM: Self = Self(28);
    /// Start of ventricular flutter or fibrillation (`[`).
    pub const VF_ON: Self = Self(32);
    /// End of ventricular flutter or fibrillation (`]`).
    pub const VF_OFF: Self = Self(33);

    /// The one-character WFDB mnemonic (`N`, `V`, `+`, ...).
    pub fn mnemonic(self) -> &'static str {
        MNEMONICS.get(usize::from(self.0)).copied().unwrap_or(" ")
    }

    /// True for the WFDB beat codes (`isqrs`): N L R B A a J S V r F e j n E / f Q ?.
    pub fn is_beat(self) -> bool {
        matches!(self.0, 1..=13 | 25 | 30 | 34 | 35 | 38 | 41)
    }
}

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Sample index (time) of the annotation.
    pub sample: i64,
    /// Annotation type.
    pub code: AnnotationCode,
    /// `subtyp` field.
    pub subtype: i16,
    /// `chan` field.
    pub channel: i16,
    /// `num` field.
    pub num: i16,
    /// Auxiliary text (rhythm labels such as `(AFIB`), without trailing NULs.
    pub aux: Option<String>,
}

const ACMAX: u16 = 49;
const SKIP: u16 = 59;
const NUM: u16 = 60;
const SUB: u16 = 61;
const CHN: u16 = 62;
const AUX: u16 = 63;

/// Sign-extends the 10-bit value of a NUM / SUB / CHN word.
fn sign10(value: u16) -> i16 {
    ((value << 6) as i16) >> 6
}

/// Parses an MIT-format annotation file.
pub fn parse_annotations(bytes: &[u8]) -> Result<Vec<Annotation>, WfdbError> {
    let word_at = |offset: usize| -> Result<u16, WfdbError> {
        match bytes.get(offset..offset + 2) {
            Some(pair) => Ok(u16::from_le_bytes([pair[0], pair[1]])),
            None => Err(WfdbError::Annotation {
                offset,
                message: "file ends inside a word",
            }),
        }
    };
    let mut out: Vec<Annotation> = Vec::new();
    let (mut offset, mut time, mut channel, mut num) = (0usize, 0i64, 0i16, 0i16);
    let mut pending_skip = 0i64;
    loop {
        if offset >= bytes.len() {
            // WFDB tolerates a missing end-of-file word.
            break;
        }
        let word = word_at(offset)?;
        let (code, value) = (word >> 10, word & 0x3ff);
        let at = offset;
        offset += 2;
        match code {
            0 if value == 0 => break,
            0..=ACMAX => {
                time = time
                    .checked_add(pending_skip + i64::from(value))
                    .filter(|t| *t >= 0)
                    .ok_or(WfdbError::Annotation {
                        offset: at,
                        message: "annotation time out of range",
                    })?;
                pending_skip = 0;
                out.push(Annotation {
                    sample: time,
                    code: AnnotationCode(code as u8),
                    subtype: 0,
                    channel,
                    num,
                    aux: None,
                });
            }
            SKIP => {
                let high = word_at(offset)?;
                let low = word_at(offset + 2)?;
                offset += 4;
                pending_skip += i64::from(((u32::from(high) << 16) | u32::from(low)) as i32);
            }
            NUM | SUB | CHN | AUX => {
                let Some(last) = out.last_mut() else {
                    return Err(WfdbError::Annotation {
                        offset: at,
                        message: "modifier before any annotation",
                    });
                };
                match code {
                    NUM => {
                        num = sign10(value);
                        last.num = num;
                    }
                    SUB => last.subtype = sign10(value),
                    CHN => {
                        channel = sign10(value);
                        last.channel = channel;
                    }
                    _ => {
                        let length = usize::from(value);
                        let text =
                            bytes
                                .get(offset..offset + length)
                                .ok_or(WfdbError::Annotation {
                                    offset,
                                    message: "file ends inside aux text",
                                })?;
                        offset += length + (length & 1);
                        let text = String::from_utf8_lossy(text);
                        last.aux = Some(text.trim_end_matches('\0').to_string());
                    }
                }
            }
            _ => {
                return Err(WfdbError::Annotation {
                    offset: at,
                    message: "reserved annotation code",
                });
            }
        }
    }
    Ok(out)
}

/// Reads `record.ext` (e.g. `ext = "atr"`), `record` being a path without extension.
pub fn read_annotations(record: &Path, ext: &str) -> Result<Vec<Annotation>, WfdbError> {
    parse_annotations(&read_file(&with_extension(record, ext))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(code: u16, value: u16) -> [u8; 2] {
        ((code << 10) | value).to_le_bytes()
    }

    #[test]
    fn parses_all_pseudo_codes() {
        let mut bytes = Vec::new();
        bytes.extend(word(28, 18)); // '+' at 18
        bytes.extend(word(AUX, 5));
        bytes.extend(b"(AFIB\0");
        bytes.extend(word(1, 100)); // N at 118
        bytes.extend(word(SUB, 3));
        bytes.extend(word(CHN, 1));
        bytes.extend(word(NUM, 0x3ff)); // -1
        bytes.extend(word(SKIP, 0));
        bytes.extend(1u16.to_le_bytes()); // high word
        bytes.extend(2u16.to_le_bytes()); // low word: skip 65538
        bytes.extend(word(5, 2)); // V at 118 + 65538 + 2
        bytes.extend(word(0, 0));
        bytes.extend(word(1, 1)); // after EOF: ignored
        let annotations = parse_annotations(&bytes).unwrap();
        assert_eq!(annotations.len(), 3);
        assert_eq!(annotations[0].aux.as_deref(), Some("(AFIB"));
        assert_eq!(annotations[0].code.mnemonic(), "+");
        let n = &annotations[1];
        assert_eq!((n.sample, n.subtype, n.channel, n.num), (118, 3, 1, -1));
        let v = &annotations[2];
        assert_eq!(
            (v.sample, v.code.mnemonic(), v.subtype, v.channel, v.num),
            (65_658, "V", 0, 1, -1)
        );
        assert!(v.code.is_beat() && !annotations[0].code.is_beat());
    }

    #[test]
    fn rejects_truncated_files() {
        assert!(parse_annotations(&[1]).is_err());
        let mut bytes = word(1, 1).to_vec();
        bytes.extend(word(AUX, 10));
        bytes.extend(b"abc");
        assert!(matches!(
            parse_annotations(&bytes),
            Err(WfdbError::Annotation { .. })
        ));
        let skip = [word(SKIP, 0), [0, 0]].concat();
        assert!(parse_annotations(&skip).is_err());
        assert!(parse_annotations(&word(NUM, 1)).is_err());
    }
}
