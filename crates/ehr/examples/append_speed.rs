//! How fast the health record stores and seals readings on its own, without the node around
//! it: `cargo run --release -p vigil-ehr --example append_speed -- [packs] [readings_per_pack]`.
//! Stores batches of 64 packs (as ingestion does), sealing every 4 batches, in a temporary file.

use std::time::Instant;

use vigil_core::{DeviceId, Metric, PersonId, Reading, Value};
use vigil_ehr::{Ehr, Identity, PackToStore, SecretKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let packs: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let per_pack: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("vigil-ehr-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut ehr = Ehr::open(&dir.join("ehr.sqlite"), SecretKey::random())?;
    let people: Vec<(PersonId, DeviceId)> = (0..200)
        .map(|i| {
            (
                PersonId::random(),
                format!("speed-{i}").parse().expect("valid id"),
            )
        })
        .collect();
    for (person, _) in &people {
        ehr.register_person(*person, &Identity::default())?;
    }
    let readings: Vec<Vec<Reading>> = (0..packs)
        .map(|i| {
            let device = &people[i % people.len()].1;
            (0..per_pack)
                .map(|r| Reading {
                    device: device.clone(),
                    metric: Metric::BodyTemperature,
                    time_ms: 1_700_000_000_000 + (i * per_pack + r) as i64 * 1_000,
                    value: Value::Scalar(3_650 + (r % 50) as i32),
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut sealing = std::time::Duration::ZERO;
    for (batch, chunk) in readings.chunks(64).enumerate() {
        let offset = batch * 64;
        let to_store: Vec<PackToStore<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(j, readings)| {
                let (person, device) = &people[(offset + j) % people.len()];
                PackToStore {
                    person: *person,
                    device,
                    sequence: ((offset + j) / people.len()) as u64 + 1,
                    readings,
                }
            })
            .collect();
        for result in ehr.append_packs(&to_store)? {
            result?;
        }
        if batch % 4 == 3 {
            let seal = Instant::now();
            ehr.seal_batch()?;
            sealing += seal.elapsed();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = packs * per_pack;
    drop(ehr);
    // The checkpoint thread's last checkpoint folds the log into the database.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let bytes: u64 = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "{total} readings in {elapsed:.2} s: {:.0} readings/s (sealing {:.2} s), {:.0} bytes on disk per reading",
        total as f64 / elapsed,
        sealing.as_secs_f64(),
        bytes as f64 / total as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
