use super::*;

const STAT: &str = include_str!("../../testdata/debian/stat_agent");
const MEMINFO: &str = include_str!("../../testdata/debian/meminfo_agent");

#[test]
fn parses_a_recorded_proc_stat() {
    let s = parse_stat(STAT).unwrap();
    assert_eq!(s.cores, 2);
    assert_eq!(s.boot_time, 1062191376);
    // total = 2255+34+2290+22625563+6290+127+456+0; idle = 22625563+6290
    assert_eq!(s.cpu.total, 22637015);
    assert_eq!(s.cpu.busy, 22637015 - 22625563 - 6290);
    assert_eq!(s.per_core.len(), 2);
    assert_eq!(s.per_core[1].total, 1123 + 849 + 11313845 + 2614 + 18);
}

#[test]
fn parses_stat_of_every_recorded_system() {
    for (text, cores) in [
        (include_str!("../../testdata/debian/stat"), None),
        (include_str!("../../testdata/openwrt/stat"), Some(4)),
    ] {
        let s = stat(text).unwrap();
        assert!(s.cpu.total > 0 && s.cpu.busy < s.cpu.total);
        assert!(s.boot_time > 1_000_000_000);
        if let Some(cores) = cores {
            assert_eq!(s.cores, cores);
        }
    }
    let e = stat("intr 1 2 3\n").unwrap_err();
    assert_eq!(e.command, "/proc/stat");
    assert!(e.to_string().contains("no complete `cpu` line"), "{e}");
    assert!(stat("cpu  12 0").is_err(), "a truncated cpu line");
}

#[test]
fn parses_cpu_frequency_and_zfs_arc() {
    let cpuinfo = "processor\t: 0\ncpu MHz\t\t: 2000.000\nprocessor\t: 1\ncpu MHz\t\t: 3000.500\n";
    assert_eq!(parse_cpuinfo_mhz(cpuinfo), Some(2500.25));
    assert_eq!(parse_cpuinfo_mhz("processor : 0\nBogoMIPS : 48.00\n"), None);
    let arcstats = include_str!("../../testdata/debian/arcstats");
    assert_eq!(
        parse_arc_shrinkable(arcstats),
        Some(4294967296 - 1073741824)
    );
    assert_eq!(parse_arc_shrinkable("nothing here"), None);
}

#[test]
fn cpu_percent_is_busy_share_of_elapsed_ticks() {
    let prev = CpuTimes {
        busy: 100,
        total: 1000,
    };
    let now = CpuTimes {
        busy: 150,
        total: 1200,
    };
    assert_eq!(cpu_percent(prev, now), 25.0);
    // Counters that went backwards (a reset) never give nonsense.
    assert_eq!(cpu_percent(now, prev), 0.0);
    assert_eq!(cpu_percent(prev, prev), 0.0);
}

#[test]
fn parses_meminfo_and_falls_back_without_memavailable() {
    let m = parse_meminfo(MEMINFO).unwrap();
    assert_eq!(m.total, 16283912 * 1024);
    assert_eq!(m.available, 13015372 * 1024);
    assert_eq!(m.swap_total - m.swap_free, (2097148 - 1572860) * 1024);

    let old: String = MEMINFO
        .lines()
        .filter(|l| !l.starts_with("MemAvailable"))
        .collect::<Vec<_>>()
        .join("\n");
    let m = parse_meminfo(&old).unwrap();
    assert_eq!(m.available, (9172620 + 254900 + 3560968 + 318708) * 1024);

    assert_eq!(parse_meminfo("garbage"), None);
    let openwrt = meminfo(include_str!("../../testdata/openwrt/meminfo")).unwrap();
    assert_eq!(openwrt.total, 244880 * 1024);
    assert_eq!(openwrt.available, 150572 * 1024);
    assert!(meminfo(include_str!("../../testdata/debian/meminfo")).is_ok());
    let e = meminfo("MemFree: 12 kB\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/proc/meminfo: no MemTotal line in \"MemFree: 12 kB\""
    );
}

#[test]
fn parses_loadavg_uptime_and_os_release() {
    assert_eq!(
        parse_loadavg("0.52 0.58 0.59 1/389 12345\n"),
        Some([0.52, 0.58, 0.59])
    );
    assert_eq!(parse_loadavg("0.52"), None);
    assert_eq!(parse_loadavg("NaN 1 1"), None);
    assert_eq!(
        loadavg(include_str!("../../testdata/openwrt/loadavg")).unwrap(),
        [0.08, 0.05, 0.01]
    );
    assert!(loadavg(include_str!("../../testdata/debian/loadavg")).is_ok());
    assert!(
        loadavg("")
            .unwrap_err()
            .to_string()
            .contains("empty output")
    );
    assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735));
    assert_eq!(
        uptime(include_str!("../../testdata/openwrt/uptime")).unwrap(),
        1209715
    );
    assert!(uptime("up 3 days").is_err());
    assert_eq!(
        parse_os_release(
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
        ),
        "Debian GNU/Linux 12 (bookworm)"
    );
    assert_eq!(
        parse_os_release("NAME=Alpine\nVERSION_ID=3.20\n"),
        "Alpine 3.20"
    );
    assert_eq!(
        parse_os_release(include_str!("../../testdata/busybox/os_release")),
        "Alpine Linux v3.20"
    );
    assert_eq!(
        parse_os_release(include_str!("../../testdata/openwrt/os_release")),
        "OpenWrt 23.05.3"
    );
    assert_eq!(parse_os_release(""), "Linux");
}

#[test]
fn parses_net_dev_counters() {
    let all = parse_net_dev(include_str!("../../testdata/debian/net_dev_agent"));
    assert_eq!(all.len(), 4);
    let eth0 = &all.iter().find(|(n, _)| n == "eth0").unwrap().1;
    assert_eq!(eth0.rx_bytes, 1_897_315_287);
    assert_eq!(eth0.rx_errors, 3);
    assert_eq!(eth0.tx_drops, 7);
    let kept: Vec<_> = all
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| is_interesting(n))
        .collect();
    assert_eq!(kept, ["eth0", "wlan0"]);

    let openwrt = net_dev(include_str!("../../testdata/openwrt/net_dev")).unwrap();
    let names: Vec<_> = openwrt.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["lo", "eth0", "br-lan", "lan1", "wan", "phy0-ap0"]);
    assert_eq!(openwrt[4].1.rx_drops, 3);
    assert!(net_dev(include_str!("../../testdata/debian/net_dev")).is_ok());
    assert!(net_dev("eth0: 1 2 3").is_err());
}
