//! Alert channels, rules, alerts and silences.

use std::collections::BTreeMap;

use crate::alerts::seal::Sealer;
use crate::suite::{Fixture, audit_actions, chain_holds, rec, store_test_suite};
use crate::*;

store_test_suite!(
    channels_are_sealed_listed_noted_and_removed,
    channels_stored_in_plain_text_are_sealed_once,
    rules_round_trip_change_and_take_their_alerts_along,
    alerts_are_listed_newest_first_acked_notified_and_dropped,
    silences_are_listed_newest_first_and_expire_now,
);

fn sealer() -> Sealer {
    Sealer::from_key(&[7; 32])
}

async fn channels_are_sealed_listed_noted_and_removed(f: &Fixture) {
    let store = f.store.clone();
    let sealer = sealer();
    let hook = store
        .add_alert_channel(
            &NewChannel {
                name: "ops hook",
                kind: "webhook",
                url: "https://hooks.example/T0ken-1",
                secret: Some("s3cret"),
                quiet_hours: Some("22:00-07:00 Europe/Berlin"),
            },
            &sealer,
            rec("alert_channel.create"),
        )
        .await
        .unwrap();
    let mail = store
        .add_alert_channel(
            &NewChannel {
                name: "ntfy",
                kind: "ntfy",
                url: "https://ntfy.example/ops",
                secret: None,
                quiet_hours: None,
            },
            &sealer,
            rec("alert_channel.create"),
        )
        .await
        .unwrap();
    assert!(mail > hook);
    // Already sealed: nothing to do.
    assert_eq!(store.seal_alert_channels(&sealer).await.unwrap(), 0);

    let channels = store.alert_channels(&sealer).await.unwrap();
    assert_eq!(channels.len(), 2);
    let c = &channels[0];
    assert_eq!(
        (
            c.id,
            c.name.as_str(),
            c.kind.as_str(),
            c.url.as_str(),
            c.signed,
            c.secret.as_deref(),
            c.quiet_hours.as_deref()
        ),
        (
            hook,
            "ops hook",
            "webhook",
            "https://hooks.example/T0ken-1",
            true,
            Some("s3cret"),
            Some("22:00-07:00 Europe/Berlin")
        )
    );
    assert!(c.created_ms > 0);
    assert_eq!(
        (c.last_sent_ms, c.last_error.as_deref(), c.last_error_ms),
        (None, None, None)
    );
    let c = &channels[1];
    assert_eq!(
        (
            c.id,
            c.signed,
            c.secret.as_deref(),
            c.quiet_hours.as_deref()
        ),
        (mail, false, None, None)
    );
    let other = store.alert_channels(&Sealer::from_key(&[8; 32])).await;
    assert!(matches!(other, Err(StoreError::Damaged(_))), "{other:?}");

    // Deliveries: a success, then a failure (kept after later successes).
    store.note_alert_delivery(hook, None).await.unwrap();
    store
        .note_alert_delivery(hook, Some("502 Bad Gateway"))
        .await
        .unwrap();
    store.note_alert_delivery(hook, None).await.unwrap();
    let c = store.alert_channels(&sealer).await.unwrap().remove(0);
    assert!(c.last_sent_ms.is_some());
    assert_eq!(c.last_error.as_deref(), Some("502 Bad Gateway"));
    assert!(c.last_error_ms.is_some());

    assert!(
        store
            .remove_alert_channel(hook, rec("alert_channel.delete"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_alert_channel(hook, rec("alert_channel.delete"))
            .await
            .unwrap()
    );
    let left: Vec<i64> = store
        .alert_channels(&sealer)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, [mail]);
    assert_eq!(
        audit_actions(&store).await,
        [
            (
                "alert_channel.create".to_string(),
                format!("alert_channel:{hook}")
            ),
            (
                "alert_channel.create".to_string(),
                format!("alert_channel:{mail}")
            ),
            (
                "alert_channel.delete".to_string(),
                format!("alert_channel:{hook}")
            ),
        ]
    );
    chain_holds(&store).await;
}

async fn channels_stored_in_plain_text_are_sealed_once(f: &Fixture) {
    f.raw(
        "INSERT INTO alert_channels (name, kind, url, secret, created_ms) VALUES
         ('old', 'webhook', 'https://hooks.example/plain-1', 'plain-secret', 0),
         ('older', 'slack', 'https://hooks.example/plain-2', NULL, 0)",
    )
    .await;
    let store = f.store.clone();
    let sealer = sealer();
    // Sealed already but for its secret.
    f.raw(&format!(
        "INSERT INTO alert_channels (name, kind, url, secret, created_ms) VALUES
         ('half', 'webhook', '{}', 'plain-secret-3', 0)",
        sealer.seal("https://hooks.example/sealed-3", "url")
    ))
    .await;
    assert_eq!(store.seal_alert_channels(&sealer).await.unwrap(), 3);
    assert_eq!(store.seal_alert_channels(&sealer).await.unwrap(), 0, "once");
    let channels = store.alert_channels(&sealer).await.unwrap();
    let seen: Vec<(&str, Option<&str>)> = channels
        .iter()
        .map(|c| (c.url.as_str(), c.secret.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("https://hooks.example/plain-1", Some("plain-secret")),
            ("https://hooks.example/plain-2", None),
            ("https://hooks.example/sealed-3", Some("plain-secret-3"))
        ]
    );
    // Sealed with the key: another cannot open them.
    assert!(
        store
            .alert_channels(&Sealer::from_key(&[9; 32]))
            .await
            .is_err()
    );
}

async fn rules_round_trip_change_and_take_their_alerts_along(f: &Fixture) {
    let store = f.store.clone();
    // A new hub's default rules.
    let defaults = store.alert_rules().await.unwrap();
    let names: Vec<(i64, &str, bool)> = defaults
        .iter()
        .map(|r| (r.id, r.kind.as_str(), r.enabled))
        .collect();
    assert_eq!(
        names,
        [
            (1, "host_down", true),
            (2, "disk", true),
            (3, "unit_failed", true),
            (4, "container_down", true),
            (5, "backup_failed", true)
        ]
    );
    assert_eq!(
        (defaults[1].above, defaults[1].clear),
        (Some(90.0), Some(85.0))
    );
    assert!(defaults[1].channels.is_empty());

    let id = store
        .add_alert_rule(
            &NewRule {
                name: "disk fills",
                kind: "disk_forecast",
                for_ms: 600_000,
                above: Some(97.5),
                clear: Some(0.125),
                group: Some("site=lab"),
                node_id: Some("n_1"),
                channels: &[3, 1],
                within_ms: Some(86_400_000),
                window_ms: Some(21_600_000),
                risk: Some("medium"),
            },
            rec("alert_rule.create"),
        )
        .await
        .unwrap();
    let rules = store.alert_rules().await.unwrap();
    assert_eq!(rules.len(), 6);
    let r = rules.last().unwrap().clone();
    assert!(r.created_ms > 0);
    assert_eq!(
        r,
        RuleRecord {
            id,
            name: "disk fills".into(),
            kind: "disk_forecast".into(),
            for_ms: 600_000,
            above: Some(97.5),
            clear: Some(0.125),
            group: Some("site=lab".into()),
            node_id: Some("n_1".into()),
            channels: vec![3, 1],
            enabled: true,
            created_ms: r.created_ms,
            within_ms: Some(86_400_000),
            window_ms: Some(21_600_000),
            risk: Some("medium".into()),
        }
    );
    let bare = store
        .add_alert_rule(
            &NewRule {
                name: "cpu",
                kind: "cpu",
                for_ms: 0,
                above: None,
                clear: None,
                group: None,
                node_id: None,
                channels: &[],
                within_ms: None,
                window_ms: None,
                risk: None,
            },
            rec("alert_rule.create"),
        )
        .await
        .unwrap();
    let r = store.alert_rules().await.unwrap().pop().unwrap();
    assert_eq!(
        (r.id, r.above, r.group, r.channels, r.within_ms, r.risk),
        (bare, None, None, vec![], None, None)
    );

    // Off (channels kept), then new channels (still off).
    assert!(
        store
            .update_alert_rule(id, Some(false), None, rec("alert_rule.update"))
            .await
            .unwrap()
    );
    let find = |rules: Vec<RuleRecord>| rules.into_iter().find(|r| r.id == id).unwrap();
    let r = find(store.alert_rules().await.unwrap());
    assert_eq!((r.enabled, r.channels), (false, vec![3, 1]));
    assert!(
        store
            .update_alert_rule(id, None, Some(&[2]), rec("alert_rule.update"))
            .await
            .unwrap()
    );
    let r = find(store.alert_rules().await.unwrap());
    assert_eq!((r.enabled, r.channels), (false, vec![2]));
    assert!(
        store
            .update_alert_rule(id, Some(true), Some(&[]), rec("alert_rule.update"))
            .await
            .unwrap()
    );
    let r = find(store.alert_rules().await.unwrap());
    assert_eq!((r.enabled, r.channels), (true, vec![]));
    assert!(
        !store
            .update_alert_rule(999, Some(true), None, rec("alert_rule.update"))
            .await
            .unwrap()
    );

    // Removing a rule removes its alerts, not the others'.
    let mine = store.put_alert(&alert(id, "n_1", "firing")).await.unwrap();
    let theirs = store.put_alert(&alert(1, "n_1", "firing")).await.unwrap();
    assert!(
        store
            .remove_alert_rule(id, rec("alert_rule.delete"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_alert_rule(id, rec("alert_rule.delete"))
            .await
            .unwrap()
    );
    let left: Vec<i64> = store
        .alerts(false, 100)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(left, [theirs]);
    assert_ne!(mine, theirs);
    assert_eq!(store.alert_rules().await.unwrap().len(), 6);

    let target = format!("alert_rule:{id}");
    let audited: Vec<(String, String)> = audit_actions(&store)
        .await
        .into_iter()
        .filter(|(_, t)| *t == target)
        .collect();
    assert_eq!(
        audited.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        [
            "alert_rule.create",
            "alert_rule.update",
            "alert_rule.update",
            "alert_rule.update",
            "alert_rule.delete"
        ]
    );
    assert_eq!(audit_actions(&store).await.len(), 6);
    chain_holds(&store).await;
}

fn alert(rule_id: i64, node_id: &str, state: &str) -> AlertRecord {
    AlertRecord {
        id: 0,
        rule_id,
        node_id: node_id.into(),
        subject: "/var".into(),
        state: state.into(),
        summary: format!("{state} on {node_id}"),
        started_ms: 1_000,
        fired_ms: (state != "pending").then_some(2_000),
        resolved_ms: (state == "resolved").then_some(3_000),
        notified: false,
        acked_ms: None,
        acked_by: None,
        ack_comment: None,
        silenced: false,
    }
}

async fn alerts_are_listed_newest_first_acked_notified_and_dropped(f: &Fixture) {
    let store = f.store.clone();
    assert!(store.alerts(true, 10).await.unwrap().is_empty());
    let mut a = alert(2, "n_1", "pending");
    a.id = store.put_alert(&a).await.unwrap();
    let b = store.put_alert(&alert(2, "n_2", "firing")).await.unwrap();
    let c = store.put_alert(&alert(1, "n_3", "resolved")).await.unwrap();
    let d = store.put_alert(&alert(1, "n_4", "pending")).await.unwrap();
    assert!(a.id < b && b < c && c < d);

    // Read back whole.
    let all = store.alerts(false, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|x| x.id).collect::<Vec<_>>(),
        [d, c, b, a.id]
    );
    assert_eq!(all[3], a);
    assert_eq!(
        (all[1].state.as_str(), all[1].fired_ms, all[1].resolved_ms),
        ("resolved", Some(2_000), Some(3_000))
    );
    assert_eq!(
        store
            .alerts(false, 2)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        [d, c]
    );
    // Active ones, whatever the limit.
    assert_eq!(
        store
            .alerts(true, 1)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        [d, b, a.id]
    );

    // It fires: a changed record keeps its id.
    a.state = "firing".into();
    a.summary = "disk 95 %".into();
    a.fired_ms = Some(5_000);
    a.notified = true;
    assert_eq!(store.put_alert(&a).await.unwrap(), a.id);
    let got = store.alerts(false, 100).await.unwrap().pop().unwrap();
    assert_eq!(got, a);
    a.notified = false;
    store.put_alert(&a).await.unwrap();

    store.mark_alerts_notified(&[a.id, b]).await.unwrap();
    store.mark_alerts_notified(&[]).await.unwrap();
    let notified: Vec<(i64, bool)> = store
        .alerts(false, 100)
        .await
        .unwrap()
        .iter()
        .map(|x| (x.id, x.notified))
        .collect();
    assert_eq!(notified, [(d, false), (c, false), (b, true), (a.id, true)]);

    // Acknowledged: an active alert only.
    let acked = store
        .ack_alert(b, "alice", "looking — ✓", rec("alert.ack"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            acked.id,
            acked.acked_by.as_deref(),
            acked.ack_comment.as_deref()
        ),
        (b, Some("alice"), Some("looking — ✓"))
    );
    assert!(acked.acked_ms.is_some());
    let resolved = store
        .ack_alert(c, "alice", "late", rec("alert.ack"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (resolved.id, resolved.acked_ms, resolved.acked_by),
        (c, None, None)
    );
    assert_eq!(
        store
            .ack_alert(999, "alice", "", rec("alert.ack"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        audit_actions(&store).await,
        [("alert.ack".to_string(), format!("alert:{b}"))]
    );

    store.drop_alert(d).await.unwrap();
    store.drop_alert(999).await.unwrap();
    assert_eq!(
        store
            .alerts(true, 0)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        [b, a.id]
    );
    chain_holds(&store).await;
    store.close().await;
    let store = f.reopen().await;
    assert_eq!(store.alerts(false, 10).await.unwrap().len(), 3);
    store.close().await;
}

async fn silences_are_listed_newest_first_and_expire_now(f: &Fixture) {
    let store = f.store.clone();
    let now = now_ms();
    let labels: BTreeMap<String, String> =
        [("site".into(), "lab".into()), ("rack".into(), "2".into())].into();
    let none = BTreeMap::new();
    let running = store
        .add_alert_silence(
            &NewSilence {
                rule_id: Some(2),
                node_id: Some("n_1"),
                labels: &labels,
                starts_ms: now - 60_000,
                ends_ms: now + 3_600_000,
                comment: "maintenance",
                created_by: "alice",
            },
            rec("alert_silence.create"),
        )
        .await
        .unwrap();
    let later = store
        .add_alert_silence(
            &NewSilence {
                rule_id: None,
                node_id: None,
                labels: &none,
                starts_ms: now + 3_600_000,
                ends_ms: now + 7_200_000,
                comment: "",
                created_by: "bob",
            },
            rec("alert_silence.create"),
        )
        .await
        .unwrap();
    let silences = store.alert_silences().await.unwrap();
    assert_eq!(
        silences.iter().map(|s| s.id).collect::<Vec<_>>(),
        [later, running]
    );
    let s = &silences[1];
    assert!(s.created_ms >= now);
    assert_eq!(
        s,
        &SilenceRecord {
            id: running,
            rule_id: Some(2),
            node_id: Some("n_1".into()),
            labels: labels.clone(),
            starts_ms: now - 60_000,
            ends_ms: now + 3_600_000,
            comment: "maintenance".into(),
            created_by: "alice".into(),
            created_ms: s.created_ms,
        }
    );
    assert!(s.matches(2, "n_1", &labels, now));
    assert_eq!((silences[0].rule_id, silences[0].labels.len()), (None, 0));

    // Ended now: the start stays, the end is now. One yet to start never
    // starts.
    assert!(
        store
            .expire_alert_silence(running, rec("alert_silence.expire"))
            .await
            .unwrap()
    );
    assert!(
        store
            .expire_alert_silence(later, rec("alert_silence.expire"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .expire_alert_silence(999, rec("alert_silence.expire"))
            .await
            .unwrap()
    );
    let after = now_ms();
    let silences = store.alert_silences().await.unwrap();
    let s = &silences[1];
    assert_eq!(s.starts_ms, now - 60_000);
    assert!((now..=after).contains(&s.ends_ms), "{s:?}");
    let l = &silences[0];
    assert!((now..=after).contains(&l.starts_ms), "{l:?}");
    assert_eq!(l.starts_ms, l.ends_ms);
    assert!(!s.matches(2, "n_1", &labels, after + 1));
    assert_eq!(audit_actions(&store).await.len(), 4);
    chain_holds(&store).await;
}
