//! SMTP email with lettre: STARTTLS (required), TLS from the first byte,
//! or plain for a relay on the LAN; a multipart message with a text and an
//! HTML part.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Note;
use super::target::{Encryption, Target};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML part: the title and a list of the lines.
pub fn html(note: &Note) -> String {
    let colour = if note.firing { "#b42318" } else { "#067647" };
    let items: String = note
        .lines
        .iter()
        .map(|l| format!("<li>{}</li>", escape(l)))
        .collect();
    format!(
        "<!doctype html><html><body><h2 style=\"color:{colour}\">{}</h2><ul>{items}</ul>\
         <p style=\"color:#667085\">sent by twinbay</p></body></html>",
        escape(&note.title)
    )
}

/// Builds the message (pure, for tests).
pub fn message(from: &str, to: &[String], note: &Note) -> Result<Message, String> {
    let from: Mailbox = from.parse().map_err(|e| format!("from: {e}"))?;
    let mut builder = Message::builder().from(from).subject(note.title.clone());
    for t in to {
        builder = builder.to(t.parse::<Mailbox>().map_err(|e| format!("to {t}: {e}"))?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(note.text(), html(note)))
        .map_err(|e| format!("the message could not be built: {e}"))
}

pub async fn send(target: &Target, note: &Note) -> Result<(), String> {
    let Target::Email {
        host,
        port,
        encryption,
        credentials,
        from,
        to,
    } = target
    else {
        return Err("not an email channel".into());
    };
    let place = format!("{host}:{port}");
    let tls =
        |host: &str| TlsParameters::new(host.to_string()).map_err(|e| format!("{place}: TLS: {e}"));
    let tls = match encryption {
        Encryption::StartTls => Tls::Required(tls(host)?),
        Encryption::Tls => Tls::Wrapper(tls(host)?),
        Encryption::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(*port)
        .tls(tls)
        .timeout(Some(std::time::Duration::from_secs(15)));
    if let Some((user, pass)) = credentials {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    let mailer = builder.build();
    mailer
        .send(message(from, to, note)?)
        .await
        .map(|_| ())
        .map_err(|e| format!("{place}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_multipart_text_and_html() {
        let note = Note {
            firing: true,
            title: "[firing] disk on nas".into(),
            lines: vec!["disk / at 95 % on <nas>".into()],
        };
        let m = message("hub@example.org", &["ops@example.org".into()], &note).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("Subject: [firing] disk on nas"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain"), "{text}");
        assert!(text.contains("text/html"), "{text}");
        assert!(text.contains("&lt;nas&gt;"), "{text}");
        assert!(message("nope", &["ops@example.org".into()], &note).is_err());
    }
}
