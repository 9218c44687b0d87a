//! What goes out together: a [`Batch`] is one rule's alerts on one host
//! (or, merged by [`merge_fleet`], on many hosts at once). Pure.

use crate::store::{AlertRecord, ChannelRecord, RuleRecord};

/// A notification ready to go: the rule, the host and its alerts. A
/// fleet-wide batch (many hosts at once, see [`merge_fleet`]) has no
/// `node_id` and says `N hosts`; `hosts` names each alert's host.
#[derive(Debug, Clone)]
pub struct Batch {
    pub rule: RuleRecord,
    pub node_id: String,
    pub hostname: String,
    pub alerts: Vec<AlertRecord>,
    /// Node id → hostname of every host in the batch.
    pub hosts: std::collections::BTreeMap<String, String>,
}

impl Batch {
    /// The hostname of an alert's node (its id when it has none).
    pub fn host_of<'a>(&'a self, node_id: &'a str) -> &'a str {
        match self.hosts.get(node_id) {
            Some(h) if !h.is_empty() => h,
            _ => node_id,
        }
    }
}

/// A batch and the channels it goes to.
pub type Ready = (Vec<ChannelRecord>, Batch);

/// Hosts of one rule ready in the same round beyond which they go out as
/// one fleet-wide notification.
pub const FLEET_BATCH: usize = 3;

/// Batches of the same rule and status (firing or not) ready together for
/// `min_hosts` hosts or more become one: a fleet-wide event (a network
/// outage, every agent after a hub restart) is a few notifications, not
/// one per host.
pub fn merge_fleet(ready: Vec<Ready>, min_hosts: usize) -> Vec<Ready> {
    let mut by_rule: Vec<((i64, bool), Vec<Ready>)> = Vec::new();
    for (channels, batch) in ready {
        let key = (
            batch.rule.id,
            batch.alerts.iter().any(|a| a.state == "firing"),
        );
        match by_rule.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push((channels, batch)),
            None => by_rule.push((key, vec![(channels, batch)])),
        }
    }
    let mut out = Vec::new();
    for (_, list) in by_rule {
        if list.len() < min_hosts {
            out.extend(list);
            continue;
        }
        let mut list = list.into_iter();
        let (channels, mut merged) = list.next().expect("not empty");
        for (_, b) in list {
            merged.alerts.extend(b.alerts);
            merged.hosts.extend(b.hosts);
        }
        merged.node_id = String::new();
        merged.hostname = format!("{} hosts", merged.hosts.len());
        out.push((channels, merged));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rule: i64, node: &str, state: &str) -> (Vec<ChannelRecord>, Batch) {
        let alert = AlertRecord {
            id: 1,
            rule_id: rule,
            node_id: node.into(),
            subject: String::new(),
            state: state.into(),
            summary: format!("host {node} is not connected"),
            started_ms: 0,
            fired_ms: Some(0),
            resolved_ms: None,
            notified: false,
            acked_ms: None,
            acked_by: None,
            ack_comment: None,
            silenced: false,
        };
        let rule = RuleRecord {
            id: rule,
            name: format!("rule {rule}"),
            kind: "host_down".into(),
            for_ms: 0,
            above: None,
            clear: None,
            group: None,
            node_id: None,
            channels: vec![],
            enabled: true,
            created_ms: 0,
            within_ms: None,
            window_ms: None,
            risk: None,
        };
        let b = Batch {
            rule,
            node_id: node.into(),
            hostname: format!("{node}.lan"),
            alerts: vec![alert],
            hosts: [(node.to_string(), format!("{node}.lan"))].into(),
        };
        (Vec::new(), b)
    }

    #[test]
    fn a_fleet_wide_event_goes_out_as_one_notification_per_rule() {
        let mut ready: Vec<_> = (0..40)
            .map(|i| batch(1, &format!("n{i}"), "firing"))
            .collect();
        ready.push(batch(2, "n0", "firing"));
        ready.push(batch(1, "n5", "resolved"));
        let out = merge_fleet(ready, 3);
        assert_eq!(out.len(), 3, "{out:?}");
        let fleet = &out[0].1;
        assert_eq!(
            (fleet.node_id.as_str(), fleet.hostname.as_str()),
            ("", "40 hosts")
        );
        assert_eq!(fleet.alerts.len(), 40);
        assert_eq!(fleet.host_of("n7"), "n7.lan");
        let note = super::super::channels::render(fleet);
        assert_eq!(note.title, "[firing] rule 1 on 40 hosts");
        assert!(note.lines.contains(&"host n7 is not connected".to_string()));
        // Below the threshold each host keeps its own notification.
        assert_eq!(
            merge_fleet(vec![batch(1, "a", "firing"), batch(1, "b", "firing")], 3).len(),
            2
        );
    }
}
