//! Disk health from `smartctl --json` (smartmontools), when it is installed.
//!
//! SMART data changes slowly and reading it wakes disks, so the source runs
//! every ten minutes, not every interval. Without root, smartctl usually
//! cannot open the devices: that is reported per disk, not hidden.

use std::time::Duration;

use serde_json::Value;
use twinbay_proto::model::DiskHealth;

/// Device paths from `smartctl --scan --json`.
pub fn parse_scan(json: &str) -> Result<Vec<String>, String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("smartctl --scan gave bad JSON: {e}"))?;
    Ok(v["devices"]
        .as_array()
        .map(|devices| {
            devices
                .iter()
                .filter_map(|d| d["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// One disk from `smartctl --json -i -H -A DEVICE`.
pub fn parse_health(device: &str, json: &str) -> DiskHealth {
    let mut health = DiskHealth {
        device: device.to_string(),
        ..Default::default()
    };
    let v: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            health.error = Some(format!("smartctl gave bad JSON: {e}"));
            return health;
        }
    };
    let str_of = |v: &Value| v.as_str().map(str::to_string).unwrap_or_default();
    health.model = str_of(&v["model_name"]);
    health.serial = str_of(&v["serial_number"]);
    health.passed = v["smart_status"]["passed"].as_bool();
    health.temp_c = v["temperature"]["current"].as_i64();
    health.power_on_hours = v["power_on_time"]["hours"].as_u64();
    let nvme = &v["nvme_smart_health_information_log"];
    health.wear_pct = nvme["percentage_used"].as_u64();
    health.bad_blocks = nvme["media_errors"].as_u64().or_else(|| {
        v["ata_smart_attributes"]["table"]
            .as_array()?
            .iter()
            .find(|a| a["id"].as_u64() == Some(5))?["raw"]["value"]
            .as_u64()
    });
    // Bits 0 and 1 of the exit status: bad command line, or the device
    // could not be opened. The messages say why.
    let exit = v["smartctl"]["exit_status"].as_u64().unwrap_or(0);
    if exit & 0b11 != 0 || health.passed.is_none() {
        let messages: Vec<String> = v["smartctl"]["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["string"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        health.error = Some(if messages.is_empty() {
            "no SMART health reported".to_string()
        } else {
            messages.join("; ")
        });
    }
    health
}

const TIMEOUT: Duration = Duration::from_secs(20);

async fn smartctl(args: &[&str]) -> Result<String, String> {
    let run = tokio::process::Command::new("smartctl")
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(TIMEOUT, run).await {
        Err(_) => Err("smartctl did not answer in time".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("smartctl is not installed".into())
        }
        Ok(Err(e)) => Err(format!("cannot run smartctl: {e}")),
        // smartctl's exit status is a bit mask; the JSON says what it means.
        Ok(Ok(out)) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
    }
}

/// Every disk's health, or why smartctl cannot tell.
pub async fn read_all() -> Result<Vec<DiskHealth>, String> {
    let devices = parse_scan(&smartctl(&["--scan", "--json"]).await?)?;
    let mut out = Vec::with_capacity(devices.len());
    for device in devices {
        let json = smartctl(&["--json", "-i", "-H", "-A", &device]).await?;
        out.push(parse_health(&device, &json));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_healthy_ata_disk() {
        let h = parse_health("/dev/sda", include_str!("testdata/smartctl_ata.json"));
        assert_eq!(h.model, "Samsung SSD 870 EVO 1TB");
        assert_eq!(h.serial, "S6PTNM0R123456A");
        assert_eq!(h.passed, Some(true));
        assert_eq!(h.temp_c, Some(31));
        assert_eq!(h.power_on_hours, Some(12045));
        assert_eq!(h.bad_blocks, Some(0));
        assert_eq!(h.error, None);
    }

    #[test]
    fn reads_an_nvme_disk_with_wear() {
        let h = parse_health("/dev/nvme0", include_str!("testdata/smartctl_nvme.json"));
        assert_eq!(h.passed, Some(true));
        assert_eq!(h.wear_pct, Some(3));
        assert_eq!(h.bad_blocks, Some(0));
        assert_eq!(h.temp_c, Some(42));
    }

    #[test]
    fn says_why_a_disk_cannot_be_read() {
        let h = parse_health("/dev/sdb", include_str!("testdata/smartctl_denied.json"));
        assert_eq!(h.passed, None);
        let err = h.error.unwrap();
        assert!(err.contains("Permission denied"), "{err}");
        let h = parse_health("/dev/sdc", "garbage");
        assert!(h.error.unwrap().contains("bad JSON"));
    }

    #[test]
    fn lists_devices_from_a_scan() {
        let devices = parse_scan(include_str!("testdata/smartctl_scan.json")).unwrap();
        assert_eq!(devices, ["/dev/sda", "/dev/nvme0"]);
        assert!(parse_scan("{").is_err());
    }
}
