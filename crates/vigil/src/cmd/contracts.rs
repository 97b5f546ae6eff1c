//! `vigil contracts ...` and `vigil bench contracts`.
//!
//! `vigil contracts eval --contracts FILE --readings FILE [--json]` deploys the instances of a
//! TOML or JSON file into a fresh catalog and evaluates a JSON-lines file of readings (one
//! reading object, tick or SenML pack per line), printing one result per reading.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vigil_contracts::instance_file::InstanceFile;
use vigil_contracts::{
    Catalog, Circle, Contract, Deployment, Evaluation, GeofenceParams, Input, InstanceId,
    News2Params, Params, Reason, State, ThresholdParams, ZoneRule, ZoneSpec,
};
use vigil_core::senml::UnverifiedPack;
use vigil_core::{AlertLevel, DeviceId, GeoFix, Metric, PersonId, Reading, TimestampMs, Value};

#[derive(Subcommand)]
pub enum Command {
    /// Evaluate readings against contract instances; one result per reading.
    Eval(EvalArgs),
    /// Validate an instance file and print each instance's address.
    Check {
        /// Instance definitions (.toml or .json).
        #[arg(long)]
        contracts: PathBuf,
    },
}

#[derive(Args)]
pub struct EvalArgs {
    /// Instance definitions (.toml or .json).
    #[arg(long)]
    contracts: PathBuf,
    /// Readings, one JSON value per line: a reading object, {"tick_ms": N}, or a SenML pack.
    #[arg(long)]
    readings: PathBuf,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Time spent on each benchmark, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    millis: u64,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Eval(args) => eval(&args),
        Command::Check { contracts } => {
            let file = InstanceFile::load(&contracts)?;
            let mut out = std::io::stdout().lock();
            for (deployment, name) in &file.instances {
                writeln!(
                    out,
                    "{}  {}  {}",
                    deployment.id(),
                    deployment.params.kind(),
                    name
                )?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading files

/// A reading line: a reading already in canonical units.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingLine {
    device: DeviceId,
    #[serde(default)]
    person: Option<PersonId>,
    metric: Metric,
    time_ms: TimestampMs,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TickLine {
    tick_ms: TimestampMs,
}

enum Line {
    Readings(Vec<(PersonId, Reading)>),
    Tick(TimestampMs),
}

/// Checks what core's SenML parser checks for packs: value kind and plausibility.
fn check_reading(r: &ReadingLine) -> Result<(), String> {
    match (r.metric, r.value) {
        (Metric::Position, Value::Position(fix)) if !fix.is_plausible() => Err(format!(
            "field \"value\": position {fix:?} is implausible (|lat| <= {} udeg, |lon| <= {} udeg, accuracy <= {} m)",
            GeoFix::LAT_UDEG_MAX,
            GeoFix::LON_UDEG_MAX,
            GeoFix::ACCURACY_M_MAX
        )),
        (Metric::Position, Value::Position(_)) => Ok(()),
        (Metric::Position, Value::Scalar(_)) => {
            Err("field \"value\": a position reading needs {\"position\": {...}}".to_owned())
        }
        (metric, Value::Position(_)) => Err(format!(
            "field \"value\": a {metric} reading needs {{\"scalar\": N}}"
        )),
        (metric, Value::Scalar(v)) => {
            let (min, max) = metric.plausible_range();
            if v < min || v > max {
                return Err(format!(
                    "field \"value\": {v} is implausible for {metric} (accepted {min}..={max} {})",
                    metric.canonical_unit()
                ));
            }
            Ok(())
        }
    }
}

fn parse_line(text: &str, devices: &BTreeMap<DeviceId, PersonId>) -> Result<Line, String> {
    let person_of = |device: &DeviceId, given: Option<PersonId>| {
        given.or_else(|| devices.get(device).copied()).ok_or_else(|| {
            format!("no person for device {device}: add \"person\" to the line or a [[device]] entry to the instance file")
        })
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let pack = UnverifiedPack::from_json(trimmed.as_bytes())
            .map_err(|e| format!("SenML pack: {e}"))?;
        let person = person_of(pack.device(), None)?;
        let readings = pack.into_readings_unverified();
        return Ok(Line::Readings(
            readings.into_iter().map(|r| (person, r)).collect(),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    if value.get("tick_ms").is_some() {
        let tick: TickLine = serde_json::from_value(value).map_err(|e| format!("tick: {e}"))?;
        return Ok(Line::Tick(tick.tick_ms));
    }
    let line: ReadingLine = serde_json::from_value(value).map_err(|e| format!("reading: {e}"))?;
    check_reading(&line)?;
    let person = person_of(&line.device, line.person)?;
    let reading = Reading {
        device: line.device,
        metric: line.metric,
        time_ms: line.time_ms,
        value: line.value,
    };
    Ok(Line::Readings(vec![(person, reading)]))
}

// ---------------------------------------------------------------------------------------------
// eval

fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let file = InstanceFile::load(&args.contracts)?;
    let mut catalog = Catalog::new();
    let mut names = BTreeMap::new();
    for (deployment, name) in file.instances {
        let id = catalog
            .deploy(deployment)
            .with_context(|| format!("{}: instance {name}", args.contracts.display()))?;
        names.insert(id, name);
    }
    let text = std::fs::read_to_string(&args.readings)
        .with_context(|| format!("cannot read {}", args.readings.display()))?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:>5}  {:>13}  {:<8}  {:<17}  {:>10}  {:>5}  reason",
            "line", "time_ms", "person", "metric", "value", "level"
        )?;
    }
    for (index, text) in text.lines().enumerate() {
        let number = index + 1;
        if text.trim().is_empty() || text.trim_start().starts_with("//") {
            continue;
        }
        let line = parse_line(text, &file.devices)
            .map_err(|e| anyhow::anyhow!("{}:{number}: {e}", args.readings.display()))?;
        match line {
            Line::Readings(readings) => {
                for (person, reading) in readings {
                    let evaluations = catalog.evaluate(&person, &reading);
                    print_reading(
                        &mut out,
                        args.json,
                        number,
                        &person,
                        &reading,
                        &evaluations,
                        &names,
                    )?;
                }
            }
            Line::Tick(now_ms) => {
                let evaluations = catalog
                    .tick(now_ms)
                    .map_err(|e| anyhow::anyhow!("{}:{number}: {e}", args.readings.display()))?;
                print_tick(&mut out, args.json, number, now_ms, &evaluations, &names)?;
            }
        }
    }
    Ok(())
}

fn max_level(evaluations: &[Evaluation]) -> AlertLevel {
    evaluations
        .iter()
        .filter_map(|e| e.outcome.as_ref().ok().map(|o| o.level))
        .max()
        .unwrap_or(AlertLevel::Ok)
}

fn reason_json(
    evaluations: &[Evaluation],
    names: &BTreeMap<InstanceId, String>,
) -> serde_json::Value {
    let items: Vec<_> = evaluations
        .iter()
        .map(|e| {
            let mut item = json!({
                "instance": e.instance.to_string(),
                "name": names.get(&e.instance),
                "kind": e.kind.name(),
            });
            match &e.outcome {
                Ok(o) => {
                    item["level"] = json!(o.level);
                    item["audience"] = json!(o.audience);
                    item["detail"] = json!(o.reason);
                }
                Err(error) => item["error"] = json!(error.to_string()),
            }
            if let Some(update) = &e.alert {
                item["alert"] = json!(update);
            }
            // Offline readings are not device-signed, so they are no evidence; only a no-signal
            // raise (the gateway's attestation) has one here.
            if let Some(Ok(evidence)) = &e.evidence {
                item["evidence_digest"] = json!(hex::encode(evidence.digest()));
            }
            item
        })
        .collect();
    json!(items)
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Scalar(v) => v.to_string(),
        Value::Position(fix) => format!("{},{}±{}m", fix.lat_udeg, fix.lon_udeg, fix.accuracy_m),
    }
}

fn print_reading(
    out: &mut impl std::io::Write,
    as_json: bool,
    line: usize,
    person: &PersonId,
    reading: &Reading,
    evaluations: &[Evaluation],
    names: &BTreeMap<InstanceId, String>,
) -> anyhow::Result<()> {
    let level = max_level(evaluations);
    if as_json {
        let object = json!({
            "line": line,
            "person": person.to_string(),
            "device": reading.device.to_string(),
            "metric": reading.metric,
            "time_ms": reading.time_ms,
            "value": reading.value,
            "level": level,
            "reason": reason_json(evaluations, names),
        });
        writeln!(out, "{object}")?;
    } else {
        let person = person.to_string();
        writeln!(
            out,
            "{line:>5}  {:>13}  {:<8}  {:<17}  {:>10}  {:>5}  {}",
            reading.time_ms,
            &person[..8],
            reading.metric.name(),
            value_text(&reading.value),
            level.code(),
            summaries(evaluations, names)
        )?;
    }
    Ok(())
}

fn print_tick(
    out: &mut impl std::io::Write,
    as_json: bool,
    line: usize,
    now_ms: TimestampMs,
    evaluations: &[Evaluation],
    names: &BTreeMap<InstanceId, String>,
) -> anyhow::Result<()> {
    let level = max_level(evaluations);
    if as_json {
        let object = json!({
            "line": line,
            "tick_ms": now_ms,
            "level": level,
            "reason": reason_json(evaluations, names),
        });
        writeln!(out, "{object}")?;
    } else {
        writeln!(
            out,
            "{line:>5}  {now_ms:>13}  {:<8}  {:<17}  {:>10}  {:>5}  {}",
            "",
            "tick",
            "",
            level.code(),
            summaries(evaluations, names)
        )?;
    }
    Ok(())
}

/// A one-line reading of every evaluation, for the table.
fn summaries(evaluations: &[Evaluation], names: &BTreeMap<InstanceId, String>) -> String {
    if evaluations.is_empty() {
        return "(no instance bound)".to_owned();
    }
    let parts: Vec<String> = evaluations
        .iter()
        .map(|e| {
            let name = names.get(&e.instance).map_or("?", String::as_str);
            let text = match &e.outcome {
                Err(error) => format!("error: {error}"),
                Ok(o) => {
                    let detail = summary(&o.reason);
                    if detail.is_empty() {
                        o.level.name().to_owned()
                    } else {
                        format!("{} ({detail})", o.level.name())
                    }
                }
            };
            let alert = e.alert.map_or(String::new(), |u| {
                let change = serde_json::to_value(u.change)
                    .ok()
                    .and_then(|v| v["change"].as_str().map(str::to_owned));
                format!(" [alert #{} {}]", u.alert.seq, change.unwrap_or_default())
            });
            format!("{name}: {text}{alert}")
        })
        .collect();
    parts.join("; ")
}

/// The kind-specific part of a table cell; empty when there is nothing to add to the level.
fn summary(reason: &Reason) -> String {
    match reason {
        Reason::Threshold(r) => {
            let mut s = format!("{} {}", r.band.name(), r.value);
            if r.pending {
                s.push_str(", pending");
            }
            if r.held {
                s.push_str(", held");
            }
            s
        }
        Reason::News2(r) => format!("NEWS2 {} {}", r.aggregate, r.band.name()),
        Reason::Geofence(r) => {
            let events: Vec<String> = r
                .events
                .iter()
                .map(|e| format!("{:?} {}", e.event, e.zone).to_lowercase())
                .collect();
            events.join(", ")
        }
        Reason::NoSignal(r) => r
            .silence_ms
            .map_or(String::new(), |s| format!("silent {} s", s / 1000)),
        Reason::HeartRhythm(r) => {
            let mut parts = Vec::new();
            if let Some(rate) = &r.rate {
                parts.push(format!("rate {} {}", rate.band.name(), rate.value));
            }
            if let Some(p) = r.irregular_permille {
                parts.push(format!("irregularity {p}‰"));
            }
            parts.join(", ")
        }
        Reason::Unchanged { .. } => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// bench

#[derive(Serialize)]
struct BenchRow {
    name: &'static str,
    evaluations: u64,
    seconds: f64,
}

impl BenchRow {
    fn per_second(&self) -> f64 {
        self.evaluations as f64 / self.seconds
    }
}

/// Runs `step` over `inputs` (cycling) for about `budget`, in batches, on one thread.
fn measure(
    name: &'static str,
    budget: Duration,
    mut step: impl FnMut(usize) -> AlertLevel,
) -> BenchRow {
    const BATCH: usize = 4_096;
    // Warm-up.
    for i in 0..BATCH {
        black_box(step(i));
    }
    let start = Instant::now();
    let mut evaluations = 0u64;
    let mut i = 0usize;
    while start.elapsed() < budget {
        for _ in 0..BATCH {
            black_box(step(i));
            i = i.wrapping_add(1);
        }
        evaluations += BATCH as u64;
    }
    BenchRow {
        name,
        evaluations,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn bench_reading(metric: Metric, time_ms: TimestampMs, value: Value) -> Reading {
    // A valid literal: parsing cannot fail.
    let device = "bench-1".parse().unwrap_or_else(|_| unreachable!());
    Reading {
        device,
        metric,
        time_ms,
        value,
    }
}

/// A concave 100-vertex star polygon around (lat0, lon0): radii alternate 400 and 250 m.
fn star_polygon(lat0: i32, lon0: i32, vertices: usize) -> Vec<[i32; 2]> {
    // Floating point is fine here: it only draws the benchmark's fixture, the contract sees
    // integer micro-degrees. The longitude is stretched by 1/cos(48°) to look round.
    (0..vertices)
        .map(|k| {
            let angle = std::f64::consts::TAU * k as f64 / vertices as f64;
            let radius_udeg = if k % 2 == 0 { 3_600.0 } else { 2_250.0 };
            let lat = lat0 + (radius_udeg * angle.sin()) as i32;
            let lon = lon0 + (radius_udeg * angle.cos() / 0.7) as i32;
            [lat, lon]
        })
        .collect()
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let budget = Duration::from_millis(args.millis);
    let t0: TimestampMs = 1_700_000_000_000;
    let mut rows = Vec::new();

    // Threshold: the seed's body-temperature band, values sweeping all five bands.
    let threshold = Params::Threshold(ThresholdParams {
        hysteresis: 10,
        ..ThresholdParams::seed(Metric::BodyTemperature, 3600, 3750, 100)
    })
    .validate()?;
    let inputs: Vec<Reading> = (0..1024_usize)
        .map(|i| {
            bench_reading(
                Metric::BodyTemperature,
                t0 + i as i64,
                Value::Scalar(3400 + (i as i32 * 37) % 600),
            )
        })
        .collect();
    rows.push(run_contract("threshold", budget, &threshold, &inputs));

    // NEWS2: the seven parameters in turn.
    let news2 = Params::News2(News2Params {
        spo2_scale: 1,
        freshness_ms: 600_000,
        low_score_level: AlertLevel::Ok,
    })
    .validate()?;
    let metrics = [
        (Metric::RespirationRate, 100, 300),
        (Metric::SpO2, 880, 1000),
        (Metric::SupplementalOxygen, 0, 1),
        (Metric::SystolicBp, 80, 230),
        (Metric::HeartRate, 350, 1400),
        (Metric::Consciousness, 0, 4),
        (Metric::BodyTemperature, 3450, 3950),
    ];
    let inputs: Vec<Reading> = (0..1024_usize)
        .map(|i| {
            let (metric, lo, hi) = metrics[i % metrics.len()];
            bench_reading(
                metric,
                t0 + i as i64,
                Value::Scalar(lo + (i as i32 * 7919) % (hi - lo + 1)),
            )
        })
        .collect();
    rows.push(run_contract("news2", budget, &news2, &inputs));

    // Geofence: one concave 100-vertex polygon, fixes scattered inside, outside and on the fence.
    let (lat0, lon0) = (48_137_000, 11_575_000);
    let polygon = Params::Geofence(GeofenceParams {
        zones: vec![ZoneSpec::polygon(
            "star",
            ZoneRule::KeepInside,
            star_polygon(lat0, lon0, 100),
        )],
        dwell_ms: 30_000,
        margin_m: 0,
        accuracy_max_m: 1_000,
    })
    .validate()?;
    let inputs: Vec<Reading> = (0..1024_usize)
        .map(|i| {
            let fix = GeoFix {
                lat_udeg: lat0 - 5_000 + (i as i32 * 7919) % 10_000,
                lon_udeg: lon0 - 7_000 + (i as i32 * 104_729) % 14_000,
                accuracy_m: (i as u32 * 13) % 40,
            };
            bench_reading(
                Metric::Position,
                t0 + i as i64 * 1_000,
                Value::Position(fix),
            )
        })
        .collect();
    rows.push(run_contract("polygon100", budget, &polygon, &inputs));

    // A circle geofence, for comparison.
    let circle = Params::Geofence(GeofenceParams {
        zones: vec![ZoneSpec::circle(
            "home",
            ZoneRule::KeepInside,
            Circle {
                lat_udeg: lat0,
                lon_udeg: lon0,
                radius_m: 300,
            },
        )],
        dwell_ms: 30_000,
        margin_m: 0,
        accuracy_max_m: 1_000,
    })
    .validate()?;
    rows.push(run_contract("circle", budget, &circle, &inputs));

    // The catalog path: routing, step, alert bookkeeping and evidence digests (SHA-256) for
    // every reading above level 0, over 1000 people with a threshold each.
    let mut catalog = Catalog::new();
    let people: Vec<PersonId> = (0..1000u32)
        .map(|i| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            PersonId::from_bytes(bytes)
        })
        .collect();
    for person in &people {
        catalog.deploy(Deployment {
            person: *person,
            device: None,
            nonce: 0,
            params: Params::Threshold(ThresholdParams::seed(
                Metric::BodyTemperature,
                3600,
                3750,
                100,
            )),
        })?;
    }
    let mut time = t0;
    rows.push(measure("catalog-threshold", budget, |i| {
        time += 1;
        let r = bench_reading(
            Metric::BodyTemperature,
            time,
            Value::Scalar(3500 + (i as i32 * 37) % 300),
        );
        let evaluations = catalog.evaluate(&people[i % people.len()], &r);
        max_level(&evaluations)
    }));

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<18} {:>12} {:>8} {:>14} {:>9}",
        "benchmark", "evaluations", "seconds", "evals/s", "ns/eval"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<18} {:>12} {:>8.3} {:>14.0} {:>9.1}",
            row.name,
            row.evaluations,
            row.seconds,
            row.per_second(),
            1e9 / row.per_second()
        )?;
    }
    let keys: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}_evals_per_s={:.0}",
                r.name.replace('-', "_"),
                r.per_second()
            )
        })
        .collect();
    writeln!(out, "single_thread=1 {}", keys.join(" "))?;
    Ok(())
}

/// Steps one instance through `inputs` with the pure API, restarting from the initial state
/// whenever the inputs wrap around (their times restart).
fn run_contract(
    name: &'static str,
    budget: Duration,
    contract: &Contract,
    inputs: &[Reading],
) -> BenchRow {
    let initial: State = contract.initial_state();
    let mut state = initial.clone();
    measure(name, budget, |i| {
        let k = i % inputs.len();
        if k == 0 {
            state = initial.clone();
        }
        match contract.step(&state, Input::Reading(&inputs[k])) {
            Ok((next, outcome)) => {
                state = next;
                outcome.level
            }
            Err(_) => AlertLevel::Ok,
        }
    })
}
