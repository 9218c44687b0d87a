//! ntfy, Gotify, Discord, Slack and Telegram: each request shaped as the
//! service documents it.
//!
//! - ntfy: `POST /<topic>`, the message as the body, `Title`, `Priority`
//!   (1–5) and `Tags` headers, `Authorization: Bearer <token>` (or Basic).
//! - Gotify: `POST /message?token=<app token>`, JSON `title`, `message`,
//!   `priority`.
//! - Discord: `POST` the webhook URL, JSON `content` (≤ 2,000 characters)
//!   and `username`.
//! - Slack: `POST` the incoming-webhook URL, JSON `text`.
//! - Telegram: `POST /bot<token>/sendMessage`, JSON `chat_id` and `text`
//!   (≤ 4,096 characters), once per chat.

use base64::Engine;
use http::{HeaderName, header};
use serde_json::json;

use super::Note;
use super::http::post;
use super::target::{Auth, Target};

fn cut(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((i, _)) => {
            let mut t = text[..i].to_string();
            t.pop();
            t.push('…');
            t
        }
    }
}

/// A header value: ASCII as is, else RFC 2047 (`=?UTF-8?B?…?=`), which
/// ntfy decodes.
pub fn header_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(clean.as_bytes());
        format!("=?UTF-8?B?{b64}?=")
    }
}

fn json_type() -> (HeaderName, String) {
    (header::CONTENT_TYPE, "application/json".into())
}

pub async fn send(target: &Target, note: &Note) -> Result<(), String> {
    match target {
        Target::Ntfy {
            url,
            auth,
            priority,
        } => {
            let priority = match note.firing {
                true => priority.unwrap_or(4),
                false => 3,
            };
            let mut headers = vec![
                (header::CONTENT_TYPE, "text/plain; charset=utf-8".into()),
                (HeaderName::from_static("title"), header_text(&note.title)),
                (HeaderName::from_static("priority"), priority.to_string()),
                (
                    HeaderName::from_static("tags"),
                    match note.firing {
                        true => "rotating_light,twinbay",
                        false => "white_check_mark,twinbay",
                    }
                    .into(),
                ),
            ];
            match auth {
                Some(Auth::Bearer(t)) => {
                    headers.push((header::AUTHORIZATION, format!("Bearer {t}")))
                }
                Some(Auth::Basic(u, p)) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                    headers.push((header::AUTHORIZATION, format!("Basic {b64}")));
                }
                None => {}
            }
            post(url, &headers, note.text().into_bytes()).await
        }
        Target::Gotify { url, priority } => {
            let priority = match note.firing {
                true => priority.unwrap_or(8),
                false => 4,
            };
            let body = json!({"title": note.title, "message": note.text(), "priority": priority});
            post(url, &[json_type()], body.to_string().into_bytes()).await
        }
        Target::Discord { url } => {
            let content = cut(format!("**{}**\n{}", note.title, note.text()), 2000);
            let body = json!({"username": "twinbay", "content": content});
            post(url, &[json_type()], body.to_string().into_bytes()).await
        }
        Target::Slack { url } => {
            let body = json!({"text": format!("*{}*\n{}", note.title, note.text())});
            post(url, &[json_type()], body.to_string().into_bytes()).await
        }
        Target::Telegram { url, chats } => {
            let text = cut(format!("{}\n{}", note.title, note.text()), 4096);
            for chat in chats {
                let body = json!({"chat_id": chat, "text": text, "disable_web_page_preview": true});
                post(url, &[json_type()], body.to_string().into_bytes())
                    .await
                    .map_err(|e| format!("chat {chat}: {e}"))?;
            }
            Ok(())
        }
        Target::Webhook { .. } | Target::Email { .. } => Err("not an HTTP service channel".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(cut("abc".into(), 5), "abc");
        assert_eq!(cut("abcdef".into(), 4), "abc…");
        assert_eq!(cut("ééééé".into(), 3).chars().count(), 3);
    }

    #[test]
    fn non_ascii_titles_are_encoded() {
        assert_eq!(header_text("host down"), "host down");
        assert_eq!(header_text("Ü"), "=?UTF-8?B?w5w=?=");
        assert_eq!(header_text("a\r\nb"), "ab");
    }
}
