//! How long admission takes per pack on one thread, split into parsing and the signature
//! check, each pack's alone and in batches of 32 as ingestion does:
//! `cargo run --release -p vigil-gateway --example admit_speed -- [packs] [readings]`.

use std::time::Instant;

use vigil_core::senml::{Format, PackDraft, UnverifiedPack};
use vigil_core::{DeviceKey, Metric, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let packs: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let per_pack: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let key = DeviceKey::from_seed([7; 32]);
    let device: vigil_core::DeviceId = "speed-thermo".parse()?;
    let bytes: Vec<Vec<u8>> = (0..packs as u64)
        .map(|sequence| {
            let mut draft = PackDraft::new(device.clone(), sequence + 1);
            for r in 0..per_pack {
                draft.push(
                    Metric::BodyTemperature,
                    1_700_000_000_000 + (sequence as i64 * 60 + r as i64) * 1_000,
                    Value::Scalar(3_650 + r as i32),
                );
            }
            draft.sign(&key).to_json()
        })
        .collect();
    let public = key.public();
    let started = Instant::now();
    let parsed: Vec<UnverifiedPack> = bytes
        .iter()
        .map(|b| UnverifiedPack::parse(b, Format::Json))
        .collect::<Result<_, _>>()?;
    let parsing = started.elapsed();
    let started = Instant::now();
    for pack in parsed.iter().cloned() {
        pack.verify(&public)?;
    }
    let verifying = started.elapsed();
    let started = Instant::now();
    for batch in parsed.chunks(32) {
        let batch = batch.iter().cloned().map(|pack| (pack, public)).collect();
        for result in UnverifiedPack::verify_all(batch) {
            result?;
        }
    }
    let batched = started.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / packs as f64;
    println!(
        "{packs} packs of {per_pack} readings: parse {:.1} us/pack, verify alone {:.1} us/pack, \
         in batches of 32 {:.1} us/pack",
        per(parsing),
        per(verifying),
        per(batched)
    );
    Ok(())
}
