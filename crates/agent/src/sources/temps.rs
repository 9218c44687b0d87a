//! Temperatures from hwmon (`/sys/class/hwmon/hwmon*/temp*_input`).

use std::path::PathBuf;

use twinbay_proto::model::TempSample;

/// One reading: `chip` is the hwmon `name`, `label` the `tempN_label` (or
/// `tempN`), `input` the contents of `tempN_input` (millidegrees Celsius).
pub fn reading(chip: &str, label: &str, input: &str) -> Option<TempSample> {
    let milli: i64 = input.trim().parse().ok()?;
    Some(TempSample {
        sensor: format!("{}/{}", chip.trim(), label.trim()),
        celsius: milli as f32 / 1000.0,
    })
}

#[derive(Debug)]
pub struct TempSource {
    root: PathBuf,
}

impl TempSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TempSource { root: root.into() }
    }

    /// Every readable sensor; none at all (a VM, a container) is not an error.
    pub fn sample(&self) -> Vec<TempSample> {
        let mut out = Vec::new();
        let Ok(chips) = std::fs::read_dir(self.root.join("sys/class/hwmon")) else {
            return out;
        };
        for chip in chips.flatten() {
            let dir = chip.path();
            let name = std::fs::read_to_string(dir.join("name")).unwrap_or_else(|_| "hwmon".into());
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut inputs: Vec<String> = files
                .flatten()
                .filter_map(|f| f.file_name().to_str().map(String::from))
                .filter(|f| f.starts_with("temp") && f.ends_with("_input"))
                .collect();
            inputs.sort();
            for input in inputs {
                let base = input.trim_end_matches("_input");
                let label = std::fs::read_to_string(dir.join(format!("{base}_label")))
                    .unwrap_or_else(|_| base.to_string());
                if let Some(r) = std::fs::read_to_string(dir.join(&input))
                    .ok()
                    .and_then(|v| reading(&name, &label, &v))
                {
                    out.push(r);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_millidegrees_with_labels() {
        let r = reading("coretemp\n", "Package id 0\n", "45000\n").unwrap();
        assert_eq!(r.sensor, "coretemp/Package id 0");
        assert_eq!(r.celsius, 45.0);
        assert_eq!(reading("acpitz", "temp1", "-2500").unwrap().celsius, -2.5);
        assert_eq!(reading("x", "y", "N/A"), None);
    }

    #[test]
    fn reads_a_recorded_hwmon_tree() {
        let dir = std::env::temp_dir().join(format!("twinbay-hwmon-{}", std::process::id()));
        let chip = dir.join("sys/class/hwmon/hwmon0");
        std::fs::create_dir_all(&chip).unwrap();
        std::fs::write(chip.join("name"), "k10temp\n").unwrap();
        std::fs::write(chip.join("temp1_input"), "51250\n").unwrap();
        std::fs::write(chip.join("temp1_label"), "Tctl\n").unwrap();
        std::fs::write(chip.join("temp3_input"), "38000\n").unwrap();
        let temps = TempSource::new(&dir).sample();
        assert_eq!(temps.len(), 2);
        assert_eq!(temps[0].sensor, "k10temp/Tctl");
        assert_eq!(temps[1].sensor, "k10temp/temp3");
        assert!(TempSource::new("/nonexistent").sample().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
