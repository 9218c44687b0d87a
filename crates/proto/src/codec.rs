//! Decoding untrusted frames into messages, with errors that say what was wrong.

use serde::Deserialize;

use crate::MAX_FRAME_BYTES;
use crate::diff::{Change, Item};
use crate::message::{AgentMessage, ErrorCode, HubMessage};
use crate::model::Sample;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {len} bytes is over the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("frame is not valid JSON: {0}")]
    Malformed(serde_json::Error),
    #[error("frame has no \"type\" field")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {ty:?} message: {source}")]
    Invalid {
        ty: String,
        source: serde_json::Error,
    },
    #[error("invalid {ty:?} message: {reason}")]
    OutOfRange { ty: &'static str, reason: String },
}

impl DecodeError {
    /// The error code the hub answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::Malformed(_)
            | DecodeError::MissingType
            | DecodeError::Invalid { .. }
            | DecodeError::OutOfRange { .. } => ErrorCode::BadFrame,
        }
    }
}

/// Decodes one frame from an agent. Never panics, whatever the bytes.
pub fn decode_agent_frame(bytes: &[u8]) -> Result<AgentMessage, DecodeError> {
    // The size limit holds for the fast reader too.
    within_limit(bytes)?;
    let msg = match fast::decode(bytes) {
        Some(msg) => msg,
        None => decode(bytes, AgentMessage::TYPES)?,
    };
    let checked = match &msg {
        AgentMessage::Metrics { samples } => samples
            .iter()
            .try_for_each(Sample::validate)
            .map_err(|reason| ("metrics", reason)),
        AgentMessage::SyncFull { state, .. } => state
            .check_numbers()
            .map_err(|e| ("sync_full", e.to_string())),
        AgentMessage::SyncDiff { changes, .. } => changes
            .iter()
            .try_for_each(check_change_numbers)
            .map_err(|reason| ("sync_diff", reason)),
        AgentMessage::Hello(hello) => match &hello.policy {
            Some(policy) => policy.validate().map_err(|reason| ("hello", reason)),
            None => Ok(()),
        },
        AgentMessage::FileChunk(chunk) => chunk.validate().map_err(|reason| ("file_chunk", reason)),
        AgentMessage::UpdateReport(report) => report
            .validate()
            .map_err(|reason| ("update_report", reason)),
        AgentMessage::Heartbeat { .. }
        | AgentMessage::CommandOutput { .. }
        | AgentMessage::CommandResult(_) => Ok(()),
    };
    checked.map_err(|(ty, reason)| DecodeError::OutOfRange { ty, reason })?;
    Ok(msg)
}

/// The frames an agent sends most, read without serde's buffering.
///
/// The derived reader of the internally tagged [`AgentMessage`] first
/// buffers the whole frame into serde's generic `Content` tree to find its
/// `type`, then reads the variant from that copy. Every frame an agent
/// writes starts with its `type`, so for the frequent kinds the tag is read
/// off the front and the whole object read straight into the variant's
/// fields (the `type` field among them, so a second one is refused as the
/// derived reader refuses it). Anything else — another kind, another
/// layout, an error — goes the derived way, which also words the errors.
mod fast {
    use serde::Deserialize;
    use serde::de::IgnoredAny;

    use crate::command::OutputChunk;
    use crate::diff::Change;
    use crate::message::AgentMessage;
    use crate::model::{NodeState, Sample};

    #[derive(Deserialize)]
    struct SyncDiff {
        #[serde(rename = "type")]
        _type: IgnoredAny,
        seq: u64,
        changes: Vec<Change>,
    }

    #[derive(Deserialize)]
    struct SyncFull {
        #[serde(rename = "type")]
        _type: IgnoredAny,
        seq: u64,
        state: Box<NodeState>,
    }

    #[derive(Deserialize)]
    struct Metrics {
        #[serde(rename = "type")]
        _type: IgnoredAny,
        samples: Vec<Sample>,
    }

    #[derive(Deserialize)]
    struct Heartbeat {
        #[serde(rename = "type")]
        _type: IgnoredAny,
        #[serde(default)]
        ts_ms: i64,
    }

    #[derive(Deserialize)]
    struct CommandOutput {
        #[serde(rename = "type")]
        _type: IgnoredAny,
        chunks: Vec<OutputChunk>,
    }

    pub fn decode(bytes: &[u8]) -> Option<AgentMessage> {
        let rest = bytes.strip_prefix(b"{\"type\":\"")?;
        let ty = &rest[..rest.iter().position(|&b| b == b'"')?];
        Some(match ty {
            b"sync_diff" => serde_json::from_slice::<SyncDiff>(bytes)
                .map(|m| AgentMessage::SyncDiff {
                    seq: m.seq,
                    changes: m.changes,
                })
                .ok()?,
            b"metrics" => serde_json::from_slice::<Metrics>(bytes)
                .map(|m| AgentMessage::Metrics { samples: m.samples })
                .ok()?,
            b"heartbeat" => serde_json::from_slice::<Heartbeat>(bytes)
                .map(|m| AgentMessage::Heartbeat { ts_ms: m.ts_ms })
                .ok()?,
            b"sync_full" => serde_json::from_slice::<SyncFull>(bytes)
                .map(|m| AgentMessage::SyncFull {
                    seq: m.seq,
                    state: m.state,
                })
                .ok()?,
            b"command_output" => serde_json::from_slice::<CommandOutput>(bytes)
                .map(|m| AgentMessage::CommandOutput { chunks: m.chunks })
                .ok()?,
            _ => return None,
        })
    }
}

/// Floats that decode from JSON but cannot be encoded back (past `f32::MAX`
/// they become infinite) are refused at the door.
fn check_change_numbers(change: &Change) -> Result<(), String> {
    match change {
        Change::Upsert {
            item: Item::Processes(p),
            ..
        } if !p.cpu_pct.is_finite() || p.cpu_pct < 0.0 => {
            Err(format!("process {} cpu_pct {}", p.pid, p.cpu_pct))
        }
        _ => Ok(()),
    }
}

/// Decodes one frame from the hub.
pub fn decode_hub_frame(bytes: &[u8]) -> Result<HubMessage, DecodeError> {
    decode(bytes, HubMessage::TYPES)
}

/// Frames past [`MAX_FRAME_BYTES`] are refused before anything reads them.
fn within_limit(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], types: &[&str]) -> Result<T, DecodeError> {
    within_limit(bytes)?;
    // The fast path parses once; only a failure pays for the diagnosis.
    serde_json::from_slice(bytes).map_err(|source| classify(bytes, types, source))
}

fn classify(bytes: &[u8], types: &[&str], source: serde_json::Error) -> DecodeError {
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        ty: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Tag>(bytes) {
        Err(e) => DecodeError::Malformed(e),
        Ok(Tag { ty: None }) => DecodeError::MissingType,
        Ok(Tag {
            ty: Some(serde_json::Value::String(ty)),
        }) if !types.contains(&ty.as_str()) => DecodeError::UnknownType(ty),
        Ok(Tag {
            ty: Some(serde_json::Value::String(ty)),
        }) => DecodeError::Invalid { ty, source },
        Ok(Tag { ty: Some(other) }) => DecodeError::UnknownType(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bad_frames() {
        assert!(matches!(
            decode_agent_frame(b"{not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_agent_frame(b"[1,2]"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_agent_frame(b"{\"seq\":1}"),
            Err(DecodeError::MissingType)
        ));
        match decode_agent_frame(b"{\"type\":\"teleport\"}") {
            Err(DecodeError::UnknownType(t)) => assert_eq!(t, "teleport"),
            other => panic!("{other:?}"),
        }
        match decode_agent_frame(b"{\"type\":\"sync_diff\",\"seq\":\"x\"}") {
            Err(e @ DecodeError::Invalid { .. }) => {
                assert_eq!(e.code(), ErrorCode::BadFrame);
                assert!(
                    e.to_string().starts_with("invalid \"sync_diff\" message"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        let big = vec![b' '; MAX_FRAME_BYTES + 1];
        assert_eq!(
            decode_agent_frame(&big).unwrap_err().code(),
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn refuses_numbers_that_cannot_travel_back_out() {
        // Found by the fuzzer: 1e39 is past f32::MAX and decoded to infinity.
        let frame = br#"{"type":"metrics","samples":[{"ts_ms":0,"cpu_pct":1e39,"load1":0,"load5":0,"load15":0,"mem_total":0,"mem_used":0,"mem_available":0,"swap_total":0,"swap_used":0,"uptime_secs":0}]}"#;
        let err = decode_agent_frame(frame).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadFrame);
        assert!(
            err.to_string().contains("cpu_pct must be a finite number"),
            "{err}"
        );
        let negative = String::from_utf8_lossy(frame).replace("1e39", "-1");
        assert!(decode_agent_frame(negative.as_bytes()).is_err());
        let fine = String::from_utf8_lossy(frame).replace("1e39", "12.5");
        assert!(decode_agent_frame(fine.as_bytes()).is_ok());
    }

    #[test]
    fn update_reports_round_trip_and_bad_ones_are_refused() {
        let seed = include_bytes!("../../../fuzz/seeds/agent_frame/update_report.json");
        let Ok(AgentMessage::UpdateReport(report)) = decode_agent_frame(seed) else {
            panic!("the seed decodes as an update report");
        };
        assert!(!report.ok);
        let again = serde_json::to_vec(&AgentMessage::UpdateReport(report.clone())).unwrap();
        assert_eq!(
            decode_agent_frame(&again).unwrap(),
            AgentMessage::UpdateReport(report)
        );
        for bad in [
            br#"{"type":"update_report","version":"../x","from_version":"1","ok":true}"#.as_slice(),
            br#"{"type":"update_report","version":"1.0","ok":true}"#.as_slice(),
        ] {
            assert!(decode_agent_frame(bad).is_err());
        }
    }

    #[test]
    fn ignores_unknown_fields_from_newer_peers() {
        let msg = decode_agent_frame(br#"{"type":"heartbeat","ts_ms":5,"from_the_future":true}"#)
            .unwrap();
        assert_eq!(msg, AgentMessage::Heartbeat { ts_ms: 5 });
    }

    #[test]
    fn hub_messages_round_trip() {
        let msg = HubMessage::error(ErrorCode::ResyncRequired, "sequence gap", false);
        let text = serde_json::to_vec(&msg).unwrap();
        assert_eq!(decode_hub_frame(&text).unwrap(), msg);
    }

    /// The fast reader agrees with the derived one, frame for frame: the
    /// frames agents write, and the same with fields moved, missing,
    /// doubled, unknown or of the wrong type.
    #[test]
    fn the_fast_reader_reads_as_the_derived_one() {
        use crate::command::{OutputChunk, Stream};
        use crate::diff::{Change, Collection};
        use crate::model::{NodeState, Sample};
        let mut state = NodeState::default();
        state.host.hostname = "h1".into();
        let messages = [
            AgentMessage::SyncFull {
                seq: 3,
                state: Box::new(state.clone()),
            },
            AgentMessage::SyncDiff {
                seq: 4,
                changes: vec![
                    Change::Remove {
                        collection: Collection::Ports,
                        key: "tcp:22".into(),
                    },
                    Change::Host {
                        value: state.host.clone(),
                    },
                ],
            },
            AgentMessage::Metrics {
                samples: vec![Sample {
                    ts_ms: 5,
                    cpu_pct: 12.5,
                    ..Sample::default()
                }],
            },
            AgentMessage::Heartbeat { ts_ms: 9 },
            AgentMessage::CommandOutput {
                chunks: vec![OutputChunk {
                    id: "c1".into(),
                    stream: Stream::Stdout,
                    data: "hi\n".into(),
                }],
            },
        ];
        let mut frames = Vec::new();
        for msg in &messages {
            let json = serde_json::to_string(msg).unwrap();
            assert!(json.starts_with("{\"type\":\""), "{json}");
            let serde_json::Value::Object(fields) = serde_json::from_str(&json).unwrap() else {
                unreachable!()
            };
            frames.push(json.clone());
            let ty = fields["type"].as_str().unwrap().to_string();
            let others: Vec<(String, serde_json::Value)> = fields
                .iter()
                .filter(|(k, _)| *k != "type")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // The type first (as agents write it), then `rest`.
            let object = |rest: &[(String, serde_json::Value)]| {
                let mut parts = vec![format!("\"type\":\"{ty}\"")];
                parts.extend(rest.iter().map(|(k, v)| format!("{k:?}:{v}")));
                format!("{{{}}}", parts.join(","))
            };
            // Moved: the type last.
            let mut moved: Vec<String> = others.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            moved.push(format!("\"type\":\"{ty}\""));
            frames.push(format!("{{{}}}", moved.join(",")));
            // The type twice; a field from a newer agent.
            let mut doubled = others.clone();
            doubled.push(("type".into(), serde_json::json!(ty)));
            frames.push(object(&doubled));
            let mut newer = others.clone();
            newer.push(("newer".into(), serde_json::json!([1, {}])));
            frames.push(object(&newer));
            // Each other field missing, or of the wrong type.
            for i in 0..others.len() {
                let mut missing = others.clone();
                missing.remove(i);
                frames.push(object(&missing));
                let mut wrong = others.clone();
                wrong[i].1 = serde_json::json!("x");
                frames.push(object(&wrong));
            }
        }
        // Over the size limit: refused as such, however well formed.
        let big = format!(
            r#"{{"type":"heartbeat","pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert!(matches!(
            decode_agent_frame(big.as_bytes()),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut fast_hits = 0;
        for frame in &frames {
            let derived = serde_json::from_str::<AgentMessage>(frame).ok();
            let fast = fast::decode(frame.as_bytes());
            if let Some(fast) = &fast {
                fast_hits += 1;
                assert_eq!(Some(fast), derived.as_ref(), "{frame}");
            }
            // Whichever way, the public reader answers as the derived one.
            assert_eq!(
                decode_agent_frame(frame.as_bytes()).ok(),
                derived,
                "{frame}"
            );
        }
        assert!(
            fast_hits >= messages.len(),
            "the agents' own frames go the fast way"
        );
        for msg in &messages {
            let json = serde_json::to_string(msg).unwrap();
            assert_eq!(fast::decode(json.as_bytes()).as_ref(), Some(msg), "{json}");
        }
    }
}
