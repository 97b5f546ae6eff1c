//! Point-in-polygon against an independent exact algorithm, and parameter files.

use proptest::prelude::*;
use vigil_contracts::Params;
use vigil_contracts::geo::{Location, PlanePoint, Polygon};

/// Sunday's winding number with exact integer arithmetic: an independent algorithm. For a
/// simple polygon and a point off its boundary, non-zero winding is the same as inside.
fn winding(vertices: &[PlanePoint], p: PlanePoint) -> i32 {
    let is_left = |a: PlanePoint, b: PlanePoint| {
        i128::from(b.x - a.x) * i128::from(p.y - a.y)
            - i128::from(p.x - a.x) * i128::from(b.y - a.y)
    };
    let mut w = 0;
    for i in 0..vertices.len() {
        let (a, b) = (vertices[i], vertices[(i + 1) % vertices.len()]);
        if a.y <= p.y {
            if b.y > p.y && is_left(a, b) > 0 {
                w += 1;
            }
        } else if b.y <= p.y && is_left(a, b) < 0 {
            w -= 1;
        }
    }
    w
}

/// A star-shaped (hence simple) polygon: vertices at increasing angles around the origin, with
/// arbitrary radii, on an integer grid.
fn star(radii: &[u16]) -> Vec<PlanePoint> {
    let n = radii.len();
    radii
        .iter()
        .enumerate()
        .map(|(k, &r)| {
            let angle = std::f64::consts::TAU * k as f64 / n as f64;
            let r = f64::from(r) + 10.0;
            PlanePoint {
                x: (r * angle.cos()).round() as i64,
                y: (r * angle.sin()).round() as i64,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn crossing_number_agrees_with_winding_number(
        radii in prop::collection::vec(0u16..2_000, 3..40),
        points in prop::collection::vec((-2_100i64..2_100, -2_100i64..2_100), 1..50),
    ) {
        let vertices = star(&radii);
        let polygon = Polygon::new(vertices.clone());
        prop_assume!(polygon.doubled_area() != 0);
        for (x, y) in points {
            let p = PlanePoint { x, y };
            let location = polygon.locate(p);
            let on_boundary = polygon.boundary_within(p, 0);
            prop_assert_eq!(location == Location::Boundary, on_boundary, "{:?}", p);
            if !on_boundary {
                prop_assert_eq!(location == Location::Inside, winding(&vertices, p) != 0, "{:?}", p);
            }
        }
        // Every vertex and every edge midpoint on the grid is on the boundary.
        for i in 0..vertices.len() {
            let (a, b) = (vertices[i], vertices[(i + 1) % vertices.len()]);
            prop_assert_eq!(polygon.locate(a), Location::Boundary);
            if (a.x + b.x) % 2 == 0 && (a.y + b.y) % 2 == 0 {
                let mid = PlanePoint { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
                prop_assert_eq!(polygon.locate(mid), Location::Boundary);
            }
        }
    }
}

#[test]
fn unknown_parameter_fields_are_errors() {
    let err =
        toml::from_str::<Params>("kind = 'threshold'\nmetric = 'heart-rate'\nwarning_abov = 1\n")
            .expect_err("typo must fail");
    assert!(err.to_string().contains("warning_abov"), "{err}");
    let err = toml::from_str::<Params>("kind = 'thresh'\n").expect_err("unknown kind");
    assert!(err.to_string().contains("thresh"), "{err}");
    let ok = toml::from_str::<Params>("kind = 'no-signal'\ninterval_ms = 60000\ngrace_ms = 0\n")
        .expect("valid");
    ok.validate().expect("valid");
}

#[test]
fn example_files_parse_and_validate() {
    #[derive(serde::Deserialize)]
    struct Entry {
        params: Params,
    }
    #[derive(serde::Deserialize)]
    struct File {
        instance: Vec<Entry>,
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let from_toml: File =
        toml::from_str(&std::fs::read_to_string(format!("{dir}/instances.toml")).expect("read"))
            .expect("toml");
    let from_json: File = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/instances.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(from_toml.instance.len(), 5);
    for (a, b) in from_toml.instance.iter().zip(&from_json.instance) {
        assert_eq!(a.params, b.params);
        a.params.validate().expect("valid");
    }
}
