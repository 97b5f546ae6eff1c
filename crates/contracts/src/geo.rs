//! Integer geometry for geofences: a local plane around each zone, point-in-polygon by exact
//! integer cross products, and distance-to-boundary tests without square roots.
//!
//! # The local plane and its error bound
//!
//! Each zone has a reference point (a circle's centre, a polygon's first vertex). Positions are
//! projected onto a plane tangent there (equirectangular): `y = lat - lat0` and
//! `x = (lon - lon0) · cos(lat0)`, both in *plane units* of one micro-degree of latitude,
//! [`METRES_PER_UNIT`] ≈ 0.1112 m on the mean-radius sphere (R = 6 371 008.8 m). `cos(lat0)` comes
//! from [`cos_q30`]: a table of cos at every whole degree in Q30, interpolated linearly in
//! micro-degrees; its absolute error is below 4·10⁻⁵ (h²/8 with h = 1°), so east-west distances
//! are off by at most 4 cm per km from that source. The projection itself stretches east-west
//! distances by `cos(lat)/cos(lat0) - 1 ≈ tan|lat0|·Δlat` at a latitude `Δlat` (radians) from the
//! reference: at |lat0| ≤ 60° and a zone [`ZONE_EXTENT_UDEG_MAX`] = 0.5° across, under 1.6 % at the
//! far edge of the largest zone and under 0.02 % within 600 m of the reference (a home zone). The
//! sphere-versus-plane error is of order (d/R)², negligible at these sizes. Every step is integer
//! with floor rounding (arithmetic shifts), so all validators agree to the unit.
//!
//! Overflow: coordinates are micro-degrees (|lat| ≤ 9·10⁷, |lon| ≤ 1.8·10⁸), so plane
//! coordinates are below 2²⁹ and single products below 2⁵⁸ fit `i64`; squared-distance products
//! that may reach 2⁹⁰ use `i128`.

use serde::{Deserialize, Serialize};

/// Metres per plane unit (one micro-degree of latitude), in Q32: 0.111 195 08 m.
pub const METRES_PER_UNIT_Q32: i64 = 477_579_233;
/// Metres per plane unit, for documentation and tests only (never used in evaluation).
pub const METRES_PER_UNIT: f64 = 0.111_195_080_233_532_92;
/// Plane units per metre, in Q32: 8.993 203 64.
pub const UNITS_PER_METRE_Q32: i64 = 38_625_515_508;
/// Largest distance, in micro-degrees of latitude or longitude, from a zone's reference point to
/// any of its points (0.5°, about 55 km of latitude): beyond it the local plane distorts too much.
pub const ZONE_EXTENT_UDEG_MAX: i64 = 500_000;
/// Largest |latitude| of a zone's reference point: the plane degenerates towards the poles.
pub const ZONE_LAT_UDEG_MAX: i32 = 80_000_000;

/// cos(d°) in Q30 for d = 0..=90, rounded to nearest.
const COS_Q30: [i64; 91] = [
    1073741824, 1073578288, 1073087729, 1072270298, 1071126243, 1069655912, 1067859754, 1065738315,
    1063292242, 1060522280, 1057429273, 1054014162, 1050277989, 1046221891, 1041847103, 1037154959,
    1032146887, 1026824413, 1021189159, 1015242840, 1008987269, 1002424350, 995556083, 988384560,
    980911966, 973140576, 965072759, 956710970, 948057759, 939115760, 929887697, 920376381,
    910584710, 900515665, 890172315, 879557810, 868675383, 857528349, 846120104, 834454122,
    822533958, 810363241, 797945680, 785285058, 772385229, 759250125, 745883746, 732290163,
    718473518, 704438018, 690187940, 675727625, 661061475, 646193961, 631129609, 615873009,
    600428808, 584801711, 568996477, 553017922, 536870912, 520560366, 504091252, 487468587,
    470697435, 453782903, 436730145, 419544355, 402230767, 384794656, 367241333, 349576144,
    331804471, 313931728, 295963357, 277904834, 259761657, 241539355, 223243478, 204879599,
    186453311, 167970228, 149435979, 130856211, 112236583, 93582766, 74900443, 56195305, 37473049,
    18739379, 0,
];

/// cos(lat) in Q30 for a latitude in micro-degrees, by linear interpolation in [`COS_Q30`].
/// Latitudes beyond ±90° are clamped.
pub fn cos_q30(lat_udeg: i32) -> i64 {
    let a = i64::from(lat_udeg).abs().min(90_000_000);
    let degree = (a / 1_000_000) as usize;
    let fraction = a % 1_000_000;
    let low = COS_Q30[degree];
    let high = COS_Q30[(degree + 1).min(90)];
    low + (high - low) * fraction / 1_000_000
}

/// Whole metres to plane units, rounded to nearest.
pub fn metres_to_units(metres: u32) -> i64 {
    // u32::MAX metres give about 3.9e10 units: the product needs i128, the result fits i64.
    ((i128::from(metres) * i128::from(UNITS_PER_METRE_Q32) + (1 << 31)) >> 32) as i64
}

/// Plane units to whole metres, rounded to nearest (for reports).
pub fn units_to_metres(units: i64) -> i64 {
    let clamped = units.clamp(-(1 << 30), 1 << 30);
    (clamped * METRES_PER_UNIT_Q32 + (1 << 31)) >> 32
}

/// A point of the local plane: x east, y north, in plane units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanePoint {
    pub x: i64,
    pub y: i64,
}

/// The tangent plane at a reference point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalFrame {
    lat0_udeg: i32,
    lon0_udeg: i32,
    cos_q30: i64,
}

impl LocalFrame {
    pub fn new(lat0_udeg: i32, lon0_udeg: i32) -> Self {
        Self {
            lat0_udeg,
            lon0_udeg,
            cos_q30: cos_q30(lat0_udeg),
        }
    }

    /// Projects a position; longitudes wrap so that the antimeridian is no edge.
    pub fn project(&self, lat_udeg: i32, lon_udeg: i32) -> PlanePoint {
        let y = i64::from(lat_udeg) - i64::from(self.lat0_udeg);
        let dlon = wrap_lon(i64::from(lon_udeg) - i64::from(self.lon0_udeg));
        PlanePoint {
            x: (dlon * self.cos_q30) >> 30,
            y,
        }
    }

    /// Longitude difference from the reference, wrapped into (-180°, 180°].
    pub fn dlon(&self, lon_udeg: i32) -> i64 {
        wrap_lon(i64::from(lon_udeg) - i64::from(self.lon0_udeg))
    }
}

fn wrap_lon(d: i64) -> i64 {
    const FULL: i64 = 360_000_000;
    let mut d = d.rem_euclid(FULL);
    if d > FULL / 2 {
        d -= FULL;
    }
    d
}

/// Where a point lies relative to a closed shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Inside,
    /// On an edge or a vertex. The boundary belongs to the shape.
    Boundary,
    Outside,
}

/// An axis-aligned box of the plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub min: PlanePoint,
    pub max: PlanePoint,
}

impl BBox {
    /// Whether `p` lies in the box grown by `r` on every side.
    #[inline]
    pub fn contains_within(&self, p: PlanePoint, r: i64) -> bool {
        p.x >= self.min.x - r
            && p.x <= self.max.x + r
            && p.y >= self.min.y - r
            && p.y <= self.max.y + r
    }
}

/// A simple or self-touching polygon in the plane, closed implicitly (last vertex to first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Polygon {
    vertices: Vec<PlanePoint>,
    bbox: BBox,
}

impl Polygon {
    /// `vertices` must be non-empty; callers validate counts first.
    pub fn new(vertices: Vec<PlanePoint>) -> Self {
        let first = vertices
            .first()
            .copied()
            .unwrap_or(PlanePoint { x: 0, y: 0 });
        let mut bbox = BBox {
            min: first,
            max: first,
        };
        for v in &vertices {
            bbox.min.x = bbox.min.x.min(v.x);
            bbox.min.y = bbox.min.y.min(v.y);
            bbox.max.x = bbox.max.x.max(v.x);
            bbox.max.y = bbox.max.y.max(v.y);
        }
        Self { vertices, bbox }
    }

    pub fn bbox(&self) -> BBox {
        self.bbox
    }

    /// Twice the signed area (positive when counter-clockwise), exact.
    pub fn doubled_area(&self) -> i128 {
        let n = self.vertices.len();
        (0..n)
            .map(|i| {
                let a = self.vertices[i];
                let b = self.vertices[(i + 1) % n];
                i128::from(a.x) * i128::from(b.y) - i128::from(b.x) * i128::from(a.y)
            })
            .sum()
    }

    /// Even-odd point-in-polygon with exact integer arithmetic. Points on an edge or a vertex
    /// are [`Location::Boundary`]. Each edge is taken half-open in y (its lower end counts, its
    /// upper end does not) so that a ray through a vertex is counted once.
    pub fn locate(&self, p: PlanePoint) -> Location {
        if !self.bbox.contains_within(p, 0) {
            return Location::Outside;
        }
        let n = self.vertices.len();
        let mut inside = false;
        let mut a = self.vertices[n - 1];
        for &b in &self.vertices {
            let (ylo, yhi) = if a.y <= b.y { (a.y, b.y) } else { (b.y, a.y) };
            if p.y >= ylo && p.y <= yhi {
                // Plane coordinates are below 2^29 in magnitude: products fit i64.
                let cross = (b.x - a.x) * (p.y - a.y) - (p.x - a.x) * (b.y - a.y);
                if cross == 0 && p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) {
                    return Location::Boundary;
                }
                if (a.y > p.y) != (b.y > p.y) && (cross > 0) == (b.y > a.y) {
                    inside = !inside;
                }
            }
            a = b;
        }
        if inside {
            Location::Inside
        } else {
            Location::Outside
        }
    }

    /// Whether some point of the boundary lies within distance `r` (plane units) of `p`.
    pub fn boundary_within(&self, p: PlanePoint, r: i64) -> bool {
        if !self.bbox.contains_within(p, r) {
            return false;
        }
        let n = self.vertices.len();
        let mut a = self.vertices[n - 1];
        for &b in &self.vertices {
            let lo_x = a.x.min(b.x) - r;
            let hi_x = a.x.max(b.x) + r;
            let lo_y = a.y.min(b.y) - r;
            let hi_y = a.y.max(b.y) + r;
            if p.x >= lo_x
                && p.x <= hi_x
                && p.y >= lo_y
                && p.y <= hi_y
                && segment_within(a, b, p, r)
            {
                return true;
            }
            a = b;
        }
        false
    }
}

/// Whether the distance from `p` to the segment `ab` is at most `r`, without square roots.
pub fn segment_within(a: PlanePoint, b: PlanePoint, p: PlanePoint, r: i64) -> bool {
    let r2 = i128::from(r) * i128::from(r);
    let (abx, aby) = (i128::from(b.x - a.x), i128::from(b.y - a.y));
    let (apx, apy) = (i128::from(p.x - a.x), i128::from(p.y - a.y));
    let len2 = abx * abx + aby * aby;
    let t = apx * abx + apy * aby;
    if t <= 0 || len2 == 0 {
        return apx * apx + apy * apy <= r2;
    }
    if t >= len2 {
        let (bpx, bpy) = (i128::from(p.x - b.x), i128::from(p.y - b.y));
        return bpx * bpx + bpy * bpy <= r2;
    }
    // Perpendicular distance² = cross² / len2; both sides ≤ 2^120 here.
    let cross = abx * apy - aby * apx;
    cross * cross <= r2 * len2
}

/// Squared distance between two plane points, exact.
pub fn distance2(a: PlanePoint, b: PlanePoint) -> i128 {
    let dx = i128::from(a.x - b.x);
    let dy = i128::from(a.y - b.y);
    dx * dx + dy * dy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: i64, y: i64) -> PlanePoint {
        PlanePoint { x, y }
    }

    #[test]
    fn cos_table_error_is_below_the_documented_bound() {
        for lat in (-90_000_000..=90_000_000).step_by(7_919) {
            let exact = (f64::from(lat) / 1e6).to_radians().cos();
            let ours = cos_q30(lat) as f64 / f64::from(1u32 << 30);
            assert!((exact - ours).abs() < 4e-5, "{lat}: {exact} vs {ours}");
        }
        assert_eq!(cos_q30(0), 1 << 30);
        assert_eq!(cos_q30(90_000_000), 0);
        assert_eq!(cos_q30(i32::MIN), 0);
    }

    #[test]
    fn metre_conversions_round_trip() {
        assert_eq!(metres_to_units(0), 0);
        assert_eq!(metres_to_units(1), 9);
        assert_eq!(metres_to_units(1000), 8993);
        assert_eq!(units_to_metres(8993), 1000);
        assert!((METRES_PER_UNIT * (1u64 << 32) as f64 - METRES_PER_UNIT_Q32 as f64).abs() < 1.0);
    }

    #[test]
    fn projected_distances_match_the_haversine_within_the_bound() {
        // Points within 600 m of a reference at 60° N: error well under 0.1 % plus a unit.
        let (lat0, lon0) = (60_000_000, 25_000_000);
        let frame = LocalFrame::new(lat0, lon0);
        for (dlat, dlon) in [(0, 10_000), (5_000, 0), (3_000, -9_000), (-4_000, 4_000)] {
            let p = frame.project(lat0 + dlat, lon0 + dlon);
            let ours = (distance2(p, pt(0, 0)) as f64).sqrt() * METRES_PER_UNIT;
            let (p1, p2) = (f64::from(lat0) / 1e6, f64::from(lat0 + dlat) / 1e6);
            let (l1, l2) = (f64::from(lon0) / 1e6, f64::from(lon0 + dlon) / 1e6);
            let h = ((p2 - p1).to_radians() / 2.0).sin().powi(2)
                + p1.to_radians().cos()
                    * p2.to_radians().cos()
                    * ((l2 - l1).to_radians() / 2.0).sin().powi(2);
            let exact = 2.0 * 6_371_008.8 * h.sqrt().asin();
            assert!(
                (ours - exact).abs() <= exact * 1e-3 + 0.2,
                "{ours} vs {exact}"
            );
        }
    }

    #[test]
    fn longitudes_wrap_at_the_antimeridian() {
        let frame = LocalFrame::new(0, 179_999_000);
        assert_eq!(frame.dlon(-179_999_000), 2_000);
        assert_eq!(frame.project(0, -179_999_000).x, 2_000);
    }

    #[test]
    fn square_edges_and_vertices_are_boundary() {
        let sq = Polygon::new(vec![pt(0, 0), pt(10, 0), pt(10, 10), pt(0, 10)]);
        assert_eq!(sq.locate(pt(5, 5)), Location::Inside);
        for p in [
            pt(0, 0),
            pt(10, 10),
            pt(0, 10),
            pt(5, 0),
            pt(10, 5),
            pt(5, 10),
            pt(0, 5),
        ] {
            assert_eq!(sq.locate(p), Location::Boundary, "{p:?}");
        }
        for p in [
            pt(-1, 5),
            pt(11, 5),
            pt(5, -1),
            pt(5, 11),
            pt(11, 0),
            pt(-1, 10),
            pt(11, 10),
        ] {
            assert_eq!(sq.locate(p), Location::Outside, "{p:?}");
        }
    }

    #[test]
    fn rays_through_vertices_count_once() {
        // A diamond: a horizontal ray from inside passes exactly through the right vertex.
        let diamond = Polygon::new(vec![pt(0, -10), pt(10, 0), pt(0, 10), pt(-10, 0)]);
        assert_eq!(diamond.locate(pt(0, 0)), Location::Inside);
        assert_eq!(diamond.locate(pt(-11, 0)), Location::Outside);
        assert_eq!(diamond.locate(pt(11, 0)), Location::Outside);
        assert_eq!(diamond.locate(pt(5, 5)), Location::Boundary);
        assert_eq!(diamond.locate(pt(6, 5)), Location::Outside);
    }

    #[test]
    fn concave_and_collinear_polygons() {
        // A U shape (concave), with a collinear vertex on its bottom edge at (5, 0).
        let u = Polygon::new(vec![
            pt(0, 0),
            pt(5, 0),
            pt(10, 0),
            pt(10, 10),
            pt(7, 10),
            pt(7, 3),
            pt(3, 3),
            pt(3, 10),
            pt(0, 10),
        ]);
        assert_eq!(u.locate(pt(1, 5)), Location::Inside);
        assert_eq!(u.locate(pt(8, 9)), Location::Inside);
        assert_eq!(u.locate(pt(5, 5)), Location::Outside); // in the notch
        assert_eq!(u.locate(pt(5, 3)), Location::Boundary); // notch floor
        assert_eq!(u.locate(pt(5, 0)), Location::Boundary); // collinear vertex
        assert_eq!(u.locate(pt(5, 1)), Location::Inside);
        assert_eq!(u.locate(pt(3, 10)), Location::Boundary);
        assert_eq!(u.locate(pt(5, 10)), Location::Outside); // across the notch's mouth
        // A ray at y = 10 runs along two horizontal edges.
        assert_eq!(u.locate(pt(-1, 10)), Location::Outside);
        assert_eq!(u.locate(pt(11, 10)), Location::Outside);
        assert_eq!(u.locate(pt(2, 10)), Location::Boundary);
        // A ray at y = 3 runs along the notch floor.
        assert_eq!(u.locate(pt(1, 3)), Location::Inside);
        assert_eq!(u.locate(pt(9, 3)), Location::Inside);
    }

    #[test]
    fn boundary_distance() {
        let sq = Polygon::new(vec![pt(0, 0), pt(100, 0), pt(100, 100), pt(0, 100)]);
        assert!(sq.boundary_within(pt(50, 50), 50));
        assert!(!sq.boundary_within(pt(50, 50), 49));
        assert!(sq.boundary_within(pt(103, 104), 5)); // corner at distance 5
        assert!(!sq.boundary_within(pt(103, 104), 4));
        assert!(sq.boundary_within(pt(50, -7), 7));
        assert!(!sq.boundary_within(pt(50, -7), 6));
        assert!(segment_within(pt(0, 0), pt(0, 0), pt(3, 4), 5));
        assert_eq!(sq.doubled_area(), 20_000);
    }
}
