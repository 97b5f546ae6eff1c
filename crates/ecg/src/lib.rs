//! ECG processing for Vigil's gateways: WFDB records, streaming Pan-Tompkins QRS detection,
//! RR / heart rate / HRV series, atrial-fibrillation screening from RR intervals, and
//! beat-by-beat scoring against reference annotations (AAMI EC57 style).
//!
//! - [`wfdb`]: read PhysioNet records (`.hea`, `.dat` in formats 212 and 16, `.atr`).
//! - [`detect`]: [`QrsDetector`] (streaming, bounded delay and memory) and [`detect()`] (batch,
//!   the same beats).
//! - [`hrv`]: RR intervals, heart rate, HRV statistics with ectopic / artefact filtering.
//! - [`quality`]: per-segment signal quality; unusable segments and the beats inside them.
//! - [`agreement`]: beat agreement of two detectors (bSQI); unconfirmed beats in noise withheld.
//! - [`af`]: atrial-fibrillation episodes from RR intervals ([`petrenas`]: Petrėnas et al. 2015).
//! - [`score`]: match detections to reference beats and AF episodes to reference rhythm.
//!
//! No I/O beyond reading record files.
//!
//! ```
//! use vigil_ecg::{QrsDetector, detect};
//!
//! // A synthetic ECG at 250 Hz: a sharp 1 mV spike every 0.8 s (75 beats per minute).
//! let fs = 250.0;
//! let signal: Vec<i32> = (0..250 * 20)
//!     .map(|n: i32| {
//!         let phase = n % 200;
//!         if (98..=102).contains(&phase) { 200 - 40 * (phase - 100).abs() } else { 0 }
//!     })
//!     .collect();
//! let beats = detect(&signal, fs).unwrap();
//! assert!(beats.len() >= 15);
//! assert!(beats.iter().all(|beat| beat.sample % 200 == 100));
//!
//! // Streaming, in chunks as a gateway receives them: the same beats.
//! let mut detector = QrsDetector::new(fs).unwrap();
//! let mut streamed = Vec::new();
//! for chunk in signal.chunks(37) {
//!     detector.push(chunk, &mut streamed);
//! }
//! detector.finish(&mut streamed);
//! assert_eq!(streamed, beats);
//! ```

// Tests state their expectations with unwrap: a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod af;
pub mod agreement;
pub mod detect;
pub mod evaluate;
pub mod hrv;
pub mod petrenas;
pub mod quality;
pub mod score;
pub mod wfdb;

pub use detect::{Beat, QrsDetector, detect};
