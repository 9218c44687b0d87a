//! Where notifications go: one module per kind behind [`send`] and
//! [`send_test`]. A channel is stored as its kind, URL and optional secret;
//! [`target::parse`] turns them into a [`Target`] (shoutrrr URLs as Beszel
//! takes them, or the service's own http(s) URL).

pub mod email;
pub mod http;
pub mod services;
pub mod target;
pub mod webhook;

use std::time::Duration;

pub use self::target::{Target, parse, redact};
use super::Batch;
use crate::store::{AlertRecord, ChannelRecord};

/// A notification as people read it: a title and one line per alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub firing: bool,
    pub title: String,
    pub lines: Vec<String>,
}

impl Note {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A duration as a person says it: `45 s`, `12 min`, `2 h 5 min`, `3 d 4 h`.
pub fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{m} min"),
        3600..86_400 if m % 60 == 0 => format!("{h} h"),
        3600..86_400 => format!("{h} h {} min", m % 60),
        _ if h % 24 == 0 => format!("{d} d"),
        _ => format!("{d} d {} h", h % 24),
    }
}

/// What one alert says: its summary while firing; once resolved, how long
/// it lasted ("host nas is back after 12 min").
pub fn line(rule_kind: &str, hostname: &str, a: &AlertRecord) -> String {
    let Some(end) = a.resolved_ms else {
        return a.summary.clone();
    };
    let lasted = human(end - a.fired_ms.unwrap_or(a.started_ms));
    match rule_kind {
        "host_down" => format!("host {hostname} is back after {lasted}"),
        _ => format!("{}: resolved after {lasted}", a.summary),
    }
}

/// The note for a batch.
pub fn render(batch: &Batch) -> Note {
    let firing = batch.alerts.iter().any(|a| a.state == "firing");
    let host = if batch.hostname.is_empty() {
        &batch.node_id
    } else {
        &batch.hostname
    };
    Note {
        firing,
        title: format!(
            "[{}] {} on {host}",
            if firing { "firing" } else { "resolved" },
            batch.rule.name
        ),
        lines: batch
            .alerts
            .iter()
            .map(|a| line(&batch.rule.kind, batch.host_of(&a.node_id), a))
            .collect(),
    }
}

/// The test message of the "send test" button.
pub fn test_note(channel: &ChannelRecord) -> Note {
    Note {
        firing: true,
        title: "twinbay test".into(),
        lines: vec![format!(
            "a test message from twinbay: channel {} works",
            channel.name
        )],
    }
}

fn target_of(channel: &ChannelRecord) -> Result<Target, String> {
    parse(&channel.kind, &channel.url, channel.secret.as_deref())
}

/// Sends a batch to a channel; `Err` says why it did not arrive.
pub async fn send(channel: &ChannelRecord, batch: &Batch) -> Result<(), String> {
    match target_of(channel)? {
        Target::Webhook { url } => {
            let body = webhook::payload(channel, batch).to_string().into_bytes();
            webhook::post(&url, channel.secret.as_deref(), body).await
        }
        target => deliver(&target, &render(batch)).await,
    }
}

/// Sends the test message.
pub async fn send_test(channel: &ChannelRecord) -> Result<(), String> {
    match target_of(channel)? {
        Target::Webhook { url } => {
            let body = webhook::test_payload(channel).to_string().into_bytes();
            webhook::post(&url, channel.secret.as_deref(), body).await
        }
        target => deliver(&target, &test_note(channel)).await,
    }
}

/// A channel's quiet hours: from `start` to `end` (minutes after local
/// midnight; may wrap midnight) in the zone `tz`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quiet {
    pub start: u32,
    pub end: u32,
    pub tz: chrono_tz::Tz,
}

/// `HH:MM-HH:MM`, then optionally an IANA zone (`22:00-07:00
/// Europe/Berlin`); without one, UTC.
pub fn parse_quiet(text: &str) -> Result<Quiet, String> {
    let bad = || {
        format!(
            "quiet_hours {text:?}: HH:MM-HH:MM and an optional IANA zone, e.g. 22:00-07:00 Europe/Berlin"
        )
    };
    let minute = |t: &str| -> Option<u32> {
        let (h, m) = t.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (range, tz) = match text.split_once(' ') {
        None => (text, chrono_tz::UTC),
        Some((range, zone)) => {
            let tz = zone.trim().parse::<chrono_tz::Tz>().map_err(|_| {
                format!(
                    "quiet_hours {text:?}: {zone:?} is not an IANA time zone (e.g. Europe/Berlin)"
                )
            })?;
            (range, tz)
        }
    };
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
    if start == end {
        return Err(format!("quiet_hours {text:?}: start and end are the same"));
    }
    Ok(Quiet { start, end, tz })
}

/// How long a notification at `now_ms` must wait for the quiet hours to
/// end (their end as the zone's clocks show it, across DST changes);
/// `None` outside them (or when they do not parse).
pub fn quiet_wait(quiet: Option<&str>, now_ms: i64) -> Option<Duration> {
    use chrono::{Days, NaiveTime, TimeZone, Timelike};
    let q = parse_quiet(quiet?).ok()?;
    let now = chrono::Utc
        .timestamp_millis_opt(now_ms)
        .single()?
        .with_timezone(&q.tz);
    let minute = now.hour() * 60 + now.minute();
    let inside = match q.start < q.end {
        true => (q.start..q.end).contains(&minute),
        false => minute >= q.start || minute < q.end,
    };
    if !inside {
        return None;
    }
    let end_time = NaiveTime::from_hms_opt(q.end / 60, q.end % 60, 0)?;
    let mut day = now.date_naive();
    if minute >= q.end {
        day = day.checked_add_days(Days::new(1))?;
    }
    let local = day.and_time(end_time);
    // An end inside a DST gap (02:30 on a spring-forward night) moves on
    // by the gap's hour (03:30), as the zone's clocks do.
    let end = q.tz.from_local_datetime(&local).earliest().or_else(|| {
        q.tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
    })?;
    let wait = end.timestamp_millis() - now_ms;
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// How long one email may take.
const EMAIL_TIMEOUT: Duration = Duration::from_secs(20);

async fn deliver(target: &Target, note: &Note) -> Result<(), String> {
    match target {
        Target::Webhook { .. } => Err("a webhook takes a batch".into()),
        Target::Email { .. } => tokio::time::timeout(EMAIL_TIMEOUT, email::send(target, note))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {EMAIL_TIMEOUT:?}"))),
        _ => services::send(target, note).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_hold_until_their_end() {
        let at = |h: i64, m: i64| 20_000 * 86_400_000 + (h * 60 + m) * 60_000;
        let q = Some("22:00-07:00");
        assert_eq!(
            quiet_wait(q, at(23, 0)),
            Some(Duration::from_secs(8 * 3600))
        );
        assert_eq!(quiet_wait(q, at(6, 30)), Some(Duration::from_secs(30 * 60)));
        assert_eq!(quiet_wait(q, at(7, 0)), None);
        assert_eq!(quiet_wait(q, at(12, 0)), None);
        let day = Some("09:00-17:30");
        assert_eq!(
            quiet_wait(day, at(17, 0)),
            Some(Duration::from_secs(30 * 60))
        );
        assert_eq!(quiet_wait(day, at(8, 59)), None);
        assert_eq!(quiet_wait(None, at(12, 0)), None);
        // In a zone: 22:00-07:00 in Berlin is 21:00-06:00 UTC in winter…
        let winter = 1_765_000_000_000 / 86_400_000 * 86_400_000; // 2025-12-06 00:00 UTC
        let utc = |h: i64, m: i64| winter + (h * 60 + m) * 60_000;
        let zoned = "22:00-07:00 Europe/Berlin";
        assert_eq!(parse_quiet(zoned).unwrap().tz, chrono_tz::Europe::Berlin);
        let berlin = Some(zoned);
        assert_eq!(quiet_wait(berlin, utc(20, 59)), None);
        assert_eq!(
            quiet_wait(berlin, utc(21, 0)),
            Some(Duration::from_secs(9 * 3600))
        );
        assert_eq!(
            quiet_wait(berlin, utc(5, 30)),
            Some(Duration::from_secs(30 * 60))
        );
        assert_eq!(quiet_wait(berlin, utc(6, 0)), None);
        // …and waits across the night clocks go forward: 2026-03-29 in
        // Berlin, 01:00 local (00:00 UTC) to 07:00 CEST (05:00 UTC).
        let spring = 1_774_742_400_000; // 2026-03-29 00:00 UTC
        assert_eq!(
            quiet_wait(berlin, spring),
            Some(Duration::from_secs(5 * 3600))
        );
        // The end inside the gap (02:30 does not exist): 03:30 CEST.
        let gap = Some("01:00-02:30 Europe/Berlin");
        assert_eq!(quiet_wait(gap, spring), Some(Duration::from_secs(90 * 60)));
        assert!(
            parse_quiet("22:00-07:00 Mars/Olympus")
                .unwrap_err()
                .contains("IANA")
        );
        for bad in [
            "",
            "22-07",
            "24:00-01:00",
            "22:00-22:00",
            "2:00-07:00",
            "22:00/07:00",
        ] {
            assert!(parse_quiet(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(human(45_000), "45 s");
        assert_eq!(human(12 * 60_000 + 5_000), "12 min");
        assert_eq!(human(2 * 3_600_000 + 5 * 60_000), "2 h 5 min");
        assert_eq!(human(3_600_000), "1 h");
        assert_eq!(human(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(human(-5), "0 s");
    }

    #[test]
    fn resolved_lines_say_how_long() {
        let a = AlertRecord {
            id: 1,
            rule_id: 1,
            node_id: "n1".into(),
            subject: String::new(),
            state: "resolved".into(),
            summary: "host nas is not connected".into(),
            started_ms: 0,
            fired_ms: Some(10_000),
            resolved_ms: Some(10_000 + 12 * 60_000),
            notified: false,
            acked_ms: None,
            acked_by: None,
            ack_comment: None,
            silenced: false,
        };
        assert_eq!(
            line("host_down", "nas", &a),
            "host nas is back after 12 min"
        );
        let c = AlertRecord {
            summary: "unit x.service failed on nas".into(),
            ..a
        };
        assert_eq!(
            line("unit_failed", "nas", &c),
            "unit x.service failed on nas: resolved after 12 min"
        );
    }
}
