//! `uname -a` and `uname -m`.

use crate::{ParseError, excerpt};

/// What `uname -a` says: `Linux HOST RELEASE VERSION… MACHINE [PROCESSOR PLATFORM] OS`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Uname {
    pub hostname: String,
    pub kernel: String,
    pub arch: String,
}

/// Machine names `uname` prints for the architectures twinbay knows.
const MACHINES: &[&str] = &[
    "x86_64",
    "aarch64",
    "arm64",
    "armv7l",
    "armv6l",
    "armv5tel",
    "i686",
    "i586",
    "i386",
    "mips",
    "mipsel",
    "mips64",
    "riscv64",
    "ppc64le",
    "s390x",
    "loongarch64",
];

/// Parses `uname -a`. The version field has spaces, so the machine is found
/// from the end: GNU prints `… MACHINE [PROCESSOR PLATFORM] GNU/Linux`,
/// BusyBox `… MACHINE GNU/Linux` or `… MACHINE Linux`.
pub fn uname_a(text: &str) -> Result<Uname, ParseError> {
    let err = |why: &str| ParseError::new("uname -a", format!("{why} in {}", excerpt(text)));
    let line = text.lines().next().unwrap_or("").trim();
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    if f.first() != Some(&"Linux") {
        return Err(err("not a Linux kernel"));
    }
    if f.len() < 5 {
        return Err(err("too few fields"));
    }
    let tail = &f[3..f.len() - 1];
    let arch = tail
        .iter()
        .rev()
        .find(|w| MACHINES.contains(w))
        .or_else(|| tail.iter().rev().find(|w| **w != "unknown"))
        .ok_or_else(|| err("no machine name"))?;
    Ok(Uname {
        hostname: f[1].to_string(),
        kernel: f[2].to_string(),
        arch: arch.to_string(),
    })
}

/// Parses `uname -m`: one word.
pub fn uname_m(text: &str) -> Result<String, ParseError> {
    let t = text.trim();
    if t.is_empty() || t.contains(char::is_whitespace) || t.len() > 32 {
        return Err(ParseError::new(
            "uname -m",
            format!("expected one machine name, got {}", excerpt(text)),
        ));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_unames() {
        let d = uname_a(include_str!("../testdata/debian/uname_a")).unwrap();
        assert_eq!((d.hostname.as_str(), d.arch.as_str()), ("vm", "x86_64"));
        assert_eq!(d.kernel, "6.18.44-fc-v1147");
        let b = uname_a(include_str!("../testdata/busybox/uname_a")).unwrap();
        assert_eq!(b.arch, "x86_64");
        let a = uname_a(include_str!("../testdata/busybox/uname_a_alpine")).unwrap();
        assert_eq!((a.hostname.as_str(), a.arch.as_str()), ("nas", "aarch64"));
        let o = uname_a(include_str!("../testdata/openwrt/uname_a")).unwrap();
        assert_eq!(
            (o.hostname.as_str(), o.kernel.as_str(), o.arch.as_str()),
            ("OpenWrt", "5.15.150", "mips")
        );
        assert_eq!(
            uname_m(include_str!("../testdata/debian/uname_m")).unwrap(),
            "x86_64"
        );
    }

    #[test]
    fn garbage_and_truncated() {
        assert!(
            uname_a("")
                .unwrap_err()
                .to_string()
                .starts_with("uname -a: not a Linux kernel")
        );
        assert!(
            uname_a("Linux vm")
                .unwrap_err()
                .to_string()
                .contains("too few fields")
        );
        assert!(uname_a("Darwin mac 23.0 x86_64").is_err());
        assert!(uname_m("x86 64").is_err());
        assert!(uname_m("").is_err());
    }
}
