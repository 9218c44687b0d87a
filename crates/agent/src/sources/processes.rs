//! The top processes by CPU and by memory, from `/proc/PID/stat`.

use std::collections::HashMap;
use std::path::PathBuf;

use twinbay_proto::model::Process;

/// What `/proc/PID/stat` says that we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub name: String,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set, in pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/PID/stat`. The name sits in parentheses and may itself
/// contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let name = text.get(open + 1..close)?.to_string();
    // After ")": state(3) ppid(4) … utime(14) stime(15) … rss(24); index 0 is field 3.
    let f: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        pid,
        name,
        cpu_ticks: field(14)? + field(15)?,
        rss_pages: field(24)?,
    })
}

/// The union of the `k` busiest and the `k` largest processes.
pub fn top_k(mut all: Vec<Process>, k: usize) -> Vec<Process> {
    all.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct).then(a.pid.cmp(&b.pid)));
    let mut top: Vec<Process> = all.iter().take(k).cloned().collect();
    all.sort_by(|a, b| b.rss.cmp(&a.rss).then(a.pid.cmp(&b.pid)));
    for p in all.into_iter().take(k) {
        if !top.iter().any(|t| t.pid == p.pid) {
            top.push(p);
        }
    }
    top
}

#[derive(Debug)]
pub struct ProcessSource {
    root: PathBuf,
    k: usize,
    prev: HashMap<u32, u64>,
    prev_ms: i64,
    ticks_per_sec: f64,
    page_size: u64,
}

impl ProcessSource {
    pub fn new(root: impl Into<PathBuf>, k: usize) -> Self {
        ProcessSource {
            root: root.into(),
            k,
            prev: HashMap::new(),
            prev_ms: 0,
            ticks_per_sec: rustix::param::clock_ticks_per_second() as f64,
            page_size: rustix::param::page_size() as u64,
        }
    }

    pub fn sample(&mut self, now_ms: i64) -> std::io::Result<Vec<Process>> {
        let secs = (now_ms - self.prev_ms) as f64 / 1000.0;
        let mut all = Vec::new();
        let mut next = HashMap::new();
        for (pid, entry) in super::pid_dirs(&self.root)? {
            // A process may exit between the listing and the read: skip it.
            let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(parse_stat)
            else {
                continue;
            };
            let cpu_pct = match self.prev.get(&pid) {
                Some(prev) if secs > 0.0 => {
                    stat.cpu_ticks.saturating_sub(*prev) as f64 / self.ticks_per_sec / secs * 100.0
                }
                _ => 0.0,
            };
            let uid = {
                use std::os::unix::fs::MetadataExt;
                entry.metadata().ok().map(|m| m.uid())
            };
            next.insert(pid, stat.cpu_ticks);
            all.push(Process {
                pid,
                name: stat.name.into(),
                // One decimal is plenty and keeps idle processes from churning diffs.
                cpu_pct: ((cpu_pct * 10.0).round() / 10.0) as f32,
                rss: stat.rss_pages * self.page_size,
                uid,
            });
        }
        self.prev = next;
        self.prev_ms = now_ms;
        Ok(top_k(all, self.k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_names() {
        let line = "1234 (tmux: server (1)) S 1 1234 1234 0 -1 4194560 1067 0 0 0 250 75 0 0 20 0 1 0 4816 11550720 923 18446744073709551615 1 1 0 0 0 0 0 3670016 1266777851 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.name, "tmux: server (1)");
        assert_eq!(s.cpu_ticks, 325);
        assert_eq!(s.rss_pages, 923);
        assert_eq!(parse_stat("99 (gone"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn keeps_the_busiest_and_the_largest() {
        let p = |pid, cpu_pct, rss| Process {
            pid,
            name: format!("p{pid}").into(),
            cpu_pct,
            rss,
            uid: None,
        };
        let all = vec![
            p(1, 0.0, 900),
            p(2, 50.0, 10),
            p(3, 10.0, 800),
            p(4, 0.1, 1),
        ];
        let top: Vec<u32> = top_k(all, 2).iter().map(|p| p.pid).collect();
        assert_eq!(top, [2, 3, 1]);
    }

    #[test]
    fn sees_a_busy_process_on_this_machine() {
        let mut source = ProcessSource::new("/", 5);
        source.sample(0).unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(300) {
            std::hint::black_box((0..1000).sum::<u64>());
        }
        let top = source.sample(300).unwrap();
        let me = top
            .iter()
            .find(|p| p.pid == std::process::id())
            .expect("this busy test is in the top 5");
        assert!(me.cpu_pct > 20.0, "{me:?}");
        assert!(me.rss > 0);
    }
}
