//! A rollout's rules, with no I/O: which hosts go in which batch, what an
//! `update` command's progress means for its host, and what to do next.
//!
//! Canaries go first, alone; the batches after them start only when every
//! canary is healthy, each after the one before has settled (every host
//! healthy, failed, skipped or waiting for its agent) and the pause has
//! passed. A failed canary halts the rollout; so do more failures than
//! `max_failures`. A host whose agent is offline when its batch starts waits,
//! and is updated when it comes back while the rollout is still running.

use twinbay_proto::command::Status;

pub use twinbay_store::rollouts::{Batch, Counts, HostState, RolloutHost, State};

/// Puts `hosts` (in the order given: the first are the canaries) into
/// batches.
pub fn assign(hosts: &mut [RolloutHost], canaries: u32, batch: Batch) {
    let canaries = (canaries as usize).min(hosts.len());
    let size = batch.size(hosts.len() - canaries);
    for (i, h) in hosts.iter_mut().enumerate() {
        if i < canaries {
            h.stage = "canary".into();
            h.batch = 0;
        } else {
            h.stage = "batch".into();
            h.batch = ((i - canaries) / size + 1) as u32;
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the update to these hosts (indices into `hosts`).
    Start(Vec<usize>),
    /// Stop the rollout, for this reason.
    Halt(String),
    /// Every host is finished.
    Done,
    /// Nothing now: hosts are updating, a pause runs, or offline hosts are awaited.
    Idle,
}

/// The rules, as the driver asks them each round.
pub fn next(hosts: &[RolloutHost], max_failures: u32, pause_between_ms: u64, now_ms: i64) -> Step {
    if let Some(c) = hosts.iter().find(|h| h.batch == 0 && h.state.failure()) {
        let why = c.reason.as_deref().unwrap_or("failed");
        return Step::Halt(format!("canary {} did not update: {why}", c.hostname));
    }
    let failures = hosts.iter().filter(|h| h.state.failure()).count();
    if failures > max_failures as usize {
        return Step::Halt(format!(
            "{failures} hosts did not update (max_failures is {max_failures})"
        ));
    }
    if hosts.iter().all(|h| h.state.finished()) {
        return Step::Done;
    }
    // The first batch with a host still to go or still going.
    let Some(current) = hosts
        .iter()
        .filter(|h| !h.state.settled())
        .map(|h| h.batch)
        .min()
    else {
        return Step::Idle; // only offline hosts are left
    };
    let pending: Vec<usize> = hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.batch == current && h.state == HostState::Pending)
        .map(|(i, _)| i)
        .collect();
    if pending.is_empty() {
        return Step::Idle; // this batch is updating
    }
    if current > 0 {
        // After the canaries only when each of them is healthy (or skipped).
        if hosts.iter().any(|h| h.batch == 0 && !h.state.finished()) {
            return Step::Idle;
        }
        let begun = hosts
            .iter()
            .any(|h| h.batch == current && h.state != HostState::Pending);
        if !begun {
            let settled_at = hosts
                .iter()
                .filter(|h| h.batch < current)
                .map(|h| h.updated_ms)
                .max()
                .unwrap_or(0);
            if now_ms < settled_at.saturating_add(pause_between_ms as i64) {
                return Step::Idle;
            }
        }
    }
    Step::Start(pending)
}

/// What an `update` command's state says about its host: its status, the
/// agent's progress lines so far, and its error.
pub fn progress(status: Status, output: &str, error: Option<&str>) -> (HostState, Option<String>) {
    match status {
        Status::Running if output.contains("verified:") => (HostState::Restarting, None),
        Status::Running if output.contains("downloading") => (HostState::Verifying, None),
        Status::Running => (HostState::Downloading, None),
        Status::Ok => (HostState::Healthy, None),
        _ => {
            let reason = error
                .map(str::to_string)
                .unwrap_or_else(|| format!("the update ended {status}"));
            if reason.contains("rolled back") {
                (HostState::RolledBack, Some(reason))
            } else {
                (HostState::Failed, Some(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str) -> RolloutHost {
        RolloutHost {
            node_id: id.into(),
            hostname: id.into(),
            stage: String::new(),
            batch: 0,
            state: HostState::Pending,
            from_version: "1.0.0".into(),
            command_id: None,
            reason: None,
            simulated: false,
            updated_ms: 0,
        }
    }

    fn fleet(n: usize, canaries: u32, batch: Batch) -> Vec<RolloutHost> {
        let mut hosts: Vec<_> = (0..n).map(|i| host(&format!("h{i}"))).collect();
        assign(&mut hosts, canaries, batch);
        hosts
    }

    fn set(hosts: &mut [RolloutHost], which: &[usize], state: HostState, at: i64) {
        for &i in which {
            hosts[i].state = state;
            hosts[i].updated_ms = at;
        }
    }

    #[test]
    fn batches_parse_and_size() {
        assert_eq!(Batch::parse("25%"), Ok(Batch::Percent(25)));
        assert_eq!(Batch::parse(" 3 "), Ok(Batch::Count(3)));
        assert!(Batch::parse("0").is_err());
        assert!(Batch::parse("101%").is_err());
        assert!(Batch::parse("-1").is_err());
        assert!(Batch::parse("lots").is_err());
        assert_eq!(Batch::Percent(25).size(999), 250);
        assert_eq!(Batch::Percent(1).size(3), 1);
        assert_eq!(Batch::Count(5).size(2), 5);
        assert_eq!(Batch::Percent(50).size(0), 1);
        let b: Batch = serde_json::from_str("\"10%\"").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"10%\"");
        let b: Batch = serde_json::from_str("4").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "4");
        assert!(serde_json::from_str::<Batch>("0").is_err());
    }

    #[test]
    fn canaries_then_batches() {
        let hosts = fleet(10, 1, Batch::Percent(50));
        let batches: Vec<u32> = hosts.iter().map(|h| h.batch).collect();
        assert_eq!(batches, [0, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(hosts[0].stage, "canary");
        assert_eq!(hosts[1].stage, "batch");
        // More canaries than hosts: all canaries.
        let hosts = fleet(2, 5, Batch::Count(1));
        assert!(hosts.iter().all(|h| h.batch == 0));
    }

    #[test]
    fn a_rollout_goes_canary_first_then_batch_by_batch_with_pauses() {
        let mut hosts = fleet(5, 1, Batch::Count(2));
        assert_eq!(next(&hosts, 0, 1000, 0), Step::Start(vec![0]));
        set(&mut hosts, &[0], HostState::Restarting, 10);
        assert_eq!(next(&hosts, 0, 1000, 20), Step::Idle);
        set(&mut hosts, &[0], HostState::Healthy, 100);
        // The pause runs from the canary's end.
        assert_eq!(next(&hosts, 0, 1000, 500), Step::Idle);
        assert_eq!(next(&hosts, 0, 1000, 1100), Step::Start(vec![1, 2]));
        set(&mut hosts, &[1], HostState::Downloading, 1100);
        // A batch that has begun sends the rest at once.
        assert_eq!(next(&hosts, 0, 1000, 1100), Step::Start(vec![2]));
        set(&mut hosts, &[2], HostState::Waiting, 1100);
        set(&mut hosts, &[1], HostState::Healthy, 2000);
        // An offline host does not hold back the next batch.
        assert_eq!(next(&hosts, 0, 1000, 2500), Step::Idle);
        assert_eq!(next(&hosts, 0, 1000, 3000), Step::Start(vec![3, 4]));
        set(&mut hosts, &[3, 4], HostState::Healthy, 4000);
        // Only the offline host is left: the rollout waits for it.
        assert_eq!(next(&hosts, 0, 1000, 9000), Step::Idle);
        set(&mut hosts, &[2], HostState::Healthy, 9500);
        assert_eq!(next(&hosts, 0, 1000, 9600), Step::Done);
    }

    #[test]
    fn a_failed_canary_halts_before_any_batch() {
        let mut hosts = fleet(3, 1, Batch::Count(1));
        set(&mut hosts, &[0], HostState::RolledBack, 10);
        hosts[0].reason = Some("exit status 3; rolled back to 1.0.0".into());
        let Step::Halt(why) = next(&hosts, 5, 0, 20) else {
            panic!("not halted")
        };
        assert!(
            why.contains("canary h0") && why.contains("rolled back"),
            "{why}"
        );
    }

    #[test]
    fn an_offline_canary_holds_the_batches() {
        let mut hosts = fleet(3, 1, Batch::Count(1));
        set(&mut hosts, &[0], HostState::Waiting, 10);
        assert_eq!(next(&hosts, 0, 0, 20), Step::Idle);
        set(&mut hosts, &[0], HostState::Skipped, 30);
        assert_eq!(next(&hosts, 0, 0, 40), Step::Start(vec![1]));
    }

    #[test]
    fn failures_beyond_the_budget_halt() {
        let mut hosts = fleet(6, 1, Batch::Count(5));
        set(&mut hosts, &[0], HostState::Healthy, 1);
        set(&mut hosts, &[1, 2], HostState::Failed, 2);
        set(&mut hosts, &[3, 4, 5], HostState::Downloading, 2);
        assert_eq!(next(&hosts, 2, 0, 3), Step::Idle);
        set(&mut hosts, &[3], HostState::RolledBack, 4);
        assert!(matches!(next(&hosts, 2, 0, 5), Step::Halt(_)));
    }

    #[test]
    fn progress_reads_the_agents_lines_and_ends() {
        assert_eq!(
            progress(Status::Running, "", None).0,
            HostState::Downloading
        );
        assert_eq!(
            progress(
                Status::Running,
                "downloading 2.0 for x86_64: 9 bytes\n",
                None
            )
            .0,
            HostState::Verifying
        );
        assert_eq!(
            progress(
                Status::Running,
                "downloading …\nverified: sha256 ab\n",
                None
            )
            .0,
            HostState::Restarting
        );
        assert_eq!(progress(Status::Ok, "", None).0, HostState::Healthy);
        let (s, why) = progress(
            Status::Failed,
            "",
            Some("exited with status 3; rolled back to 1.0"),
        );
        assert_eq!(s, HostState::RolledBack);
        assert!(why.unwrap().contains("status 3"));
        assert_eq!(
            progress(Status::Refused, "", Some("untrusted key")),
            (HostState::Failed, Some("untrusted key".into()))
        );
        assert_eq!(progress(Status::Lost, "", None).0, HostState::Failed);
    }

    #[test]
    fn counts_add_up() {
        let mut hosts = fleet(4, 1, Batch::Count(1));
        set(&mut hosts, &[0], HostState::Healthy, 1);
        set(&mut hosts, &[1], HostState::Restarting, 1);
        set(&mut hosts, &[2], HostState::Waiting, 1);
        let c = Counts::of(&hosts);
        assert_eq!((c.healthy, c.updating, c.waiting, c.pending), (1, 1, 1, 1));
    }
}
