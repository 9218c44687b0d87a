//! `ip -j addr` and `ip -j -s link` (iproute2's JSON). BusyBox's `ip` has
//! no `-j`: there the collector reads `/proc/net/dev` instead
//! ([`crate::procfs::net_dev`]).

use serde::Deserialize;
use twinbay_proto::model::Interface;

use crate::procfs::NetCounters;
use crate::{ParseError, excerpt};

#[derive(Deserialize)]
struct Link {
    ifname: String,
    #[serde(default)]
    operstate: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    link_type: Option<String>,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
    #[serde(default)]
    stats64: Option<Stats64>,
}

#[derive(Deserialize)]
struct AddrInfo {
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: Option<u8>,
}

#[derive(Deserialize)]
struct Stats64 {
    rx: Dir,
    tx: Dir,
}

#[derive(Deserialize)]
struct Dir {
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    dropped: u64,
}

/// One interface from `ip -j addr`: the twin's [`Interface`] and its addresses (`10.0.0.2/24`).
#[derive(Debug, Clone, PartialEq)]
pub struct Addr {
    pub interface: Interface,
    pub addresses: Vec<String>,
}

fn links(command: &'static str, text: &str) -> Result<Vec<Link>, ParseError> {
    serde_json::from_str(text.trim()).map_err(|e| {
        ParseError::new(
            command,
            format!("not iproute2 JSON ({e}): {}", excerpt(text)),
        )
    })
}

/// Parses `ip -j addr`.
pub fn ip_addr(text: &str) -> Result<Vec<Addr>, ParseError> {
    Ok(links("ip -j addr", text)?
        .into_iter()
        .map(|l| {
            // `UNKNOWN` is what loopback and many virtual links say while
            // passing traffic: trust the `UP` flag then.
            let up = match l.operstate.as_deref() {
                Some("UP") => true,
                Some("UNKNOWN") | None => l.flags.iter().any(|f| f == "UP"),
                _ => false,
            };
            let mac = l
                .address
                .filter(|a| l.link_type.as_deref() != Some("loopback") && a != "00:00:00:00:00:00")
                .filter(|a| a.len() == 17);
            Addr {
                addresses: l
                    .addr_info
                    .iter()
                    .filter_map(|a| Some(format!("{}/{}", a.local.as_ref()?, a.prefixlen?)))
                    .collect(),
                interface: Interface {
                    name: l.ifname,
                    mac,
                    up,
                    speed_mbps: None,
                    duplex: None,
                    mtu: l.mtu,
                },
            }
        })
        .collect())
}

/// Parses `ip -j -s link`: each interface's counters.
pub fn ip_link_stats(text: &str) -> Result<Vec<(String, NetCounters)>, ParseError> {
    links("ip -j -s link", text)?
        .into_iter()
        .map(|l| {
            let s = l.stats64.ok_or_else(|| {
                ParseError::new(
                    "ip -j -s link",
                    format!("{} has no stats64 (was -s given?)", l.ifname),
                )
            })?;
            Ok((
                l.ifname,
                NetCounters {
                    rx_bytes: s.rx.bytes,
                    rx_errors: s.rx.errors,
                    rx_drops: s.rx.dropped,
                    tx_bytes: s.tx.bytes,
                    tx_errors: s.tx.errors,
                    tx_drops: s.tx.dropped,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_debian() {
        let addrs = ip_addr(include_str!("../testdata/debian/ip_addr.json")).unwrap();
        let lo = addrs.iter().find(|a| a.interface.name == "lo").unwrap();
        assert!(lo.interface.up, "loopback says UNKNOWN but is UP");
        assert_eq!(lo.interface.mac, None);
        assert_eq!(lo.addresses, ["127.0.0.1/8", "::1/128"]);
        let ifb0 = addrs.iter().find(|a| a.interface.name == "ifb0").unwrap();
        assert!(!ifb0.interface.up);
        assert_eq!(ifb0.interface.mac.as_deref(), Some("7a:bc:2f:f7:b5:04"));
        let stats = ip_link_stats(include_str!("../testdata/debian/ip_link.json")).unwrap();
        assert_eq!(stats.len(), addrs.len());
        assert!(stats.iter().any(|(n, c)| n == "lo" && c.rx_bytes > 0));
    }

    #[test]
    fn garbage_and_truncated() {
        let text = include_str!("../testdata/debian/ip_addr.json");
        let e = ip_addr(&text[..text.len() / 2]).unwrap_err();
        assert!(
            e.to_string().starts_with("ip -j addr: not iproute2 JSON"),
            "{e}"
        );
        // BusyBox: `ip: invalid option -- 'j'` on stderr, nothing on stdout.
        assert!(ip_addr("").is_err());
        let e = ip_link_stats(include_str!("../testdata/debian/ip_addr.json")).unwrap_err();
        assert!(e.reason.contains("no stats64"), "{e}");
    }
}
