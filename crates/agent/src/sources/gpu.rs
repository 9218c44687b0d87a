//! NVIDIA GPUs through NVML, when the driver's library is present.
//!
//! NVML is loaded at run time: on a host without an NVIDIA driver, opening
//! it fails cleanly and the source reports itself unavailable.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use twinbay_proto::model::GpuSample;

/// What NVML says about one GPU; each reading may be unsupported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    pub index: u32,
    pub name: String,
    pub util_pct: Option<u32>,
    pub mem_used: Option<u64>,
    pub mem_total: Option<u64>,
    pub temp_c: Option<u32>,
    pub power_mw: Option<u32>,
}

/// The sample for one reading (unsupported numbers become 0 or absent).
pub fn to_sample(r: &GpuReading) -> GpuSample {
    GpuSample {
        index: r.index,
        name: r.name.clone(),
        util_pct: r.util_pct.unwrap_or(0).min(100) as f32,
        mem_used: r.mem_used.unwrap_or(0),
        mem_total: r.mem_total.unwrap_or(0),
        temp_c: r.temp_c.map(|t| t as f32),
        power_w: r.power_mw.map(|mw| mw as f32 / 1000.0),
    }
}

pub struct GpuSource {
    nvml: Nvml,
}

impl std::fmt::Debug for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuSource")
    }
}

impl GpuSource {
    /// Opens NVML, or says why not.
    pub fn open() -> Result<GpuSource, String> {
        Nvml::init()
            .map(|nvml| GpuSource { nvml })
            .map_err(|e| format!("NVML not available: {e}"))
    }

    pub fn sample(&self) -> Result<Vec<GpuSample>, String> {
        let count = self.nvml.device_count().map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let device = self
                .nvml
                .device_by_index(index)
                .map_err(|e| e.to_string())?;
            let memory = device.memory_info().ok();
            out.push(to_sample(&GpuReading {
                index,
                name: device.name().unwrap_or_default(),
                util_pct: device.utilization_rates().ok().map(|u| u.gpu),
                mem_used: memory.as_ref().map(|m| m.used),
                mem_total: memory.as_ref().map(|m| m.total),
                temp_c: device.temperature(TemperatureSensor::Gpu).ok(),
                power_mw: device.power_usage().ok(),
            }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_readings_and_tolerates_unsupported_ones() {
        // As an RTX 3090 under load reports them through NVML.
        let busy = GpuReading {
            index: 0,
            name: "NVIDIA GeForce RTX 3090".into(),
            util_pct: Some(87),
            mem_used: Some(20_401_094_656),
            mem_total: Some(25_769_803_776),
            temp_c: Some(71),
            power_mw: Some(312_456),
        };
        let s = to_sample(&busy);
        assert_eq!(s.util_pct, 87.0);
        assert_eq!(s.temp_c, Some(71.0));
        assert_eq!(s.power_w, Some(312.456));
        // Many data-centre and older cards do not report power or temperature.
        let bare = GpuReading {
            index: 1,
            name: "Tesla K80".into(),
            ..Default::default()
        };
        let s = to_sample(&bare);
        assert_eq!((s.util_pct, s.power_w, s.temp_c), (0.0, None, None));
    }

    #[test]
    fn a_host_without_the_driver_reports_unavailable() {
        // This machine has no NVIDIA driver: opening NVML must fail cleanly.
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return;
        }
        let err = GpuSource::open().unwrap_err();
        assert!(err.starts_with("NVML not available"), "{err}");
    }
}
