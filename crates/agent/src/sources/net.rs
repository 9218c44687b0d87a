//! Network interfaces: counters from `/proc/net/dev`, link facts from `/sys/class/net`.

use std::collections::HashMap;
use std::path::PathBuf;
use twinbay_proto::Str;

use twinbay_proto::model::{Interface, NetSample};

pub use twinbay_collect::procfs::{NetCounters, is_interesting, parse_net_dev};

/// Link facts from the files in `/sys/class/net/IFACE/` (given as their contents).
pub fn interface_from_sys(
    name: &str,
    operstate: Option<&str>,
    speed: Option<&str>,
    duplex: Option<&str>,
    address: Option<&str>,
    mtu: Option<&str>,
) -> Interface {
    fn trimmed(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    Interface {
        name: name.to_string(),
        up: trimmed(operstate) == Some("up"),
        // Down links and virtual devices report -1 or refuse to answer.
        speed_mbps: trimmed(speed)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .map(|v| v as u32),
        duplex: trimmed(duplex)
            .filter(|d| *d == "full" || *d == "half")
            .map(Str::from),
        mac: trimmed(address)
            .filter(|a| *a != "00:00:00:00:00:00")
            .map(String::from),
        mtu: trimmed(mtu).and_then(|v| v.parse().ok()),
    }
}

#[derive(Debug)]
pub struct NetSource {
    root: PathBuf,
    prev: HashMap<String, NetCounters>,
    prev_ms: i64,
}

impl NetSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NetSource {
            root: root.into(),
            prev: HashMap::new(),
            prev_ms: 0,
        }
    }

    fn sys(&self, iface: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join("sys/class/net").join(iface).join(file)).ok()
    }

    pub fn sample(&mut self, now_ms: i64) -> std::io::Result<(Vec<Interface>, Vec<NetSample>)> {
        let text = std::fs::read_to_string(self.root.join("proc/net/dev"))?;
        let secs = (now_ms - self.prev_ms) as f64 / 1000.0;
        let mut interfaces = Vec::new();
        let mut samples = Vec::new();
        let mut next = HashMap::new();
        for (name, now) in parse_net_dev(&text)
            .into_iter()
            .filter(|(n, _)| is_interesting(n))
        {
            let rate = |cur: u64, prev: u64| match cur.checked_sub(prev) {
                Some(delta) if secs > 0.0 => delta as f64 / secs,
                // A new interface or a counter reset: no rate this time.
                _ => 0.0,
            };
            let (rx_bps, tx_bps) = match self.prev.get(&name) {
                Some(prev) => (
                    rate(now.rx_bytes, prev.rx_bytes),
                    rate(now.tx_bytes, prev.tx_bytes),
                ),
                None => (0.0, 0.0),
            };
            interfaces.push(interface_from_sys(
                &name,
                self.sys(&name, "operstate").as_deref(),
                self.sys(&name, "speed").as_deref(),
                self.sys(&name, "duplex").as_deref(),
                self.sys(&name, "address").as_deref(),
                self.sys(&name, "mtu").as_deref(),
            ));
            samples.push(NetSample {
                iface: name.clone(),
                rx_bps,
                tx_bps,
                rx_errors: now.rx_errors,
                tx_errors: now.tx_errors,
                rx_drops: now.rx_drops,
                tx_drops: now.tx_drops,
            });
            next.insert(name, now);
        }
        // Interfaces that went away are forgotten, so a returning one starts fresh.
        self.prev = next;
        self.prev_ms = now_ms;
        Ok((interfaces, samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_facts_tolerate_down_and_virtual_links() {
        let up = interface_from_sys(
            "eth0",
            Some("up\n"),
            Some("1000\n"),
            Some("full\n"),
            Some("52:54:00:12:34:56\n"),
            Some("1500\n"),
        );
        assert!(up.up);
        assert_eq!(up.speed_mbps, Some(1000));
        assert_eq!(up.duplex.as_deref(), Some("full"));
        assert_eq!(up.mtu, Some(1500));
        let down = interface_from_sys(
            "eth1",
            Some("down\n"),
            Some("-1\n"),
            Some("unknown\n"),
            None,
            None,
        );
        assert!(!down.up);
        assert_eq!(down.speed_mbps, None);
        assert_eq!(down.duplex, None);
    }

    #[test]
    fn an_interface_that_comes_and_goes_starts_fresh() {
        let dir = std::env::temp_dir().join(format!("twinbay-net-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc/net")).unwrap();
        let write = |text: &str| std::fs::write(dir.join("proc/net/dev"), text).unwrap();
        let line = |name: &str, rx: u64| format!("{name}: {rx} 0 0 0 0 0 0 0 {rx} 0 0 0 0 0 0 0\n");
        let mut source = NetSource::new(&dir);

        write(&(line("eth0", 1000) + &line("usb0", 50)));
        source.sample(1_000).unwrap();
        write(&(line("eth0", 3000)));
        let (ifaces, samples) = source.sample(2_000).unwrap();
        assert_eq!(ifaces.len(), 1, "usb0 went away");
        assert_eq!(samples[0].rx_bps, 2000.0);
        write(&(line("eth0", 4000) + &line("usb0", 90_000)));
        let (_, samples) = source.sample(3_000).unwrap();
        let usb = samples.iter().find(|s| s.iface == "usb0").unwrap();
        assert_eq!(
            usb.rx_bps, 0.0,
            "a returning interface has no rate until its second sample"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
