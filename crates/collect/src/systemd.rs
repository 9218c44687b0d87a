//! `systemctl list-units --output=json` (systemd ≥ 246) and the plain text
//! of older ones (`systemctl list-units --no-legend --plain --no-pager`).

use serde::Deserialize;
use twinbay_proto::model::Unit;

use crate::{ParseError, excerpt};

#[derive(Deserialize)]
struct JsonUnit {
    unit: String,
    #[serde(default)]
    load: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    description: String,
}

fn unit(name: &str, load: &str, active: &str, sub: &str, description: &str) -> Unit {
    Unit {
        name: name.into(),
        description: description.into(),
        load_state: load.into(),
        active_state: active.into(),
        sub_state: sub.into(),
        ..Default::default()
    }
}

/// Parses `systemctl list-units --output=json`.
pub fn list_units_json(text: &str) -> Result<Vec<Unit>, ParseError> {
    let units: Vec<JsonUnit> = serde_json::from_str(text.trim()).map_err(|e| {
        ParseError::new(
            "systemctl list-units --output=json",
            format!("not systemd's JSON ({e}): {}", excerpt(text)),
        )
    })?;
    Ok(units
        .into_iter()
        .map(|u| unit(&u.unit, &u.load, &u.active, &u.sub, &u.description))
        .collect())
}

/// Parses the text of `systemctl list-units` (with or without the legend
/// and the `●` marks of failed units).
pub fn list_units_text(text: &str) -> Result<Vec<Unit>, ParseError> {
    let mut units = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches(|c: char| c.is_whitespace() || c == '●' || c == '*');
        if line.is_empty() {
            break; // the legend follows an empty line
        }
        let mut words = line.split_ascii_whitespace();
        let (Some(name), Some(load), Some(active), Some(sub)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(ParseError::new(
                "systemctl list-units",
                format!("line {}: too few columns in {}", i + 1, excerpt(line)),
            ));
        };
        if name == "UNIT" {
            continue;
        }
        if !name.contains('.') {
            return Err(ParseError::new(
                "systemctl list-units",
                format!("line {}: not a unit name in {}", i + 1, excerpt(line)),
            ));
        }
        let description = words.collect::<Vec<_>>().join(" ");
        units.push(unit(name, load, active, sub, &description));
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_plain_and_legend_agree() {
        let json = list_units_json(include_str!("../testdata/debian/systemctl.json")).unwrap();
        let plain = list_units_text(include_str!("../testdata/debian/systemctl_plain")).unwrap();
        assert_eq!(json, plain);
        let nginx = json.iter().find(|u| u.name == "nginx.service").unwrap();
        assert_eq!(
            (nginx.active_state.as_str(), nginx.sub_state.as_str()),
            ("failed", "failed")
        );
        let legend = list_units_text(include_str!("../testdata/debian/systemctl_legend")).unwrap();
        assert_eq!(legend.len(), 3);
        assert_eq!(legend[1], *nginx);
    }

    #[test]
    fn garbage_and_truncated() {
        let text = include_str!("../testdata/debian/systemctl.json");
        assert!(list_units_json(&text[..100]).is_err());
        let e = list_units_json("System has not been booted with systemd as init system (PID 1).")
            .unwrap_err();
        assert!(e.reason.starts_with("not systemd's JSON"), "{e}");
        assert!(list_units_text("cron.service loaded").is_err());
        assert!(list_units_text("Failed to connect to bus: Host is down x").is_err());
    }
}
