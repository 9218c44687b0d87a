use super::*;

const STAT: &str = include_str!("testdata/stat");
const MEMINFO: &str = include_str!("testdata/meminfo");

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
fn parses_cpu_frequency_and_zfs_arc() {
    let cpuinfo = "processor\t: 0\ncpu MHz\t\t: 2000.000\nprocessor\t: 1\ncpu MHz\t\t: 3000.500\n";
    assert_eq!(parse_cpuinfo_mhz(cpuinfo), Some(2500.25));
    assert_eq!(parse_cpuinfo_mhz("processor : 0\nBogoMIPS : 48.00\n"), None);
    let arcstats = include_str!("testdata/arcstats");
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
}

#[test]
fn parses_loadavg_uptime_and_os_release() {
    assert_eq!(
        parse_loadavg("0.52 0.58 0.59 1/389 12345\n"),
        Some([0.52, 0.58, 0.59])
    );
    assert_eq!(parse_loadavg("0.52"), None);
    assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735));
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
    assert_eq!(parse_os_release(""), "Linux");
}

#[test]
fn samples_this_machine() {
    let mut source = HostSource::new("/");
    let first = source.sample(1).unwrap();
    assert!(!first.host.hostname.is_empty());
    assert!(first.sample.mem_total > 0);
    assert!(first.sample.mem_used <= first.sample.mem_total);
    let second = source.sample(2).unwrap();
    assert!((0.0..=100.0).contains(&second.sample.cpu_pct));
    assert_eq!(second.sample.cores.len(), second.host.cpu_cores as usize);
}
