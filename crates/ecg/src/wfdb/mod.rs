//! Reading PhysioNet WFDB records: headers (`.hea`, as written by the WFDB C library and by
//! wfdb-python), signal files in formats 212 and 16 (`.dat`, or MATLAB v4 `.mat`)
//! and annotation files in MIT format (`.atr`).
//!
//! The parsers work on bytes and strings ([`Header::parse`], [`decode_signals`],
//! [`parse_annotations`]) and never panic, whatever the input: every inconsistency is a typed
//! [`WfdbError`]. [`Record::open`] and [`read_annotations`] are thin file-reading wrappers.
//!
//! Format references: WFDB Programmer's Guide, `header(5)`, `signal(5)`, `annot(5)`
//! (<https://physionet.org/physiotools/wag/>).

mod annotation;
mod header;
mod signal;

use std::path::{Path, PathBuf};

pub use annotation::{Annotation, AnnotationCode, parse_annotations, read_annotations};
pub use header::{Header, SignalFormat, SignalSpec};
pub use signal::{Check, Record, decode_signals, decode_signals_checked};

/// Everything that can go wrong while reading a WFDB record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WfdbError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The header text is not valid (line numbers start at 1).
    #[error("header line {line}: {message}")]
    Header {
        /// The line of the header where the problem is.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A storage format this reader does not decode.
    #[error("signal format {0} is not supported (only 212 and 16)")]
    UnsupportedFormat(u32),
    /// Multi-segment records and other header features this reader does not implement.
    #[error("unsupported header feature: {0}")]
    Unsupported(&'static str),
    /// A signal file is shorter than the header says.
    #[error("signal file {file}: {available} complete frames, header says {expected}")]
    TruncatedSignal {
        /// The file name from the header.
        file: String,
        /// Frames announced by the header.
        expected: usize,
        /// Complete frames found in the file.
        available: usize,
    },
    /// The checksum or initial value of a signal disagrees with its samples.
    #[error("signal {signal}: {what} is {found}, header says {expected}")]
    SignalMismatch {
        /// Index of the signal in the header.
        signal: usize,
        /// `"checksum"` or `"initial value"`.
        what: &'static str,
        /// Value in the header.
        expected: i64,
        /// Value computed from the samples.
        found: i64,
    },
    /// A `.mat` signal file whose MATLAB v4 header disagrees with the WFDB header.
    #[error("signal file {file}: {message}")]
    Mat {
        /// The file name from the header.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The annotation file ends in the middle of a field or has an invalid field.
    #[error("annotation file, byte {offset}: {message}")]
    Annotation {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        message: &'static str,
    },
}

fn read_file(path: &Path) -> Result<Vec<u8>, WfdbError> {
    std::fs::read(path).map_err(|source| WfdbError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `record` + `.ext`, keeping any dots already in the record name (`dir/100` -> `dir/100.hea`).
pub(crate) fn with_extension(record: &Path, ext: &str) -> PathBuf {
    let mut name = record.as_os_str().to_os_string();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}
