//! The events log reader, on lines recorded from Podman 4.3's
//! `/run/libpod/events/events.log`.

use std::io::Write;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::sources::containers::{apply_event, event_container};

const DIED: &str = r#"{"ContainerExitCode":137,"ID":"264624b913619ff2dbd1a684248f615ffbdfe36e66a1fbc01214c1c8c063080c","Image":"localhost/twinbay-busybox:latest","Name":"tbfiles-web","Status":"died","Time":"2026-12-02T21:05:45.405915351Z","Type":"container","Attributes":{"com.docker.compose.project":"tbfiles","com.docker.compose.service":"web"}}"#;
const START: &str = r#"{"ID":"264624b913619ff2dbd1a684248f615ffbdfe36e66a1fbc01214c1c8c063080c","Image":"localhost/twinbay-busybox:latest","Name":"tbfiles-web","Status":"start","Time":"2026-12-02T21:05:43.311101298Z","Type":"container","Attributes":{"com.docker.compose.project":"tbfiles"}}"#;
const IMAGE: &str = r#"{"Name":"localhost/twinbay-busybox:latest","Status":"pull","Time":"2026-12-02T21:05:43.162736674Z","Type":"image","Attributes":null}"#;
// Podman 4.3's rotation (events_logfile_max_size): a new file renamed over the
// log holds the old one's second half, this event, then the new event.
const ROTATION: &str = r#"{"Name":"/run/libpod/events/events.log","Status":"log-rotation","Time":"2026-12-02T21:56:57.878062381Z","Type":"system","Attributes":null}"#;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinbay-eventlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_died_line_is_the_apis_die_event_with_its_exit_code() {
    let e = parse_line(DIED.as_bytes()).unwrap();
    assert_eq!(e.status, "died");
    assert_eq!(e.exit_code, Some(137));
    let msg = e.to_message().unwrap();
    let (id, action) = event_container(&msg).unwrap();
    assert_eq!(id.len(), 64);
    assert_eq!(action, "die");
    let mut c = twinbay_proto::model::Container {
        id,
        state: "running".into(),
        ..Default::default()
    };
    assert!(apply_event(&mut c, &action, &msg));
    assert_eq!((c.state.as_str(), c.exit_code), ("exited", Some(137)));

    let start = parse_line(START.as_bytes()).unwrap().to_message().unwrap();
    assert!(apply_event(&mut c, "start", &start));
    assert_eq!(c.state, "running");
}

#[test]
fn only_container_events_become_messages() {
    assert!(parse_line(IMAGE.as_bytes()).unwrap().to_message().is_none());
    let rotation = parse_line(ROTATION.as_bytes()).unwrap();
    assert!(rotation.is_rotation() && rotation.to_message().is_none());
    assert!(parse_line(b"").is_none());
    assert!(parse_line(b"  \r").is_none());
    assert!(parse_line(b"{\"ID\":").is_none());
    assert!(parse_line(b"[1,2]").is_none());
    assert!(
        parse_line(br#"{"Type":"container","Status":"start"}"#)
            .unwrap()
            .to_message()
            .is_none(),
        "no ID, no container"
    );
}

#[test]
fn lines_are_split_across_reads_and_long_ones_dropped() {
    let mut l = Lines::default();
    assert!(l.feed(b"{\"a\":").is_empty());
    assert_eq!(l.feed(b"1}\n{\"b\""), vec![b"{\"a\":1}".to_vec()]);
    assert_eq!(l.feed(b":2}\n"), vec![b"{\"b\":2}".to_vec()]);
    // A line over the cap is dropped, in one piece or many; the next is kept.
    let long = vec![b'x'; MAX_LINE + 1];
    assert!(l.feed(&long).is_empty());
    assert!(l.feed(b"more of it").is_empty());
    assert_eq!(l.feed(b"\nnext\n"), vec![b"next".to_vec()]);
    let mut long = vec![b'y'; MAX_LINE + 1];
    long.extend_from_slice(b"\nok\n");
    assert_eq!(l.feed(&long), vec![b"ok".to_vec()]);
}

#[test]
fn the_log_path_follows_containers_conf() {
    let root = log_path(&[], false, None).unwrap();
    assert_eq!(root, PathBuf::from("/run/libpod/events/events.log"));
    let rootless = log_path(&[], true, Some("/run/user/1000")).unwrap();
    assert_eq!(
        rootless,
        PathBuf::from("/run/user/1000/libpod/tmp/events/events.log")
    );
    assert_eq!(log_path(&[], true, None), None);
    let share = "[containers]\nevents_logfile_path = \"/nope\"\n[engine]\n#events_logfile_path=\"\"\nruntime = \"runc\"\n".to_string();
    assert_eq!(
        log_path(std::slice::from_ref(&share), false, None).unwrap(),
        root
    );
    let etc = "[engine]\ntmp_dir = \"/var/tmp/pod\"\n".to_string();
    assert_eq!(
        log_path(&[share.clone(), etc.clone()], false, None).unwrap(),
        PathBuf::from("/var/tmp/pod/events/events.log")
    );
    let user = "[ engine ]\nevents_logfile_path = '/srv/ev.log' # mine\n".to_string();
    assert_eq!(
        log_path(&[share, etc, user], true, None).unwrap(),
        PathBuf::from("/srv/ev.log")
    );
}

#[test]
fn the_tail_reads_only_what_is_appended_and_follows_a_rotation() {
    let dir = temp("tail");
    let path = dir.join("events.log");
    append(&path, &format!("{START}\n{DIED}\n"));
    let mut tail = Tail::open(&path).unwrap();
    assert_eq!(tail.read().unwrap(), (vec![], false), "history is not news");

    append(&path, &format!("{IMAGE}\n{START}"));
    let (events, more) = tail.read().unwrap();
    assert!(!more);
    assert_eq!(events.len(), 1, "the unfinished line waits");
    assert_eq!(events[0].typ, "image");
    append(&path, "\n");
    assert_eq!(tail.read().unwrap().0[0].status, "start");

    // Podman's rotation: the old file's second half, a log-rotation event
    // and the new event, renamed over the log.
    append(&path, &format!("{DIED}\n"));
    let tmp = dir.join("rotate.tmp");
    append(&tmp, &format!("{START}\n{ROTATION}\n{DIED}\n"));
    std::fs::rename(&tmp, &path).unwrap();
    let statuses: Vec<String> = tail
        .read()
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        statuses,
        ["died", "died"],
        "the old file's last event, then the new one"
    );
    append(&path, &format!("{START}\n"));
    assert_eq!(tail.read().unwrap().0[0].status, "start");

    // Truncated in place: read from the start.
    std::fs::write(&path, format!("{DIED}\n")).unwrap();
    assert_eq!(tail.read().unwrap().0[0].status, "died");
    assert_eq!(tail.read().unwrap(), (vec![], false));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_watch_wakes_on_an_append_and_a_rotation() {
    let dir = temp("watch");
    let path = dir.join("events.log");
    append(&path, "");
    let wake = Arc::new(Notify::new());
    let _watch = Watch::new(&path, wake.clone()).unwrap();
    let woken = || tokio::time::timeout(Duration::from_secs(5), wake.notified());
    append(&path, &format!("{START}\n"));
    woken().await.expect("woken by an append");
    // (An append raises more than one event: let them all land and go.)
    let drain = || async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tokio::time::timeout(Duration::from_millis(10), wake.notified()).await;
    };
    drain().await;
    let tmp = dir.join("rotate.tmp");
    append(&tmp, &format!("{ROTATION}\n"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), wake.notified())
            .await
            .is_err(),
        "another file in the directory does not wake it"
    );
    std::fs::rename(&tmp, &path).unwrap();
    woken().await.expect("woken by a rotation");
    let _ = std::fs::remove_dir_all(&dir);
}

fn event() -> impl Strategy<Value = (String, String, String, Option<i64>)> {
    (
        "[0-9a-f]{64}",
        prop::sample::select(vec![
            "create", "init", "start", "stop", "died", "remove", "pause",
        ]),
        "[a-zA-Z0-9_.\"\\\\ -]{0,30}",
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(id, s, n, c)| (id, s.to_string(), n, c))
}

fn render((id, status, name, code): &(String, String, String, Option<i64>)) -> String {
    let mut v = serde_json::json!({
        "ID": id, "Image": "localhost/x:latest", "Name": name, "Status": status,
        "Time": "2026-12-02T21:05:45.405915351Z", "Type": "container",
        "Attributes": {"a": "b"},
    });
    if let Some(c) = code {
        v["ContainerExitCode"] = (*c).into();
    }
    v.to_string()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20)) {
        let mut l = Lines::default();
        for c in &chunks {
            for line in l.feed(c) {
                prop_assert!(line.len() <= MAX_LINE);
                if let Some(e) = parse_line(&line) {
                    let _ = e.to_message();
                }
            }
            prop_assert!(l.partial.len() <= MAX_LINE);
        }
    }

    #[test]
    fn arbitrary_times_never_panic(t in ".{0,40}", digits in "[0-9:.TZ+-]{0,40}") {
        let _ = unix_nanos(&t);
        let _ = unix_nanos(&digits);
    }

    #[test]
    fn arbitrary_text_lines_never_panic(lines in prop::collection::vec(".{0,120}", 0..20)) {
        for line in &lines {
            if let Some(e) = parse_line(line.as_bytes()) {
                let _ = e.to_message();
            }
        }
    }

    #[test]
    fn well_formed_lines_parse_however_they_are_split(
        events in prop::collection::vec(event(), 1..10),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let text: String = events.iter().map(|e| render(e) + "\n").collect();
        let bytes = text.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len())).collect();
        at.sort();
        let mut l = Lines::default();
        let mut got = Vec::new();
        let mut from = 0;
        for cut in at.into_iter().chain([bytes.len()]) {
            got.extend(l.feed(&bytes[from..cut]).iter().filter_map(|x| parse_line(x)));
            from = cut;
        }
        prop_assert_eq!(got.len(), events.len());
        for (g, (id, status, name, code)) in got.iter().zip(&events) {
            prop_assert_eq!(&g.id, id);
            prop_assert_eq!(&g.name, name);
            prop_assert_eq!(g.exit_code, *code);
            let msg = g.to_message().unwrap();
            let (mid, action) = event_container(&msg).unwrap();
            prop_assert_eq!(&mid, id);
            prop_assert_eq!(action, if status == "died" { "die" } else { status.as_str() });
        }
    }
}

#[test]
fn times_are_the_apis_time_nano() {
    let died = parse_line(DIED.as_bytes()).unwrap().to_message().unwrap();
    assert_eq!(died.time_nano, Some(1_796_245_545_405_915_351));
    assert_eq!(died.time, Some(1_796_245_545));
    let same = [
        "2026-12-02T21:05:45.405915351Z",
        "2026-12-02T22:05:45.405915351+01:00",
        "2026-12-02T16:35:45.405915351-04:30",
    ];
    for t in same {
        assert_eq!(unix_nanos(t), Some(1_796_245_545_405_915_351), "{t}");
    }
    assert_eq!(unix_nanos("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(unix_nanos("1969-12-31T23:59:59.5Z"), Some(-500_000_000));
    assert_eq!(
        unix_nanos("2024-02-29T00:00:00Z"),
        Some(1_709_164_800_000_000_000)
    );
    for bad in [
        "",
        "2026-12-02",
        "2026-13-02T21:05:45Z",
        "2026-12-02T21:05:45",
        "2026-12-02T21:05:45.Z",
        "2026-12-02T21:05:45.1234567890Z",
        "2026-12-02T21:05:45+0100",
        "9999-12-31T23:59:59Z",
        "2026-12-02T21:05:45.405915351Zjunk",
        "+026-12-02T21:05:45Z",
    ] {
        assert_eq!(unix_nanos(bad), None, "{bad}");
    }
}
