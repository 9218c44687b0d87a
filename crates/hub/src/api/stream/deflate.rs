//! Compressed stream frames (`/api/v1/stream?compress=deflate`): a large
//! message goes as a binary frame holding its JSON in zlib format, which a
//! browser inflates with `DecompressionStream("deflate")`; small ones stay
//! text. (The WebSocket stack, tungstenite 0.29, has no permessage-deflate.)

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};

/// Messages shorter than this go as text: compressing them saves little.
pub const MIN_BYTES: usize = 4 * 1024;
/// miniz's fastest level: JSON of a fleet still shrinks about tenfold, and
/// the hub spends its time on agents, not on squeezing the last bytes.
const LEVEL: u8 = 1;

/// Compresses `text` (zlib format).
pub fn zlib(text: &str) -> Bytes {
    Bytes::from(miniz_oxide::deflate::compress_to_vec_zlib(
        text.as_bytes(),
        LEVEL,
    ))
}

/// The frame for `text`: binary and compressed when `compress` is on and
/// the text is large, else the text itself.
pub fn frame(text: Utf8Bytes, compress: bool) -> Message {
    if compress && text.len() >= MIN_BYTES {
        Message::Binary(zlib(text.as_str()))
    } else {
        Message::Text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_are_compressed_and_inflate_back() {
        let json = format!(
            r#"{{"type":"summaries","nodes":[{}]}}"#,
            vec![r#"{"id":"n","hostname":"web","connected":true}"#; 500].join(",")
        );
        let Message::Binary(zipped) = frame(json.clone().into(), true) else {
            panic!("a large message goes compressed");
        };
        assert!(
            zipped.len() * 10 < json.len(),
            "{} of {}",
            zipped.len(),
            json.len()
        );
        let back = miniz_oxide::inflate::decompress_to_vec_zlib(&zipped).unwrap();
        assert_eq!(back, json.as_bytes());
        assert!(matches!(frame(json.into(), false), Message::Text(_)));
        assert!(matches!(
            frame(r#"{"type":"x"}"#.into(), true),
            Message::Text(_)
        ));
    }
}
