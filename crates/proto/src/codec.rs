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
    let msg = decode(bytes, AgentMessage::TYPES)?;
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

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], types: &[&str]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
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
}
