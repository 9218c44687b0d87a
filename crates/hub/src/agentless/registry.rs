//! The commands run on an agentless host: a static table. Nothing else is
//! ever run there — the API cannot add a command, and the only arguments
//! that are not in this table are watched file paths, each one argv element
//! (the transport quotes them; `--` keeps them from being options).
//!
//! A command has variants, tried in order: a variant whose program is not
//! on the host (`requires`, found by `command -v` once per host and cached)
//! is skipped, and one that fails or prints what its parser cannot read
//! gives way to the next (BusyBox's `ip` has no `-j`: `/proc/net/dev` then).
//! The variant that worked is remembered per host.

use std::time::Duration;

use twinbay_collect::{ParseError, containers, df, files, ip, procfs, sockets, systemd, uname};
use twinbay_proto::model::{Container, Port, Unit, WatchedFile};

/// What a command's parsed output is.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Uname(uname::Uname),
    Os(String),
    Stat(procfs::Stat),
    Mem(procfs::MemInfo),
    Load([f32; 3]),
    Uptime(u64),
    Df(Vec<df::DfRow>),
    Addrs(Vec<ip::Addr>),
    Counters(Vec<(String, procfs::NetCounters)>),
    Ports(Vec<Port>),
    Units(Vec<Unit>),
    Containers(Vec<Container>),
    Files(Vec<WatchedFile>),
}

/// Which part of the twin a command feeds (also the source's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Host,
    Cpu,
    Memory,
    Disks,
    Net,
    Ports,
    Units,
    Containers,
    Files,
}

impl Part {
    pub fn source(self) -> &'static str {
        match self {
            Part::Host => "host",
            Part::Cpu => "cpu",
            Part::Memory => "memory",
            Part::Disks => "disks",
            Part::Net => "net",
            Part::Ports => "ports",
            Part::Units => "units",
            Part::Containers => "containers",
            Part::Files => "files",
        }
    }
}

pub type Parser = fn(&str) -> Result<Parsed, ParseError>;

/// One way to run a command.
#[derive(Debug)]
pub struct Variant {
    pub argv: &'static [&'static str],
    /// A program that must be on the host (`command -v`), if not `argv[0]`'s
    /// presence is taken for granted (`cat`, `df`, `uname`: POSIX).
    pub requires: Option<&'static str>,
    pub parse: Parser,
    /// The command prints what it can and exits non-zero for the rest
    /// (`stat` of a missing file): its stdout still counts.
    pub partial_ok: bool,
}

/// One entry of the registry.
#[derive(Debug)]
pub struct Command {
    pub name: &'static str,
    pub part: Part,
    pub timeout: Duration,
    /// Its result is reused this long (whatever asks); at least the
    /// collection interval in practice, since runs are that far apart.
    pub ttl: Duration,
    pub variants: &'static [Variant],
    /// Without it the host has no such part (containers on a router): not
    /// an error, the source says "not present".
    pub optional: bool,
}

/// The most output a command may print; more is an error (a host answering
/// with megabytes is broken or hostile).
pub const MAX_OUTPUT: usize = 4 << 20;

/// How long "where present" answers are kept per host.
pub const PRESENCE_TTL: Duration = Duration::from_secs(600);

const FAST: Duration = Duration::from_secs(10);
const SLOW: Duration = Duration::from_secs(20);
const EVERY_RUN: Duration = Duration::ZERO;
const TEN_MINUTES: Duration = Duration::from_secs(600);

fn v(argv: &'static [&'static str], requires: Option<&'static str>, parse: Parser) -> Variant {
    Variant {
        argv,
        requires,
        parse,
        partial_ok: false,
    }
}

macro_rules! parser {
    ($f:expr, $wrap:path) => {
        |t: &str| $f(t).map($wrap)
    };
}

/// The registry. Argument vectors only; no shell strings.
pub fn commands() -> &'static [Command] {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<Command>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let leak = |v: Vec<Variant>| -> &'static [Variant] { Vec::leak(v) };
        vec![
            Command {
                name: "uname",
                part: Part::Host,
                timeout: FAST,
                ttl: TEN_MINUTES,
                variants: leak(vec![v(
                    &["uname", "-a"],
                    None,
                    parser!(uname::uname_a, Parsed::Uname),
                )]),
                optional: false,
            },
            Command {
                name: "os-release",
                part: Part::Host,
                timeout: FAST,
                ttl: TEN_MINUTES,
                variants: leak(vec![
                    v(&["cat", "/etc/os-release"], None, |t| {
                        Ok(Parsed::Os(procfs::parse_os_release(t)))
                    }),
                    v(&["cat", "/usr/lib/os-release"], None, |t| {
                        Ok(Parsed::Os(procfs::parse_os_release(t)))
                    }),
                ]),
                optional: true,
            },
            Command {
                name: "stat",
                part: Part::Cpu,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![v(
                    &["cat", "/proc/stat"],
                    None,
                    parser!(procfs::stat, Parsed::Stat),
                )]),
                optional: false,
            },
            Command {
                name: "loadavg",
                part: Part::Cpu,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![v(
                    &["cat", "/proc/loadavg"],
                    None,
                    parser!(procfs::loadavg, Parsed::Load),
                )]),
                optional: false,
            },
            Command {
                name: "uptime",
                part: Part::Host,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![v(
                    &["cat", "/proc/uptime"],
                    None,
                    parser!(procfs::uptime, Parsed::Uptime),
                )]),
                optional: false,
            },
            Command {
                name: "meminfo",
                part: Part::Memory,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![v(
                    &["cat", "/proc/meminfo"],
                    None,
                    parser!(procfs::meminfo, Parsed::Mem),
                )]),
                optional: false,
            },
            Command {
                name: "df",
                part: Part::Disks,
                timeout: SLOW,
                ttl: EVERY_RUN,
                // GNU df exits 1 when one mount (a dead NFS share, a
                // permission) fails but prints the rest.
                variants: leak(vec![Variant {
                    partial_ok: true,
                    ..v(&["df", "-P"], None, parser!(df::df_p, Parsed::Df))
                }]),
                optional: false,
            },
            Command {
                name: "ip-addr",
                part: Part::Net,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![v(
                    &["ip", "-j", "addr"],
                    Some("ip"),
                    parser!(ip::ip_addr, Parsed::Addrs),
                )]),
                optional: true,
            },
            Command {
                name: "net-counters",
                part: Part::Net,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![
                    v(
                        &["ip", "-j", "-s", "link"],
                        Some("ip"),
                        parser!(ip::ip_link_stats, Parsed::Counters),
                    ),
                    v(
                        &["cat", "/proc/net/dev"],
                        None,
                        parser!(procfs::net_dev, Parsed::Counters),
                    ),
                ]),
                optional: false,
            },
            Command {
                name: "tcp-listeners",
                part: Part::Ports,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![
                    v(&["ss", "-Htlnp"], Some("ss"), |t| {
                        sockets::ss(t, false).map(Parsed::Ports)
                    }),
                    v(&["netstat", "-tlnp"], Some("netstat"), |t| {
                        sockets::netstat(t, false).map(Parsed::Ports)
                    }),
                    v(&["netstat", "-tln"], Some("netstat"), |t| {
                        sockets::netstat(t, false).map(Parsed::Ports)
                    }),
                ]),
                optional: false,
            },
            Command {
                name: "udp-listeners",
                part: Part::Ports,
                timeout: FAST,
                ttl: EVERY_RUN,
                variants: leak(vec![
                    v(&["ss", "-Hulnp"], Some("ss"), |t| {
                        sockets::ss(t, true).map(Parsed::Ports)
                    }),
                    v(&["netstat", "-ulnp"], Some("netstat"), |t| {
                        sockets::netstat(t, true).map(Parsed::Ports)
                    }),
                    v(&["netstat", "-uln"], Some("netstat"), |t| {
                        sockets::netstat(t, true).map(Parsed::Ports)
                    }),
                ]),
                optional: false,
            },
            Command {
                name: "units",
                part: Part::Units,
                timeout: SLOW,
                ttl: EVERY_RUN,
                variants: leak(vec![
                    v(
                        &["systemctl", "list-units", "--output=json", "--no-pager"],
                        Some("systemctl"),
                        parser!(systemd::list_units_json, Parsed::Units),
                    ),
                    v(
                        &[
                            "systemctl",
                            "list-units",
                            "--no-legend",
                            "--plain",
                            "--no-pager",
                        ],
                        Some("systemctl"),
                        parser!(systemd::list_units_text, Parsed::Units),
                    ),
                ]),
                optional: true,
            },
            Command {
                name: "containers",
                part: Part::Containers,
                timeout: SLOW,
                ttl: EVERY_RUN,
                variants: leak(vec![
                    v(
                        &["podman", "ps", "-a", "--format", "json"],
                        Some("podman"),
                        parser!(containers::podman_ps, Parsed::Containers),
                    ),
                    v(
                        &["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"],
                        Some("docker"),
                        parser!(containers::docker_ps, Parsed::Containers),
                    ),
                ]),
                optional: true,
            },
        ]
    })
}

/// `stat` and `sha256sum` of the watched files: the registry's only
/// commands with arguments from configuration (each path one argv element).
pub fn file_commands(paths: &[String]) -> [Vec<String>; 2] {
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .map(|s| s.to_string())
            .chain(std::iter::once("--".to_string()))
            .chain(paths.iter().cloned())
            .collect()
    };
    [
        with(&["stat", "-c", files::STAT_FORMAT]),
        with(&["sha256sum"]),
    ]
}

/// The argv that asks whether `program` is on the host: `sh -c 'command -v "$0"' PROGRAM`
/// (the program is an argument, never part of the script).
pub fn presence_probe(program: &str) -> Vec<String> {
    ["sh", "-c", "command -v \"$0\" >/dev/null", program]
        .map(String::from)
        .to_vec()
}

/// What an agent reports that this registry cannot.
pub const WITHOUT_AGENT: &[&str] = &[
    "processes",
    "temperatures",
    "gpus",
    "disk health (SMART)",
    "disk I/O rates",
    "proxy routes",
    "file contents and diffs",
    "live container and unit events (polled instead)",
    "commands",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sane() {
        let mut names = std::collections::HashSet::new();
        for c in commands() {
            assert!(names.insert(c.name), "duplicate {}", c.name);
            assert!(!c.variants.is_empty());
            assert!(c.timeout >= Duration::from_secs(1));
            for v in c.variants {
                assert!(!v.argv.is_empty());
                // No shell anywhere in the table: argv only.
                assert!(!["sh", "bash", "ash"].contains(&v.argv[0]), "{}", c.name);
                assert!(
                    v.argv
                        .iter()
                        .all(|a| !a.contains(';') && !a.contains('|') && !a.contains('`'))
                );
            }
        }
        let [stat, sum] = file_commands(&["/etc/my file; rm -rf /".into()]);
        assert_eq!(
            stat.last().unwrap(),
            "/etc/my file; rm -rf /",
            "one element, quoted by the transport"
        );
        assert_eq!(sum, ["sha256sum", "--", "/etc/my file; rm -rf /"]);
        assert_eq!(presence_probe("podman")[3], "podman");
    }
}
