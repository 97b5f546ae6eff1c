//! The WFDB parsers return errors, never panic, on arbitrary bytes.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use proptest::prelude::*;
use vigil_ecg::wfdb::{Header, decode_signals, parse_annotations};

proptest! {
    #[test]
    fn header_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Header::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn header_parser_never_panics_on_header_like_text(
        fields in prop::collection::vec(
            prop::sample::select(vec![
                "r", "2", "360", "650000", "r.dat", "212", "16", "16+7", "200(0)/mV", "11", "1024",
                "-5", "x", "\n", "#", "0", "99999999999999999999", "1.5/2", "(", "212x2", "212:1",
            ]),
            0..40,
        ),
    ) {
        let _ = Header::parse(&fields.join(" "));
    }

    #[test]
    fn signal_decoder_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        header in prop::sample::select(vec![
            "r 2 360\nr.dat 212\nr.dat 212\n",
            "r 3 360\nr.dat 212\nr.dat 212\nr.dat 212\n",
            "r 1 360 50\nr.dat 212 200 11 0 5 7\n",
            "r 2 100\na.dat 16+3\nb.dat 212\n",
            "r 1 100 10\nr.dat 16+1000\n",
        ]),
    ) {
        let header = Header::parse(header).unwrap();
        if let Ok(signals) = decode_signals(&header, |_| Ok(Cow::Borrowed(&bytes[..]))) {
            prop_assert_eq!(signals.len(), header.signals.len());
            prop_assert!(signals.iter().all(|s| s.len() == signals[0].len()));
        }
    }

    #[test]
    fn annotation_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(annotations) = parse_annotations(&bytes) {
            prop_assert!(annotations.len() <= bytes.len() / 2);
            prop_assert!(annotations.iter().all(|a| a.sample >= 0));
        }
    }
}
