use proptest::prelude::*;

use super::*;

fn device(node: &str, u: u32, h: u32) -> Device {
    Device {
        node_id: node.into(),
        position_u: u,
        height_u: h,
        face: Face::Front,
    }
}

fn layout(devices: Vec<Device>) -> Layout {
    Layout {
        sites: vec![Site {
            id: "home".into(),
            name: "Home".into(),
            rooms: vec![Room {
                id: "cellar".into(),
                name: "Cellar".into(),
                width_m: 4.0,
                depth_m: 3.0,
                racks: vec![Rack {
                    id: "r1".into(),
                    name: "Rack 1".into(),
                    height_u: 12,
                    x_m: 1.0,
                    y_m: 0.5,
                    rotation_deg: 90.0,
                    devices,
                }],
            }],
        }],
    }
}

#[test]
fn a_sound_layout_passes_and_says_what_is_placed() {
    let l = layout(vec![
        device("n1", 1, 2),
        device("n2", 3, 1),
        device("n3", 12, 1),
    ]);
    assert_eq!(validate(&l), Ok(()));
    assert_eq!(
        l.placed().into_iter().collect::<Vec<_>>(),
        vec!["n1", "n2", "n3"]
    );
}

#[test]
fn problems_are_named() {
    let err = |l: &Layout| validate(l).unwrap_err();
    assert!(
        err(&layout(vec![device("n1", 1, 2), device("n2", 2, 1)])).contains("overlaps host n1")
    );
    assert!(err(&layout(vec![device("n1", 12, 2)])).contains("does not fit 12 U"));
    assert!(err(&layout(vec![device("n1", 0, 1)])).contains("does not fit"));
    assert!(err(&layout(vec![device("n1", 1, 1), device("n1", 5, 1)])).contains("placed twice"));
    let mut l = layout(vec![]);
    l.sites[0].rooms[0].racks[0].x_m = 9.0;
    assert!(err(&l).contains("inside room cellar"));
    let mut l = layout(vec![]);
    l.sites[0].rooms[0].id = "home".into();
    assert!(err(&l).contains("used twice"));
    let mut l = layout(vec![]);
    l.sites[0].rooms[0].width_m = f64::NAN;
    assert!(err(&l).contains("width_m"));
    let mut l = layout(vec![]);
    l.sites[0].rooms[0].racks[0].height_u = 0;
    assert!(err(&l).contains("height_u"));
    let mut l = layout(vec![]);
    l.sites[0].id = "a b".into();
    assert!(err(&l).contains("site id"));
}

#[test]
fn unknown_fields_are_refused() {
    let doc = r#"{"sites":[{"id":"s","name":"S","rooms":[],"colour":"red"}]}"#;
    assert!(serde_json::from_str::<Layout>(doc).is_err());
}

#[test]
fn a_limited_caller_sees_only_its_devices() {
    let mut l = layout(vec![device("n1", 1, 1), device("n2", 2, 1)]);
    l.retain_devices(|n| n == "n2");
    assert_eq!(l.placed().into_iter().collect::<Vec<_>>(), vec!["n2"]);
}

proptest! {
    /// Whatever devices are asked for, validation never panics, and what it
    /// accepts has no overlap and fits its rack.
    #[test]
    fn accepted_layouts_have_no_overlap(devs in prop::collection::vec((0u32..20, 0u32..5), 0..12)) {
        let l = layout(devs.iter().enumerate().map(|(i, (u, h))| device(&format!("n{i}"), *u, *h)).collect());
        if validate(&l).is_ok() {
            let mut units = BTreeSet::new();
            for d in &l.sites[0].rooms[0].racks[0].devices {
                prop_assert!(d.position_u >= 1 && d.position_u + d.height_u - 1 <= 12);
                for u in d.position_u..d.position_u + d.height_u {
                    prop_assert!(units.insert(u), "U{} used twice", u);
                }
            }
        }
    }
}
