//! Listening TCP and UDP sockets with their processes, from `/proc/net/*`.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use twinbay_proto::model::Port;

/// A listening socket from one line of `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub address: String,
    pub port: u16,
    pub inode: u64,
}

const TCP_LISTEN: &str = "0A";
const UDP_UNCONNECTED: &str = "07";

/// Parses a `/proc/net/*` table, keeping listening sockets (TCP `LISTEN`, UDP unconnected).
pub fn parse_proc_net(text: &str, udp: bool) -> Vec<Socket> {
    let listening = if udp { UDP_UNCONNECTED } else { TCP_LISTEN };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != listening {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            Some(Socket {
                address: decode_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints addresses as native-endian 32-bit words in hex.
fn decode_addr(hex: &str) -> Option<String> {
    let word = |i: usize| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok();
    match hex.len() {
        8 => Some(Ipv4Addr::from(word(0)?.to_le_bytes()).to_string()),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_le_bytes());
            }
            Some(Ipv6Addr::from(bytes).to_string())
        }
        _ => None,
    }
}

/// The inode of a socket from a `/proc/PID/fd/N` link target (`socket:[12345]`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[derive(Debug)]
pub struct PortSource {
    root: PathBuf,
    /// Socket inode → (pid, process name); rebuilt only when a listening
    /// socket's owner is not known yet (walking every fd is the costly part).
    owners: HashMap<u64, (u32, String)>,
    /// Listening sockets whose owner the last walk did not find (another
    /// user's processes, to a rootless agent): not a reason to walk again.
    unowned: HashSet<u64>,
}

impl PortSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PortSource {
            root: root.into(),
            owners: HashMap::new(),
            unowned: HashSet::new(),
        }
    }

    pub fn sample(&mut self) -> std::io::Result<Vec<Port>> {
        let mut sockets = Vec::new();
        for (file, protocol, udp) in [
            ("tcp", "tcp", false),
            ("tcp6", "tcp6", false),
            ("udp", "udp", true),
            ("udp6", "udp6", true),
        ] {
            // A kernel without IPv6 has no tcp6: not an error.
            if let Ok(text) = std::fs::read_to_string(self.root.join("proc/net").join(file)) {
                sockets.extend(
                    parse_proc_net(&text, udp)
                        .into_iter()
                        .map(|s| (protocol, s)),
                );
            }
        }
        if sockets
            .iter()
            .any(|(_, s)| !self.owners.contains_key(&s.inode) && !self.unowned.contains(&s.inode))
        {
            let wanted: HashSet<u64> = sockets.iter().map(|(_, s)| s.inode).collect();
            self.owners = self.scan_owners(&wanted);
            self.unowned = sockets
                .iter()
                .map(|(_, s)| s.inode)
                .filter(|i| !self.owners.contains_key(i))
                .collect();
        }
        let mut ports: Vec<Port> = sockets
            .into_iter()
            .map(|(protocol, s)| {
                let owner = self.owners.get(&s.inode);
                Port {
                    protocol: protocol.into(),
                    address: s.address.into(),
                    port: s.port,
                    pid: owner.map(|o| o.0),
                    process: owner.map(|o| o.1.as_str().into()),
                }
            })
            .collect();
        ports.dedup_by(|a, b| {
            a.protocol == b.protocol && a.address == b.address && a.port == b.port
        });
        Ok(ports)
    }

    /// Walks `/proc/*/fd` for the links to `wanted` sockets. Processes of
    /// other users are not readable to a rootless agent; their sockets show
    /// without a process.
    fn scan_owners(&self, wanted: &HashSet<u64>) -> HashMap<u64, (u32, String)> {
        let mut owners = HashMap::new();
        let Ok(procs) = super::pid_dirs(&self.root) else {
            return owners;
        };
        for (pid, entry) in procs {
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            let mut name = None;
            for fd in fds.flatten() {
                let Some(inode) = std::fs::read_link(fd.path())
                    .ok()
                    .and_then(|l| socket_inode(l.to_str()?))
                    .filter(|i| wanted.contains(i))
                else {
                    continue;
                };
                let name = name.get_or_insert_with(|| {
                    std::fs::read_to_string(entry.path().join("comm"))
                        .map(|c| c.trim().to_string())
                        .unwrap_or_default()
                });
                owners.insert(inode, (pid, name.clone()));
            }
        }
        owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_tables_for_both_families() {
        let tcp = include_str!("testdata/proc_net_tcp");
        let listening = parse_proc_net(tcp, false);
        assert_eq!(
            listening,
            [
                Socket {
                    address: "127.0.0.1".into(),
                    port: 5432,
                    inode: 21974
                },
                Socket {
                    address: "0.0.0.0".into(),
                    port: 22,
                    inode: 19812
                },
            ]
        );
        let tcp6 = include_str!("testdata/proc_net_tcp6");
        let listening6 = parse_proc_net(tcp6, false);
        assert_eq!(listening6[0].address, "::");
        assert_eq!(listening6[0].port, 22);
        assert_eq!(listening6[1].address, "::1");
        assert_eq!(listening6[1].port, 631);
        let udp = include_str!("testdata/proc_net_udp");
        let bound = parse_proc_net(udp, true);
        assert_eq!(
            bound,
            [Socket {
                address: "0.0.0.0".into(),
                port: 68,
                inode: 17020
            }]
        );
    }

    #[test]
    fn reads_socket_inodes_from_fd_links() {
        assert_eq!(socket_inode("socket:[21974]"), Some(21974));
        assert_eq!(socket_inode("pipe:[21974]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn a_listener_appears_with_this_process_and_goes_away() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut source = PortSource::new("/");
        let ports = source.sample().unwrap();
        let mine = ports
            .iter()
            .find(|p| p.port == port && p.protocol == "tcp")
            .expect("our listener is seen");
        assert_eq!(mine.pid, Some(std::process::id()));
        assert_eq!(mine.address, "127.0.0.1");
        drop(listener);
        assert!(
            !source
                .sample()
                .unwrap()
                .iter()
                .any(|p| p.port == port && p.protocol == "tcp")
        );
    }
}
