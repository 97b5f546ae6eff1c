use super::*;

fn scalar(e: &Emission, metric: Metric) -> Option<i32> {
    e.readings
        .iter()
        .find(|(m, _)| *m == metric)
        .and_then(|(_, v)| v.scalar())
}

fn quiet(seed: u64, people: u32) -> Fleet {
    let mut config = FleetConfig::new(seed, people);
    config.episodes_per_hour = 0.0;
    Fleet::new(config)
}

#[test]
fn same_seed_same_fleet_and_readings() {
    let mut a = Fleet::new(FleetConfig::new(7, 20));
    let mut b = Fleet::new(FleetConfig::new(7, 20));
    for _ in 0..500 {
        assert_eq!(a.step(10_000), b.step(10_000));
    }
    assert_eq!(Person::generate(7, 3), Person::generate(7, 3));
    assert_ne!(Person::generate(7, 3), Person::generate(8, 3));
    assert_ne!(
        Person::generate(7, 3).device_seed(DeviceKind::Phone),
        Person::generate(7, 3).device_seed(DeviceKind::Oximeter)
    );
}

#[test]
fn without_episodes_a_day_stays_inside_the_normal_bands() {
    let mut fleet = quiet(1, 50);
    let mut temps = 0;
    for _ in 0..(DAY_MS / 30_000) {
        for e in fleet.step(30_000) {
            if let Some(t) = scalar(&e, Metric::BodyTemperature) {
                assert!((3_500..3_750).contains(&t), "temperature {t}");
                temps += 1;
            }
            if let Some(s) = scalar(&e, Metric::SpO2) {
                assert!(s >= 940, "spo2 {s}");
            }
            if let Some(hr) = scalar(&e, Metric::HeartRate) {
                assert!((450..1_100).contains(&hr), "heart rate {hr}");
            }
            if let Some((_, Value::Position(fix))) = e.readings.first() {
                let home = fleet.person(e.person).expect("person").home;
                let d = distance_m(home, (fix.lat_udeg, fix.lon_udeg));
                assert!(d < f64::from(HOME_RADIUS_M) / 2.0, "{d} m from home");
            }
        }
    }
    // One reading a minute per thermometer.
    assert!((50 * 1_430..=50 * 1_441).contains(&temps), "{temps}");
}

#[test]
fn circadian_drift_is_lowest_early_morning_and_highest_late_afternoon() {
    let at = |h: u64| Fleet::circadian_centi(h * 3_600_000);
    assert_eq!(at(5), -30.0);
    assert_eq!(at(17), 30.0);
    assert!(at(11) > at(5) && at(11) < at(17) && at(23) < at(17));
}

fn run_until(fleet: &mut Fleet, ms: u64, mut f: impl FnMut(&Emission)) {
    for _ in 0..ms / 10_000 {
        for e in fleet.step(10_000) {
            f(&e);
        }
    }
}

#[test]
fn fever_crosses_the_warning_band_then_subsides() {
    let mut fleet = quiet(3, 1);
    fleet.start_episode(0, EpisodeKind::Fever);
    let duration = fleet.episodes(0)[0].duration_ms;
    let mut peak = 0;
    run_until(&mut fleet, duration, |e| {
        peak = peak.max(scalar(e, Metric::BodyTemperature).unwrap_or(0));
    });
    assert!(peak >= 3_800, "peak {peak}");
    let mut last = 0;
    run_until(&mut fleet, 3_600_000, |e| {
        last = scalar(e, Metric::BodyTemperature).unwrap_or(last);
    });
    assert!(last < 3_750, "after {last}");
    assert!(fleet.episodes(0).is_empty());
}

#[test]
fn desaturation_and_tachycardia_show_on_the_oximeter() {
    let mut fleet = quiet(4, 1);
    fleet.start_episode(0, EpisodeKind::Desaturation);
    fleet.start_episode(0, EpisodeKind::Tachycardia);
    let (mut low, mut high) = (1_000, 0);
    run_until(&mut fleet, 600_000, |e| {
        low = low.min(scalar(e, Metric::SpO2).unwrap_or(low));
        high = high.max(scalar(e, Metric::HeartRate).unwrap_or(high));
    });
    assert!(low < 920, "spo2 {low}");
    assert!(high > 1_100, "hr {high}");
}

#[test]
fn leaving_home_moves_the_phone_out_of_the_geofence() {
    let mut fleet = quiet(5, 1);
    fleet.start_episode(0, EpisodeKind::LeftHome);
    let home = fleet.person(0).expect("person").home;
    let mut farthest: f64 = 0.0;
    let duration = fleet.episodes(0)[0].duration_ms;
    run_until(&mut fleet, duration, |e| {
        if let Some((_, Value::Position(fix))) = e.readings.first() {
            farthest = farthest.max(distance_m(home, (fix.lat_udeg, fix.lon_udeg)));
        }
    });
    assert!(farthest > 250.0, "{farthest} m");
}

#[test]
fn a_switched_off_phone_is_silent_while_other_devices_go_on() {
    let mut fleet = quiet(6, 1);
    fleet.start_episode(0, EpisodeKind::PhoneOff);
    let duration = fleet.episodes(0)[0].duration_ms;
    let (mut phone, mut others) = (0, 0);
    run_until(&mut fleet, duration - 10_000, |e| {
        if e.device == DeviceKind::Phone {
            phone += 1;
        } else {
            others += 1;
        }
    });
    assert_eq!(phone, 0);
    assert!(others > 10);
    run_until(&mut fleet, 120_000, |e| {
        phone += usize::from(e.device == DeviceKind::Phone)
    });
    assert!(phone > 0);
}

#[test]
fn episodes_start_at_the_configured_rate() {
    let mut config = FleetConfig::new(9, 200);
    config.episodes_per_hour = 0.5;
    let mut fleet = Fleet::new(config);
    let mut started = 0;
    for _ in 0..360 {
        let before: usize = (0..200).map(|i| fleet.episodes(i).len()).sum();
        fleet.step(10_000);
        let after: usize = (0..200).map(|i| fleet.episodes(i).len()).sum();
        started += after.saturating_sub(before);
    }
    // 200 people × 1 h × 0.5/h = 100 expected (a few merge with one of the same kind).
    assert!((60..=140).contains(&started), "{started}");
}

#[test]
fn device_ids_are_valid_and_distinct() {
    let p = Person::generate(1, 42);
    let ids: Vec<String> = DeviceKind::ALL.iter().map(|k| p.device_id(*k)).collect();
    for id in &ids {
        assert!(id.parse::<vigil_core::DeviceId>().is_ok(), "{id}");
    }
    assert_eq!(ids[0], "p00042-thermo");
}

#[test]
fn a_short_scripted_fever_raises_the_temperature_within_minutes() {
    let mut fleet = quiet(10, 3);
    fleet.start_episode_for(1, EpisodeKind::Fever, 5 * 60_000);
    let mut peak = 0;
    run_until(&mut fleet, 3 * 60_000, |e| {
        if e.person == 1 {
            peak = peak.max(scalar(e, Metric::BodyTemperature).unwrap_or(0));
        }
    });
    assert!(peak >= 3_750, "peak {peak}");
    assert!(fleet.episodes(0).is_empty() && fleet.episodes(2).is_empty());
}
