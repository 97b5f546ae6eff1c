//! The simulated fleet behind `vigil demo`: people in home isolation, each with a thermometer
//! patch, a pulse oximeter and a phone. Pure and deterministic from a seed: the caller owns the
//! clock, the keys' use and the network.
//!
//! Vitals are mean-reverting random walks (Ornstein-Uhlenbeck, discretised) around personal
//! baselines, plus a circadian drift of body temperature (lowest at 05:00, highest at 17:00).
//! Episodes start at random with a per-person hazard and end on their own: fever onset,
//! desaturation, tachycardia, leaving home, phone switched off. Values come out in the
//! canonical fixed-point units of [`vigil_core::Metric`].

use vigil_core::{GeoFix, Metric, Value};

/// One simulated day in milliseconds.
pub const DAY_MS: u64 = 24 * 3_600_000;
/// A city centre the homes are scattered around (micro-degrees).
pub const CENTRE_UDEG: (i32, i32) = (48_137_000, 11_575_000);
/// Micro-degrees per metre, north and east (at the centre's latitude; close enough here).
const UDEG_PER_M_LAT: i32 = 9;
const UDEG_PER_M_LON: i32 = 13;
/// Radius of the home geofence the demo deploys, in metres.
pub const HOME_RADIUS_M: u32 = 100;
/// People generated at most (a bound for loops and memory).
pub const PEOPLE_MAX: u32 = 100_000;

/// A small, fast, seedable generator (SplitMix64). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Approximately standard normal (Irwin-Hall with 12 uniforms): no libm involved.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

/// The three devices every simulated person wears or carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Thermometer,
    Oximeter,
    Phone,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [
        DeviceKind::Thermometer,
        DeviceKind::Oximeter,
        DeviceKind::Phone,
    ];

    pub const fn suffix(self) -> &'static str {
        match self {
            DeviceKind::Thermometer => "thermo",
            DeviceKind::Oximeter => "oxi",
            DeviceKind::Phone => "phone",
        }
    }

    const fn slot(self) -> usize {
        match self {
            DeviceKind::Thermometer => 0,
            DeviceKind::Oximeter => 1,
            DeviceKind::Phone => 2,
        }
    }

    /// Simulated time between two packs.
    pub const fn period_ms(self) -> u64 {
        match self {
            DeviceKind::Thermometer => 60_000,
            DeviceKind::Oximeter | DeviceKind::Phone => 30_000,
        }
    }
}

/// A simulated person: where they live, their baselines, their devices' key seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub index: u32,
    pub name: String,
    pub home: (i32, i32),
    /// Centi-degrees Celsius.
    pub temperature: i32,
    /// Tenths of a beat per minute.
    pub heart_rate: i32,
    /// Tenths of a percent.
    pub spo2: i32,
    /// Tenths of a breath per minute.
    pub respiration: i32,
    device_seeds: [[u8; 32]; 3],
}

const GIVEN: [&str; 16] = [
    "Ana", "Bo", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jana", "Karim", "Lea",
    "Mateo", "Nora", "Omar", "Pia",
];
const FAMILY: [&str; 12] = [
    "Souza", "Berg", "Novak", "Haddad", "Kowalski", "Ito", "Moreau", "Okafor", "Rossi", "Silva",
    "Weber", "Yilmaz",
];

impl Person {
    /// Person `index` of the fleet seeded with `seed`: the same inputs give the same person.
    pub fn generate(seed: u64, index: u32) -> Person {
        let mut rng = Rng::new(seed ^ (u64::from(index) << 20) ^ 0x5EED_0FF1_EE70);
        let _ = rng.next_u64();
        let name = format!(
            "{} {}",
            GIVEN[(rng.next_u64() % GIVEN.len() as u64) as usize],
            FAMILY[(rng.next_u64() % FAMILY.len() as u64) as usize]
        );
        // Homes within about 4 km of the centre.
        let north_m = rng.range(-4_000.0, 4_000.0) as i32;
        let east_m = rng.range(-4_000.0, 4_000.0) as i32;
        let home = (
            CENTRE_UDEG.0 + north_m * UDEG_PER_M_LAT,
            CENTRE_UDEG.1 + east_m * UDEG_PER_M_LON,
        );
        let mut device_seeds = [[0u8; 32]; 3];
        for seed in &mut device_seeds {
            for chunk in seed.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
        }
        Person {
            index,
            name,
            home,
            temperature: rng.range(3_620.0, 3_690.0) as i32,
            heart_rate: rng.range(600.0, 850.0) as i32,
            spo2: rng.range(960.0, 985.0) as i32,
            respiration: rng.range(120.0, 180.0) as i32,
            device_seeds,
        }
    }

    /// The device's identifier, as enrolled and as named in its packs.
    pub fn device_id(&self, kind: DeviceKind) -> String {
        format!("p{:05}-{}", self.index, kind.suffix())
    }

    /// The seed of the device's Ed25519 key (`vigil_core::DeviceKey::from_seed`).
    pub fn device_seed(&self, kind: DeviceKind) -> [u8; 32] {
        self.device_seeds[kind.slot()]
    }
}

/// What can happen to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpisodeKind {
    Fever,
    Desaturation,
    Tachycardia,
    LeftHome,
    PhoneOff,
}

impl EpisodeKind {
    pub const ALL: [EpisodeKind; 5] = [
        EpisodeKind::Fever,
        EpisodeKind::Desaturation,
        EpisodeKind::Tachycardia,
        EpisodeKind::LeftHome,
        EpisodeKind::PhoneOff,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            EpisodeKind::Fever => "fever",
            EpisodeKind::Desaturation => "desaturation",
            EpisodeKind::Tachycardia => "tachycardia",
            EpisodeKind::LeftHome => "left-home",
            EpisodeKind::PhoneOff => "phone-off",
        }
    }
}

/// An episode under way.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub kind: EpisodeKind,
    pub start_ms: u64,
    pub duration_ms: u64,
    /// Size at the plateau: centi-degrees, tenths of %, tenths of /min, or metres away.
    pub magnitude: i32,
    /// Bearing of the trip away from home, as a unit vector (north, east).
    heading: (f64, f64),
}

impl Episode {
    /// 0 before, ramps to 1 over the first fifth, 1 on the plateau, back to 0 over the last
    /// fifth.
    pub fn intensity(&self, now_ms: u64) -> f64 {
        if now_ms < self.start_ms || now_ms >= self.start_ms + self.duration_ms {
            return 0.0;
        }
        let t = (now_ms - self.start_ms) as f64 / self.duration_ms as f64;
        (t * 5.0).min((1.0 - t) * 5.0).min(1.0)
    }

    pub fn active(&self, now_ms: u64) -> bool {
        now_ms >= self.start_ms && now_ms < self.start_ms + self.duration_ms
    }
}

/// The readings one device sends at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Emission {
    pub person: u32,
    pub device: DeviceKind,
    pub readings: Vec<(Metric, Value)>,
}

/// How the fleet behaves.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub seed: u64,
    pub people: u32,
    /// Episodes per person per simulated hour (all kinds together); 0 disables them.
    pub episodes_per_hour: f64,
    /// Simulated time of day at start, in ms after midnight.
    pub start_time_of_day_ms: u64,
}

impl FleetConfig {
    pub fn new(seed: u64, people: u32) -> Self {
        Self {
            seed,
            people: people.min(PEOPLE_MAX),
            episodes_per_hour: 0.25,
            start_time_of_day_ms: 10 * 3_600_000,
        }
    }
}

#[derive(Clone, Debug)]
struct State {
    person: Person,
    temperature: f64,
    heart_rate: f64,
    spo2: f64,
    respiration: f64,
    wander: (f64, f64),
    episodes: Vec<Episode>,
    next_due: [u64; 3],
}

/// The whole simulated population and its clock.
pub struct Fleet {
    config: FleetConfig,
    rng: Rng,
    now_ms: u64,
    states: Vec<State>,
}

/// Time constants of the random walks (how fast a deviation fades), in simulated ms.
const TAU_MS: f64 = 20.0 * 60_000.0;

impl Fleet {
    pub fn new(config: FleetConfig) -> Fleet {
        let mut rng = Rng::new(config.seed);
        let states = (0..config.people.min(PEOPLE_MAX))
            .map(|index| {
                let person = Person::generate(config.seed, index);
                let mut next_due = [0; 3];
                for kind in DeviceKind::ALL {
                    next_due[kind.slot()] = (rng.unit() * kind.period_ms() as f64) as u64;
                }
                State {
                    person,
                    temperature: 0.0,
                    heart_rate: 0.0,
                    spo2: 0.0,
                    respiration: 0.0,
                    wander: (0.0, 0.0),
                    episodes: Vec::new(),
                    next_due,
                }
            })
            .collect();
        Fleet {
            config,
            rng,
            now_ms: 0,
            states,
        }
    }

    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.states.iter().map(|s| &s.person)
    }

    pub fn person(&self, index: u32) -> Option<&Person> {
        self.states.get(index as usize).map(|s| &s.person)
    }

    /// Simulated ms since the fleet started.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Episodes under way for a person.
    pub fn episodes(&self, index: u32) -> &[Episode] {
        self.states
            .get(index as usize)
            .map_or(&[], |s| s.episodes.as_slice())
    }

    /// Starts an episode now (the demo scripts a few early ones so that alerts flow at once).
    pub fn start_episode(&mut self, index: u32, kind: EpisodeKind) {
        let now = self.now_ms;
        let episode = new_episode(&mut self.rng, kind, now);
        if let Some(state) = self.states.get_mut(index as usize) {
            state.episodes.push(episode);
        }
    }

    /// Starts an episode now that lasts `duration_ms` (a short one ramps up quickly).
    pub fn start_episode_for(&mut self, index: u32, kind: EpisodeKind, duration_ms: u64) {
        let now = self.now_ms;
        let mut episode = new_episode(&mut self.rng, kind, now);
        episode.duration_ms = duration_ms.max(1);
        if let Some(state) = self.states.get_mut(index as usize) {
            state.episodes.push(episode);
        }
    }

    /// Temperature drift by time of day, in centi-degrees: a triangle wave, -30 at 05:00,
    /// +30 at 17:00.
    pub fn circadian_centi(time_of_day_ms: u64) -> f64 {
        let hours = (time_of_day_ms % DAY_MS) as f64 / 3_600_000.0;
        let from_low = (hours - 5.0).rem_euclid(24.0);
        let phase = if from_low <= 12.0 {
            from_low / 12.0
        } else {
            (24.0 - from_low) / 12.0
        };
        -30.0 + 60.0 * phase
    }

    /// Advances simulated time by `dt_ms` and returns the readings due meanwhile (at most one
    /// pack per device per step).
    pub fn step(&mut self, dt_ms: u64) -> Vec<Emission> {
        self.now_ms += dt_ms;
        let now = self.now_ms;
        let time_of_day = self.config.start_time_of_day_ms + now;
        let circadian = Self::circadian_centi(time_of_day);
        let decay = (dt_ms as f64 / TAU_MS).min(1.0);
        let noise = decay.sqrt();
        let hazard = self.config.episodes_per_hour * dt_ms as f64 / 3_600_000.0;
        let mut out = Vec::new();
        for state in &mut self.states {
            let rng = &mut self.rng;
            state.temperature += -state.temperature * decay + 8.0 * noise * rng.normal();
            state.heart_rate += -state.heart_rate * decay + 40.0 * noise * rng.normal();
            state.spo2 += -state.spo2 * decay + 4.0 * noise * rng.normal();
            state.respiration += -state.respiration * decay + 10.0 * noise * rng.normal();
            state.wander.0 += -state.wander.0 * decay + 5.0 * noise * rng.normal();
            state.wander.1 += -state.wander.1 * decay + 5.0 * noise * rng.normal();
            state.episodes.retain(|e| e.start_ms + e.duration_ms > now);
            if hazard > 0.0 && rng.unit() < hazard {
                let kind = EpisodeKind::ALL[(rng.next_u64() % 5) as usize];
                if !state.episodes.iter().any(|e| e.kind == kind) {
                    state.episodes.push(new_episode(rng, kind, now));
                }
            }
            for kind in DeviceKind::ALL {
                let slot = kind.slot();
                if now < state.next_due[slot] {
                    continue;
                }
                state.next_due[slot] = now.max(state.next_due[slot]) + kind.period_ms();
                if let Some(readings) = readings(state, kind, now, circadian, rng) {
                    out.push(Emission {
                        person: state.person.index,
                        device: kind,
                        readings,
                    });
                }
            }
        }
        out
    }
}

fn new_episode(rng: &mut Rng, kind: EpisodeKind, now: u64) -> Episode {
    let minutes = |lo: f64, hi: f64, rng: &mut Rng| (rng.range(lo, hi) * 60_000.0) as u64;
    let (duration_ms, magnitude) = match kind {
        EpisodeKind::Fever => (minutes(40.0, 180.0, rng), rng.range(220.0, 320.0) as i32),
        EpisodeKind::Desaturation => (minutes(15.0, 60.0, rng), rng.range(50.0, 110.0) as i32),
        EpisodeKind::Tachycardia => (minutes(10.0, 40.0, rng), rng.range(450.0, 700.0) as i32),
        EpisodeKind::LeftHome => (minutes(20.0, 90.0, rng), rng.range(300.0, 2_000.0) as i32),
        EpisodeKind::PhoneOff => (minutes(20.0, 60.0, rng), 0),
    };
    let angle = rng.unit();
    // A unit heading without trigonometry: a point on the square's border, normalised.
    let (n, e) = if angle < 0.5 {
        (4.0 * angle - 1.0, if angle < 0.25 { 1.0 } else { -1.0 })
    } else {
        (if angle < 0.75 { 1.0 } else { -1.0 }, 4.0 * angle - 3.0)
    };
    let norm = (n * n + e * e).sqrt();
    Episode {
        kind,
        start_ms: now,
        duration_ms,
        magnitude,
        heading: (n / norm, e / norm),
    }
}

fn effect(state: &State, kind: EpisodeKind, now: u64) -> f64 {
    state
        .episodes
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.intensity(now) * f64::from(e.magnitude))
        .sum()
}

fn clamp(value: f64, metric: Metric) -> Value {
    let (lo, hi) = metric.plausible_range();
    Value::Scalar((value.round() as i32).clamp(lo, hi))
}

fn readings(
    state: &State,
    kind: DeviceKind,
    now: u64,
    circadian: f64,
    rng: &mut Rng,
) -> Option<Vec<(Metric, Value)>> {
    let p = &state.person;
    let fever = effect(state, EpisodeKind::Fever, now);
    match kind {
        DeviceKind::Thermometer => {
            let t = f64::from(p.temperature) + circadian + state.temperature + fever;
            Some(vec![(
                Metric::BodyTemperature,
                clamp(t, Metric::BodyTemperature),
            )])
        }
        DeviceKind::Oximeter => {
            // Fever raises the heart rate by about 10 /min per degree.
            let hr = f64::from(p.heart_rate)
                + state.heart_rate
                + fever
                + effect(state, EpisodeKind::Tachycardia, now);
            let spo2 = (f64::from(p.spo2) + state.spo2
                - effect(state, EpisodeKind::Desaturation, now))
            .min(1_000.0);
            let resp = f64::from(p.respiration) + state.respiration + fever / 3.0;
            Some(vec![
                (Metric::HeartRate, clamp(hr, Metric::HeartRate)),
                (Metric::SpO2, clamp(spo2, Metric::SpO2)),
                (
                    Metric::RespirationRate,
                    clamp(resp, Metric::RespirationRate),
                ),
            ])
        }
        DeviceKind::Phone => {
            if state
                .episodes
                .iter()
                .any(|e| e.kind == EpisodeKind::PhoneOff && e.active(now))
            {
                return None;
            }
            let (mut north, mut east) = state.wander;
            for e in state
                .episodes
                .iter()
                .filter(|e| e.kind == EpisodeKind::LeftHome)
            {
                let away = e.intensity(now) * f64::from(e.magnitude);
                north += away * e.heading.0;
                east += away * e.heading.1;
            }
            let fix = GeoFix {
                lat_udeg: p.home.0 + (north * f64::from(UDEG_PER_M_LAT)).round() as i32,
                lon_udeg: p.home.1 + (east * f64::from(UDEG_PER_M_LON)).round() as i32,
                accuracy_m: rng.range(5.0, 20.0) as u32,
            };
            Some(vec![(Metric::Position, Value::Position(fix))])
        }
    }
}

/// Distance in metres between two positions (flat approximation, sim scale).
pub fn distance_m(a: (i32, i32), b: (i32, i32)) -> f64 {
    let n = f64::from(a.0 - b.0) / f64::from(UDEG_PER_M_LAT);
    let e = f64::from(a.1 - b.1) / f64::from(UDEG_PER_M_LON);
    (n * n + e * e).sqrt()
}

#[cfg(test)]
mod tests;
