//! Listening sockets: `ss -Htlnp` / `ss -Hulnp` (iproute2), and BusyBox's
//! `netstat -tln[p]` / `netstat -uln[p]` where `ss` is missing.

use std::net::IpAddr;

use twinbay_proto::model::Port;

use crate::{ParseError, excerpt};

/// Splits `ADDR:PORT` as `ss` and `netstat` print it: `0.0.0.0:22`,
/// `[::]:22`, `*:5353`, `127.0.0.53%lo:53`, `[fe80::1%eth0]:546`, `:::22`.
/// Returns the address, whether it is IPv6, and the port.
fn endpoint(text: &str) -> Option<(String, bool, u16)> {
    let (addr, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let addr = addr.split_once('%').map_or(addr, |(a, _)| a);
    if addr == "*" {
        // ss: a wildcard socket of both families.
        return Some(("::".into(), true, port));
    }
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some((v4.to_string(), false, port)),
        IpAddr::V6(v6) => Some((v6.to_string(), true, port)),
    }
}

fn port(
    udp: bool,
    (address, v6, port): (String, bool, u16),
    process: Option<(String, Option<u32>)>,
) -> Port {
    let protocol = match (udp, v6) {
        (false, false) => "tcp",
        (false, true) => "tcp6",
        (true, false) => "udp",
        (true, true) => "udp6",
    };
    let (process, pid) = match process {
        Some((name, pid)) => (Some(name), pid),
        None => (None, None),
    };
    Port {
        protocol: protocol.into(),
        address: address.into(),
        port,
        process: process.map(Into::into),
        pid,
    }
}

/// The first process of `users:(("sshd",pid=412,fd=3),…)`.
fn ss_process(column: &str) -> Option<(String, Option<u32>)> {
    let rest = column.strip_prefix("users:((\"")?;
    let (name, rest) = rest.split_once('"')?;
    let pid = rest
        .split([',', ')'])
        .find_map(|f| f.strip_prefix("pid="))
        .and_then(|p| p.parse().ok());
    Some((name.to_string(), pid))
}

/// Parses `ss -Htlnp` (`udp: false`) or `ss -Hulnp` (`udp: true`):
/// `STATE RECV-Q SEND-Q LOCAL PEER [users:(…)]`, no header.
pub fn ss(text: &str, udp: bool) -> Result<Vec<Port>, ParseError> {
    let command = if udp { "ss -Hulnp" } else { "ss -Htlnp" };
    let mut ports = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            ParseError::new(
                command,
                format!("line {}: {why} in {}", i + 1, excerpt(line)),
            )
        };
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 5 {
            return Err(bad("too few columns"));
        }
        if !matches!(f[0], "LISTEN" | "UNCONN") {
            if f[0] == "State" || f[0] == "Netid" {
                continue; // a header, when -H was not honoured
            }
            return Err(bad("not a listening socket"));
        }
        let local = endpoint(f[3]).ok_or_else(|| bad("no ADDRESS:PORT"))?;
        // Process names may hold spaces: take the rest of the line.
        let process = line.find("users:((").and_then(|at| ss_process(&line[at..]));
        ports.push(port(udp, local, process));
    }
    Ok(ports)
}

/// Parses BusyBox's (or net-tools') `netstat -tln[p]` / `-uln[p]`:
/// two header lines, then `PROTO RECV-Q SEND-Q LOCAL FOREIGN [STATE] [PID/NAME]`.
pub fn netstat(text: &str, udp: bool) -> Result<Vec<Port>, ParseError> {
    let command = if udp { "netstat -uln" } else { "netstat -tln" };
    let mut lines = text.lines().enumerate();
    let header_ok = lines.by_ref().take(2).any(|(_, l)| l.starts_with("Proto"));
    if !header_ok {
        return Err(ParseError::new(
            command,
            format!("no `Proto` header in {}", excerpt(text)),
        ));
    }
    let mut ports = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            ParseError::new(
                command,
                format!("line {}: {why} in {}", i + 1, excerpt(line)),
            )
        };
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 5 {
            return Err(bad("too few columns"));
        }
        let proto_udp = f[0].starts_with("udp");
        if !(f[0].starts_with("tcp") || proto_udp) || proto_udp != udp {
            return Err(bad("unexpected protocol"));
        }
        let (address, v6, p) = endpoint(f[3]).ok_or_else(|| bad("no ADDRESS:PORT"))?;
        let mut rest = &f[5..];
        if !udp {
            if rest.first() != Some(&"LISTEN") {
                continue; // -l shows only listeners; anything else is not ours
            }
            rest = &rest[1..];
        }
        let process = rest.first().and_then(|c| {
            let (pid, name) = c.split_once('/')?;
            Some((name.to_string(), pid.parse().ok()))
        });
        // `tcp` with an IPv6 address is how some netstats print tcp6.
        ports.push(port(udp, (address, v6 || f[0].ends_with('6'), p), process));
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinbay_proto::model::Keyed;

    #[test]
    fn ss_recorded() {
        let tcp = ss(include_str!("../testdata/debian/ss_tcp"), false).unwrap();
        assert!(tcp.len() >= 5);
        let mqtt = tcp.iter().find(|p| p.port == 1883).unwrap();
        assert_eq!(
            (mqtt.protocol.as_str(), mqtt.address.as_str()),
            ("tcp", "127.0.0.1")
        );
        assert_eq!(mqtt.process.as_deref(), Some("mosquitto"));
        assert_eq!(mqtt.pid, Some(3003));
        let v6 = tcp.iter().find(|p| p.key() == "tcp6/::1:6379").unwrap();
        assert_eq!(v6.process.as_deref(), Some("redis-server"));

        let udp = ss(include_str!("../testdata/debian/ss_udp"), true).unwrap();
        let keys: Vec<_> = udp.iter().map(Keyed::key).collect();
        assert_eq!(
            keys,
            [
                "udp/127.0.0.54:53",
                "udp/127.0.0.53:53",
                "udp/0.0.0.0:68",
                "udp6/:::5353",
                "udp6/fe80::1:546"
            ]
        );
        assert_eq!(udp[3].process.as_deref(), Some("avahi-daemon"));
    }

    #[test]
    fn netstat_recorded() {
        let bb = netstat(include_str!("../testdata/busybox/netstat_tcp"), false).unwrap();
        assert!(
            bb.iter().all(|p| p.process.is_none()),
            "this BusyBox has no -p"
        );
        assert!(bb.iter().any(|p| p.port == 2024));
        let alpine = netstat(include_str!("../testdata/busybox/netstat_tcp_p"), false).unwrap();
        assert_eq!(alpine.len(), 4);
        assert_eq!(
            (alpine[0].process.as_deref(), alpine[0].pid),
            (Some("sshd"), Some(412))
        );
        assert_eq!(alpine[2].key(), "tcp6/:::22");
        assert_eq!(alpine[3].process, None, "`-` when the process is not ours");
        let ow = netstat(include_str!("../testdata/openwrt/netstat_tcp"), false).unwrap();
        assert_eq!(ow.len(), 7);
        assert_eq!(ow[2].process.as_deref(), Some("uhttpd"));
        let owu = netstat(include_str!("../testdata/openwrt/netstat_udp"), true).unwrap();
        assert_eq!(owu.len(), 4);
        assert_eq!(
            (owu[2].key().as_str(), owu[2].process.as_deref()),
            ("udp6/:::547", Some("odhcpd"))
        );
        assert!(netstat(include_str!("../testdata/busybox/netstat_udp"), true).is_ok());
    }

    #[test]
    fn garbage_and_truncated() {
        let e = ss("LISTEN 0 128", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ss -Htlnp: line 1: too few columns in \"LISTEN 0 128\""
        );
        assert!(ss("ESTAB 0 0 1.2.3.4:5 6.7.8.9:10", false).is_err());
        assert!(ss("LISTEN 0 0 nothere 0.0.0.0:*", false).is_err());
        assert_eq!(
            ss("", true).unwrap(),
            vec![],
            "no listeners is a valid answer"
        );
        assert!(netstat("netstat: invalid option -- 'p'\n", false).is_err());
        assert!(netstat(include_str!("../testdata/openwrt/netstat_udp"), false).is_err());
    }
}
