//! Where the fleet physically is, for the 3D mirror world: sites → rooms →
//! racks (height in U, position and rotation in the room) → devices (a
//! host at a U position), modelled as NetBox does so an import from NetBox
//! fits. One document, edited whole by admins with optimistic concurrency
//! (`version`), validated here (pure) before the store keeps it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The most racks and devices one layout may hold.
pub const MAX_RACKS: usize = 2_000;
pub const MAX_DEVICES: usize = 20_000;
/// The tallest rack (NetBox allows 100; real ones stop well before).
pub const MAX_RACK_U: u32 = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    #[serde(default)]
    pub sites: Vec<Site>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub rooms: Vec<Room>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Room {
    pub id: String,
    pub name: String,
    /// Floor size in metres (x across, y deep).
    pub width_m: f64,
    pub depth_m: f64,
    #[serde(default)]
    pub racks: Vec<Rack>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rack {
    pub id: String,
    pub name: String,
    /// Height in rack units (NetBox `u_height`), 1 to [`MAX_RACK_U`].
    pub height_u: u32,
    /// Where its front-left corner stands on the room's floor, in metres.
    pub x_m: f64,
    pub y_m: f64,
    /// Turned about its corner, degrees clockwise from facing +y.
    #[serde(default)]
    pub rotation_deg: f64,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The host (twin node id) mounted here.
    pub node_id: String,
    /// Its lowest unit, counted from 1 at the bottom (NetBox `position`).
    pub position_u: u32,
    /// How many units it fills (NetBox device type `u_height`).
    #[serde(default = "one")]
    pub height_u: u32,
    #[serde(default)]
    pub face: Face,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Face {
    #[default]
    Front,
    Rear,
}

/// Checks `layout` whole; the error names the first problem and where.
pub fn validate(layout: &Layout) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    let mut placed: BTreeMap<&str, String> = BTreeMap::new();
    let (mut racks, mut devices) = (0usize, 0usize);
    let mut id = |kind: &str, id: &str, name: &str| -> Result<(), String> {
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "{kind} id {id:?}: 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.'"
            ));
        }
        if name.is_empty() || name.chars().count() > 100 {
            return Err(format!("{kind} {id}: a name of 1 to 100 characters"));
        }
        if !ids.insert(id.to_string()) {
            return Err(format!("{kind} id {id:?} is used twice"));
        }
        Ok(())
    };
    for site in &layout.sites {
        id("site", &site.id, &site.name)?;
        for room in &site.rooms {
            id("room", &room.id, &room.name)?;
            let size_ok = |m: f64| m.is_finite() && m > 0.0 && m <= 1000.0;
            if !size_ok(room.width_m) || !size_ok(room.depth_m) {
                return Err(format!(
                    "room {}: width_m and depth_m between 0 and 1000",
                    room.id
                ));
            }
            for rack in &room.racks {
                id("rack", &rack.id, &rack.name)?;
                racks += 1;
                if racks > MAX_RACKS {
                    return Err(format!("more than {MAX_RACKS} racks"));
                }
                if !(1..=MAX_RACK_U).contains(&rack.height_u) {
                    return Err(format!("rack {}: height_u from 1 to {MAX_RACK_U}", rack.id));
                }
                let inside = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
                if !inside(rack.x_m, room.width_m) || !inside(rack.y_m, room.depth_m) {
                    return Err(format!(
                        "rack {}: x_m and y_m must be inside room {}",
                        rack.id, room.id
                    ));
                }
                if !rack.rotation_deg.is_finite() {
                    return Err(format!("rack {}: rotation_deg must be a number", rack.id));
                }
                check_rack(rack, &mut placed)?;
                devices += rack.devices.len();
                if devices > MAX_DEVICES {
                    return Err(format!("more than {MAX_DEVICES} devices"));
                }
            }
        }
    }
    Ok(())
}

/// Devices inside the rack, not overlapping (devices are full depth), each
/// host placed once in the whole layout.
fn check_rack<'a>(rack: &'a Rack, placed: &mut BTreeMap<&'a str, String>) -> Result<(), String> {
    let mut used: Vec<(u32, u32, &str)> = Vec::new();
    for d in &rack.devices {
        if d.node_id.is_empty() {
            return Err(format!("rack {}: a device without a node_id", rack.id));
        }
        if let Some(other) = placed.insert(&d.node_id, rack.id.clone()) {
            return Err(format!(
                "host {} is placed twice (racks {other} and {})",
                d.node_id, rack.id
            ));
        }
        let top = d.position_u.saturating_add(d.height_u).saturating_sub(1);
        if d.position_u < 1 || d.height_u < 1 || top > rack.height_u {
            return Err(format!(
                "rack {}: host {} at U{} filling {} U does not fit {} U",
                rack.id, d.node_id, d.position_u, d.height_u, rack.height_u
            ));
        }
        if let Some((_, _, other)) = used
            .iter()
            .find(|(lo, hi, _)| d.position_u <= *hi && top >= *lo)
        {
            return Err(format!(
                "rack {}: host {} overlaps host {other} at U{}",
                rack.id, d.node_id, d.position_u
            ));
        }
        used.push((d.position_u, top, &d.node_id));
    }
    Ok(())
}

impl Layout {
    /// Every placed host's node id.
    pub fn placed(&self) -> BTreeSet<&str> {
        self.racks()
            .flat_map(|r| r.devices.iter().map(|d| d.node_id.as_str()))
            .collect()
    }

    fn racks(&self) -> impl Iterator<Item = &Rack> {
        self.sites
            .iter()
            .flat_map(|s| s.rooms.iter().flat_map(|r| r.racks.iter()))
    }

    /// The layout with only the devices of hosts `keep` says yes to (what a
    /// caller limited to host groups may see).
    pub fn retain_devices(&mut self, keep: impl Fn(&str) -> bool) {
        for site in &mut self.sites {
            for room in &mut site.rooms {
                for rack in &mut room.racks {
                    rack.devices.retain(|d| keep(&d.node_id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
