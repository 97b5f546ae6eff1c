//! Geofences: circle and polygon zones, several per instance, each to be kept inside (home
//! isolation) or outside (an exclusion zone), with a dwell time and GPS accuracy taken into
//! account so that jitter at the fence does not flap.
//!
//! # Evidence from one fix
//!
//! A fix is a centre and an accuracy radius `a` (plus the instance's `margin_m`). For each zone
//! the fix gives one of three kinds of evidence:
//!
//! - **violating** only if the whole accuracy disc violates the rule: for keep-inside, the
//!   centre is outside and farther than `a` from the zone; for keep-outside, the centre is
//!   strictly inside and farther than `a` from the boundary;
//! - **compliant** as soon as the centre complies: for keep-inside, the centre is inside or on
//!   the boundary (the boundary belongs to the zone); for keep-outside, it is outside;
//! - **uncertain** otherwise (the disc straddles the fence), or when the fix's accuracy is worse
//!   than `accuracy_max_m`: such a fix changes nothing.
//!
//! The asymmetry is deliberate: it takes a clear violation to raise an alert and only a plausible
//! compliance to clear it, so a fix jittering by less than its own accuracy around the fence
//! cannot flap, and the fence has a hysteresis band as wide as the accuracy.
//!
//! # Dwell and events
//!
//! A zone starts *unknown*. Violating evidence makes it *pending* from that fix's time; a later
//! violating fix at least `dwell_ms` after the first confirms the violation (`Left` for a
//! keep-inside zone, `Entered` for keep-outside) and the zone's level applies. Compliant evidence
//! ends a pending violation silently and a confirmed one with `Returned` / `Exited`. Ticks do
//! not move geofences: silence is no evidence (the no-signal kind watches for it).

use serde::{Deserialize, Serialize};
use vigil_core::{AlertLevel, GeoFix, TimestampMs};

use crate::canon::{Canonical, Encoder};
use crate::error::{ParamError, StepError};
use crate::geo::{
    self, LocalFrame, Location, PlanePoint, Polygon, ZONE_EXTENT_UDEG_MAX, ZONE_LAT_UDEG_MAX,
};

/// Most zones per instance.
pub const ZONES_MAX: usize = 16;
/// Fewest and most vertices per polygon.
pub const POLYGON_VERTICES_MIN: usize = 3;
pub const POLYGON_VERTICES_MAX: usize = 1_024;
/// Largest circle radius (the zone extent bound, 0.5° of latitude, is about 55 km).
pub const CIRCLE_RADIUS_M_MAX: u32 = 50_000;
/// Longest zone name.
pub const ZONE_NAME_LEN_MAX: usize = 64;
/// Longest dwell time (24 h).
pub const DWELL_MS_MAX: u64 = 24 * 3_600_000;
/// Largest margin added to every fix's accuracy.
pub const MARGIN_M_MAX: u32 = 10_000;

fn keep_inside() -> ZoneRule {
    ZoneRule::KeepInside
}
fn critical() -> AlertLevel {
    AlertLevel::Critical
}
fn default_accuracy_max() -> u32 {
    GeoFix::ACCURACY_M_MAX
}

/// What a zone demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneRule {
    KeepInside,
    KeepOutside,
}

/// A circle: centre in micro-degrees, radius in metres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circle {
    pub lat_udeg: i32,
    pub lon_udeg: i32,
    pub radius_m: u32,
}

/// One zone. Exactly one of `circle` and `polygon` is given; polygon vertices are
/// `[lat_udeg, lon_udeg]` pairs, the ring closed implicitly, in either orientation; the
/// boundary belongs to the zone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    pub name: String,
    #[serde(default = "keep_inside")]
    pub rule: ZoneRule,
    /// The level of a confirmed violation: 1 or 2.
    #[serde(default = "critical")]
    pub level: AlertLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<Circle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<[i32; 2]>>,
}

impl ZoneSpec {
    pub fn circle(name: &str, rule: ZoneRule, circle: Circle) -> Self {
        Self {
            name: name.to_owned(),
            rule,
            level: AlertLevel::Critical,
            circle: Some(circle),
            polygon: None,
        }
    }

    pub fn polygon(name: &str, rule: ZoneRule, vertices: Vec<[i32; 2]>) -> Self {
        Self {
            name: name.to_owned(),
            rule,
            level: AlertLevel::Critical,
            circle: None,
            polygon: Some(vertices),
        }
    }
}

/// Parameters of a geofence instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeofenceParams {
    pub zones: Vec<ZoneSpec>,
    /// How long a violation must last, from its first violating fix, before it counts.
    #[serde(default)]
    pub dwell_ms: u64,
    /// Added to every fix's accuracy radius.
    #[serde(default)]
    pub margin_m: u32,
    /// Fixes less accurate than this are uncertain for every zone.
    #[serde(default = "default_accuracy_max")]
    pub accuracy_max_m: u32,
}

/// A zone ready to evaluate: projected once, at validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledZone {
    frame: LocalFrame,
    shape: CompiledShape,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CompiledShape {
    Circle { radius: i64 },
    Polygon(Polygon),
}

fn check_point(field: &str, lat: i32, lon: i32) -> Result<(), ParamError> {
    ParamError::check_range(
        &format!("{field}.lat_udeg"),
        i64::from(lat),
        -i64::from(ZONE_LAT_UDEG_MAX),
        i64::from(ZONE_LAT_UDEG_MAX),
    )?;
    ParamError::check_range(
        &format!("{field}.lon_udeg"),
        i64::from(lon),
        -i64::from(GeoFix::LON_UDEG_MAX),
        i64::from(GeoFix::LON_UDEG_MAX),
    )
}

impl GeofenceParams {
    pub(crate) fn compile(&self) -> Result<Vec<CompiledZone>, ParamError> {
        let n = self.zones.len();
        if !(1..=ZONES_MAX).contains(&n) {
            return Err(ParamError::Count {
                field: "zones".into(),
                count: n,
                min: 1,
                max: ZONES_MAX,
            });
        }
        ParamError::check_max_u64("dwell_ms", self.dwell_ms, DWELL_MS_MAX)?;
        ParamError::check_range(
            "margin_m",
            i64::from(self.margin_m),
            0,
            i64::from(MARGIN_M_MAX),
        )?;
        ParamError::check_range(
            "accuracy_max_m",
            i64::from(self.accuracy_max_m),
            0,
            i64::from(GeoFix::ACCURACY_M_MAX),
        )?;
        let mut compiled = Vec::with_capacity(n);
        for (i, zone) in self.zones.iter().enumerate() {
            let field = format!("zones[{i}]");
            if zone.name.is_empty() || zone.name.len() > ZONE_NAME_LEN_MAX {
                return Err(ParamError::invalid(
                    format!("{field}.name"),
                    format!("a zone name has 1 to {ZONE_NAME_LEN_MAX} bytes"),
                ));
            }
            if self.zones[..i].iter().any(|z| z.name == zone.name) {
                return Err(ParamError::invalid(
                    format!("{field}.name"),
                    format!("zone name {:?} is used twice", zone.name),
                ));
            }
            ParamError::check_range(
                &format!("{field}.level"),
                i64::from(zone.level.code()),
                1,
                2,
            )?;
            let zone = match (&zone.circle, &zone.polygon) {
                (Some(c), None) => {
                    check_point(&format!("{field}.circle"), c.lat_udeg, c.lon_udeg)?;
                    ParamError::check_range(
                        &format!("{field}.circle.radius_m"),
                        i64::from(c.radius_m),
                        1,
                        i64::from(CIRCLE_RADIUS_M_MAX),
                    )?;
                    CompiledZone {
                        frame: LocalFrame::new(c.lat_udeg, c.lon_udeg),
                        shape: CompiledShape::Circle {
                            radius: geo::metres_to_units(c.radius_m),
                        },
                    }
                }
                (None, Some(vertices)) => compile_polygon(&format!("{field}.polygon"), vertices)?,
                _ => {
                    return Err(ParamError::invalid(
                        field,
                        "a zone has exactly one of circle and polygon",
                    ));
                }
            };
            compiled.push(zone);
        }
        Ok(compiled)
    }
}

fn compile_polygon(field: &str, vertices: &[[i32; 2]]) -> Result<CompiledZone, ParamError> {
    let n = vertices.len();
    if !(POLYGON_VERTICES_MIN..=POLYGON_VERTICES_MAX).contains(&n) {
        return Err(ParamError::Count {
            field: field.into(),
            count: n,
            min: POLYGON_VERTICES_MIN,
            max: POLYGON_VERTICES_MAX,
        });
    }
    let [lat0, lon0] = vertices[0];
    let frame = LocalFrame::new(lat0, lon0);
    let mut projected = Vec::with_capacity(n);
    for (i, &[lat, lon]) in vertices.iter().enumerate() {
        let at = format!("{field}[{i}]");
        check_point(&at, lat, lon)?;
        let dlat = i64::from(lat) - i64::from(lat0);
        let dlon = frame.dlon(lon);
        if dlat.abs() > ZONE_EXTENT_UDEG_MAX || dlon.abs() > ZONE_EXTENT_UDEG_MAX {
            return Err(ParamError::invalid(
                at,
                format!("more than {ZONE_EXTENT_UDEG_MAX} micro-degrees from the first vertex"),
            ));
        }
        projected.push(frame.project(lat, lon));
    }
    let polygon = Polygon::new(projected);
    if polygon.doubled_area() == 0 {
        return Err(ParamError::invalid(
            field,
            "the polygon has no area (all vertices collinear)",
        ));
    }
    Ok(CompiledZone {
        frame,
        shape: CompiledShape::Polygon(polygon),
    })
}

/// What one fix says about one zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    Compliant,
    Violating,
    Uncertain,
}

impl CompiledZone {
    /// Evidence of a fix whose centre is `p` (in this zone's plane) with uncertainty radius `r`.
    fn evidence(&self, rule: ZoneRule, p: PlanePoint, r: i64) -> Evidence {
        // (where the centre is, whether the whole disc is clear of the boundary)
        let (location, clear) = match &self.shape {
            CompiledShape::Circle { radius } => {
                let d2 = geo::distance2(p, PlanePoint { x: 0, y: 0 });
                let r2 = i128::from(*radius) * i128::from(*radius);
                let location = match d2.cmp(&r2) {
                    std::cmp::Ordering::Less => Location::Inside,
                    std::cmp::Ordering::Equal => Location::Boundary,
                    std::cmp::Ordering::Greater => Location::Outside,
                };
                let clear = match location {
                    Location::Outside => {
                        let reach = i128::from(*radius) + i128::from(r);
                        d2 > reach * reach
                    }
                    Location::Inside => {
                        *radius > r && d2 < (i128::from(*radius) - i128::from(r)).pow(2)
                    }
                    Location::Boundary => false,
                };
                (location, clear)
            }
            CompiledShape::Polygon(polygon) => {
                let location = polygon.locate(p);
                let clear = location != Location::Boundary && !polygon.boundary_within(p, r);
                (location, clear)
            }
        };
        match (rule, location) {
            (ZoneRule::KeepInside, Location::Inside | Location::Boundary) => Evidence::Compliant,
            (ZoneRule::KeepOutside, Location::Outside) => Evidence::Compliant,
            (ZoneRule::KeepInside, Location::Outside)
            | (ZoneRule::KeepOutside, Location::Inside)
                if clear =>
            {
                Evidence::Violating
            }
            _ => Evidence::Uncertain,
        }
    }
}

/// A zone's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum ZoneStatus {
    /// No conclusive fix yet.
    #[default]
    Unknown,
    Compliant,
    /// Violating since `since_ms`, not yet for `dwell_ms`.
    Pending {
        since_ms: TimestampMs,
    },
    /// A confirmed violation, which began at `since_ms`.
    Violating {
        since_ms: TimestampMs,
    },
}

/// A change of a zone's confirmed status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneEventKind {
    /// Left a keep-inside zone.
    Left,
    /// Came back into a keep-inside zone.
    Returned,
    /// Entered a keep-outside zone.
    Entered,
    /// Left a keep-outside zone.
    Exited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneEvent {
    pub zone: String,
    pub event: ZoneEventKind,
}

/// One zone's evidence and status after a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneReport {
    pub evidence: Evidence,
    pub status: ZoneStatus,
}

/// State of a geofence instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeofenceState {
    pub last_ms: Option<TimestampMs>,
    /// One per zone, in the order of [`GeofenceParams::zones`].
    pub zones: Vec<ZoneStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GeofenceReason {
    pub fix: GeoFix,
    /// One per zone, in parameter order.
    pub zones: Vec<ZoneReport>,
    pub events: Vec<ZoneEvent>,
}

impl GeofenceParams {
    pub(crate) fn initial_state(&self) -> GeofenceState {
        GeofenceState {
            last_ms: None,
            zones: vec![ZoneStatus::Unknown; self.zones.len()],
        }
    }

    /// The level a state stands at.
    pub(crate) fn level(&self, state: &GeofenceState) -> AlertLevel {
        self.zones
            .iter()
            .zip(&state.zones)
            .filter(|(_, s)| matches!(s, ZoneStatus::Violating { .. }))
            .map(|(z, _)| z.level)
            .max()
            .unwrap_or(AlertLevel::Ok)
    }

    pub(crate) fn step(
        &self,
        compiled: &[CompiledZone],
        state: &mut GeofenceState,
        fix: GeoFix,
        time_ms: TimestampMs,
    ) -> Result<GeofenceReason, StepError> {
        if state.zones.len() != self.zones.len() || compiled.len() != self.zones.len() {
            return Err(StepError::StateMismatch("geofence zone count"));
        }
        if let Some(last_ms) = state.last_ms
            && time_ms < last_ms
        {
            return Err(StepError::OutOfOrder { time_ms, last_ms });
        }
        state.last_ms = Some(time_ms);
        let usable = fix.accuracy_m <= self.accuracy_max_m;
        let r = geo::metres_to_units(fix.accuracy_m.saturating_add(self.margin_m));
        let mut reports = Vec::with_capacity(self.zones.len());
        let mut events = Vec::new();
        for ((spec, zone), status) in self.zones.iter().zip(compiled).zip(state.zones.iter_mut()) {
            let evidence = if usable {
                zone.evidence(spec.rule, zone.frame.project(fix.lat_udeg, fix.lon_udeg), r)
            } else {
                Evidence::Uncertain
            };
            let event = |kind_inside, kind_outside| ZoneEvent {
                zone: spec.name.clone(),
                event: if spec.rule == ZoneRule::KeepInside {
                    kind_inside
                } else {
                    kind_outside
                },
            };
            *status = match (evidence, *status) {
                (Evidence::Uncertain, s) => s,
                (Evidence::Compliant, ZoneStatus::Violating { .. }) => {
                    events.push(event(ZoneEventKind::Returned, ZoneEventKind::Exited));
                    ZoneStatus::Compliant
                }
                (Evidence::Compliant, _) => ZoneStatus::Compliant,
                (Evidence::Violating, ZoneStatus::Violating { since_ms }) => {
                    ZoneStatus::Violating { since_ms }
                }
                (Evidence::Violating, previous) => {
                    let since_ms = match previous {
                        ZoneStatus::Pending { since_ms } => since_ms,
                        _ => time_ms,
                    };
                    if time_ms.saturating_sub(since_ms) >= self.dwell_ms as i64 {
                        events.push(event(ZoneEventKind::Left, ZoneEventKind::Entered));
                        ZoneStatus::Violating { since_ms }
                    } else {
                        ZoneStatus::Pending { since_ms }
                    }
                }
            };
            reports.push(ZoneReport {
                evidence,
                status: *status,
            });
        }
        Ok(GeofenceReason {
            fix,
            zones: reports,
            events,
        })
    }
}

impl Canonical for ZoneSpec {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.name).u8(self.rule as u8).u8(self.level.code());
        e.opt(self.circle, |e, c| {
            e.i32(c.lat_udeg).i32(c.lon_udeg).u32(c.radius_m);
        });
        e.opt(self.polygon.as_ref(), |e, vertices| {
            e.len(vertices.len());
            for [lat, lon] in vertices {
                e.i32(*lat).i32(*lon);
            }
        });
    }
}

impl Canonical for GeofenceParams {
    fn encode(&self, e: &mut Encoder) {
        e.value(&self.zones)
            .u64(self.dwell_ms)
            .u32(self.margin_m)
            .u32(self.accuracy_max_m);
    }
}

impl Canonical for ZoneStatus {
    fn encode(&self, e: &mut Encoder) {
        match *self {
            ZoneStatus::Unknown => {
                e.u8(0);
            }
            ZoneStatus::Compliant => {
                e.u8(1);
            }
            ZoneStatus::Pending { since_ms } => {
                e.u8(2).i64(since_ms);
            }
            ZoneStatus::Violating { since_ms } => {
                e.u8(3).i64(since_ms);
            }
        }
    }
}

impl Canonical for GeofenceState {
    fn encode(&self, e: &mut Encoder) {
        e.opt(self.last_ms, |e, v| {
            e.i64(v);
        });
        e.value(&self.zones);
    }
}
