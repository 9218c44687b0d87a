//! No parser panics on any input, and the parts that round-trip do.

use proptest::prelude::*;

use crate::*;

fn all(text: &str) {
    let _ = procfs::stat(text);
    let _ = procfs::meminfo(text);
    let _ = procfs::loadavg(text);
    let _ = procfs::uptime(text);
    let _ = procfs::net_dev(text);
    let _ = procfs::parse_os_release(text);
    let _ = procfs::parse_cpuinfo_mhz(text);
    let _ = procfs::parse_arc_shrinkable(text);
    let _ = uname::uname_a(text);
    let _ = uname::uname_m(text);
    let _ = df::df_p(text);
    let _ = ip::ip_addr(text);
    let _ = ip::ip_link_stats(text);
    let _ = sockets::ss(text, false);
    let _ = sockets::ss(text, true);
    let _ = sockets::netstat(text, false);
    let _ = sockets::netstat(text, true);
    let _ = systemd::list_units_json(text);
    let _ = systemd::list_units_text(text);
    let _ = containers::podman_ps(text);
    let _ = containers::docker_ps(text);
    let _ = files::stat(text);
    let _ = files::sha256sum(text);
}

const RECORDED: &[&str] = &[
    include_str!("../testdata/debian/df_p"),
    include_str!("../testdata/debian/ss_tcp"),
    include_str!("../testdata/debian/ss_udp"),
    include_str!("../testdata/debian/stat"),
    include_str!("../testdata/debian/meminfo"),
    include_str!("../testdata/debian/ip_addr.json"),
    include_str!("../testdata/debian/ip_link.json"),
    include_str!("../testdata/debian/systemctl.json"),
    include_str!("../testdata/debian/systemctl_legend"),
    include_str!("../testdata/debian/podman_ps.json"),
    include_str!("../testdata/debian/docker_ps.jsonl"),
    include_str!("../testdata/debian/stat_files"),
    include_str!("../testdata/openwrt/netstat_tcp"),
    include_str!("../testdata/openwrt/net_dev"),
    include_str!("../testdata/openwrt/uname_a"),
];

proptest! {
    #[test]
    fn nothing_panics_on_any_text(text in "\\PC{0,400}") {
        all(&text);
    }

    #[test]
    fn nothing_panics_on_line_noise(lines in proptest::collection::vec("[ -~]{0,80}", 0..12)) {
        all(&lines.join("\n"));
    }

    #[test]
    fn nothing_panics_on_cut_or_mangled_recordings(
        which in 0..RECORDED.len(),
        cut in 0.0f64..1.0,
        flip in proptest::option::of((0.0f64..1.0, any::<char>())),
    ) {
        let text = RECORDED[which];
        let mut at = (text.len() as f64 * cut) as usize;
        while !text.is_char_boundary(at) { at -= 1; }
        let mut t = text[..at].to_string();
        if let Some((pos, c)) = flip {
            let mut p = (t.len() as f64 * pos) as usize;
            while !t.is_char_boundary(p) { p -= 1; }
            t.insert(p, c);
        }
        all(&t);
    }

    #[test]
    fn df_rows_round_trip(rows in proptest::collection::vec(
        ("/dev/[a-z]{1,8}", "(/[a-z0-9 ]{1,10}){1,3}", 0u64..1u64<<40, 0u64..1u64<<40, 0u64..1u64<<40),
        0..8,
    )) {
        let mut text = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n".to_string();
        for (dev, mount, total, used, avail) in &rows {
            text += &format!("{dev} {total} {used} {avail} 7% {}\n", mount.trim_end());
        }
        let parsed = df::df_p(&text).unwrap();
        prop_assert_eq!(parsed.len(), rows.len());
        for (p, (dev, mount, total, used, avail)) in parsed.iter().zip(&rows) {
            prop_assert_eq!(&p.device, dev);
            prop_assert_eq!(p.mount.as_str(), mount.trim_end());
            prop_assert_eq!((p.total, p.used, p.available), (total * 1024, used * 1024, avail * 1024));
        }
    }

    #[test]
    fn ss_endpoints_round_trip(v4 in any::<std::net::Ipv4Addr>(), v6 in any::<std::net::Ipv6Addr>(), port in any::<u16>(), pid in any::<u32>()) {
        let text = format!(
            "LISTEN 0 128 {v4}:{port} 0.0.0.0:* users:((\"a b\",pid={pid},fd=3))\nLISTEN 0 128 [{v6}]:{port} [::]:*\n"
        );
        let p = sockets::ss(&text, false).unwrap();
        prop_assert_eq!(&p[0].address, &v4.to_string());
        prop_assert_eq!(p[0].port, port);
        prop_assert_eq!(p[0].pid, Some(pid));
        prop_assert_eq!(&p[1].address, &v6.to_string());
        prop_assert_eq!(p[1].protocol.as_str(), "tcp6");
    }

    #[test]
    fn meminfo_round_trips(total in 1u64..1<<50, avail in 0u64..1<<50) {
        let m = procfs::meminfo(&format!("MemTotal: {total} kB\nMemAvailable: {avail} kB\n")).unwrap();
        prop_assert_eq!(m.total, total * 1024);
        prop_assert_eq!(m.available, avail.min(total) * 1024);
    }
}
