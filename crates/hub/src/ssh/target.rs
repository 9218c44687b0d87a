//! Pure parts of talking to a host over SSH: the `ssh://USER@HOST[:PORT]`
//! target and the quoting of an argv into the one command line SSH carries.

use std::fmt;

/// Where a host is reached: `ssh://USER@HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    /// A name or an address (IPv6 without its brackets).
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parses `ssh://USER@HOST[:PORT]` (the `ssh://` prefix may be left out).
    /// The user is required; port 22 when absent; nothing after the port.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let rest = text.strip_prefix("ssh://").unwrap_or(text);
        let (user, hostport) = rest
            .split_once('@')
            .ok_or_else(|| format!("{text:?}: expected ssh://USER@HOST[:PORT]"))?;
        if user.is_empty() || !user.chars().all(is_user_char) {
            return Err(format!("{text:?}: the user name {user:?} is not valid"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ in the address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{text:?}: {host:?} is not an IPv6 address"));
            }
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("{text:?}: expected :PORT after the address"))?,
                    ),
                ),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let v6 = hostport.starts_with('[');
        if host.is_empty()
            || host.len() > 253
            || (!v6
                && !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(format!("{text:?}: {host:?} is not a host name or address"));
        }
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{text:?}: {p:?} is not a port (1-65535)")),
            },
        };
        Ok(Target {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` for a socket connect (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '$')
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh://{}@{}", self.user, self.address())
    }
}

/// One word for a POSIX shell: left bare when it holds only safe
/// characters, else in single quotes (a `'` inside as `'\''`).
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '+' | ',' | '@' | '%')
        })
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The command line for `argv`: each word quoted, joined by spaces. The
/// remote login shell splits it back into exactly these words.
pub fn command_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn targets() {
        let t = Target::parse("ssh://ops@db1.example.org:2222").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("ops", "db1.example.org", 2222)
        );
        assert_eq!(t.to_string(), "ssh://ops@db1.example.org:2222");
        assert_eq!(Target::parse("root@10.0.0.1").unwrap().port, 22);
        let v6 = Target::parse("ssh://a@[::1]:22").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.address(), "[::1]:22");
        for bad in [
            "ssh://host",
            "ssh://@host",
            "ssh://u@",
            "ssh://u@h:0",
            "ssh://u@h:99999",
            "ssh://u@h:22/path",
            "ssh://u;rm@h",
            "ssh://u@[::1",
            "ssh://u@[nothost]:22",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("uname"), "uname");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
    }

    proptest! {
        /// Any argv survives a real shell's word splitting unchanged.
        #[test]
        fn the_shell_reads_back_each_word(argv in proptest::collection::vec(
            "[ -~\\t\\n]{0,12}", 1..5)) {
            let line = command_line(&argv);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
                .output()
                .unwrap();
            let words: Vec<String> = out.stdout.split(|b| *b == 0)
                .filter(|_| true)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            // printf leaves a trailing NUL, so one empty piece at the end.
            prop_assert_eq!(&words[..words.len() - 1], &argv[..]);
        }

        /// Parsing never panics, and what parses prints back to itself.
        #[test]
        fn parse_round_trips(text in "(ssh://)?[a-z@:\\[\\]0-9.]{0,30}") {
            if let Ok(t) = Target::parse(&text) {
                prop_assert_eq!(Target::parse(&t.to_string()).unwrap(), t);
            }
        }
    }
}
