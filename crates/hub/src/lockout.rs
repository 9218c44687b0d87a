//! Sign-in throttling: failures in a row, per account name and per client
//! address, lock that name (or address) out for a while that doubles with
//! every further failure. Pure bookkeeping; the clock is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before an account name is locked.
const ACCOUNT_FREE: u32 = 5;
/// Failures allowed from one address (offices share one) before it is locked.
const ADDRESS_FREE: u32 = 20;
/// The first lockout; each further failure doubles it.
const BASE: Duration = Duration::from_secs(30);
/// The longest lockout.
const MAX: Duration = Duration::from_secs(15 * 60);
/// Entries kept before quiet ones are forgotten (bounds memory under a spray).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    until: Option<Instant>,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct Lockout {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

impl Lockout {
    /// `Err(wait)` while `account` or `address` is locked out.
    pub fn check(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let locked = |f: Option<&Failures>| {
            f.and_then(|f| f.until)
                .filter(|until| *until > now)
                .map(|until| until - now)
        };
        let by_account = locked(inner.accounts.get(account));
        let by_address = address.and_then(|a| locked(inner.addresses.get(&a)));
        match by_account.max(by_address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a wrong password; returns how many failures in a row the account has.
    pub fn failed(&self, account: &str, address: Option<IpAddr>, now: Instant) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let count = bump(inner.accounts.entry(account.to_string()), ACCOUNT_FREE, now);
        if let Some(a) = address {
            bump(inner.addresses.entry(a), ADDRESS_FREE, now);
        }
        if inner.accounts.len() + inner.addresses.len() > MAX_ENTRIES {
            let quiet = |f: &Failures| now.duration_since(f.last) < MAX * 2;
            inner.accounts.retain(|_, f| quiet(f));
            inner.addresses.retain(|_, f| quiet(f));
        }
        count
    }

    /// The right password: the account starts afresh (the address too).
    pub fn succeeded(&self, account: &str, address: Option<IpAddr>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.accounts.remove(account);
        if let Some(a) = address {
            inner.addresses.remove(&a);
        }
    }
}

fn bump<K>(
    entry: std::collections::hash_map::Entry<'_, K, Failures>,
    free: u32,
    now: Instant,
) -> u32 {
    let f = entry.or_insert(Failures {
        count: 0,
        until: None,
        last: now,
    });
    f.count += 1;
    f.last = now;
    if f.count >= free {
        let doublings = (f.count - free).min(16);
        f.until = Some(now + BASE.saturating_mul(1 << doublings).min(MAX));
    }
    f.count
}

/// How long to wait before answering a wrong password: a little more with
/// every failure in a row, so guessing is slow even before the lockout.
pub fn failure_delay(failures: u32) -> Duration {
    Duration::from_millis(250 * u64::from(failures.min(8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn five_failures_lock_the_account_for_a_doubling_while() {
        let l = Lockout::default();
        let t = Instant::now();
        for _ in 0..4 {
            l.failed("admin", ADDR, t);
            assert!(l.check("admin", ADDR, t).is_ok());
        }
        l.failed("admin", ADDR, t);
        assert_eq!(l.check("admin", ADDR, t), Err(BASE));
        // Still locked just before the end, free after it.
        assert!(
            l.check("admin", ADDR, t + BASE - Duration::from_secs(1))
                .is_err()
        );
        assert!(l.check("admin", ADDR, t + BASE).is_ok());
        // The next failure doubles it; other accounts are not affected.
        l.failed("admin", ADDR, t + BASE);
        assert_eq!(l.check("admin", ADDR, t + BASE), Err(BASE * 2));
        assert!(l.check("alice", None, t + BASE).is_ok());
    }

    #[test]
    fn lockouts_are_capped_and_success_starts_afresh() {
        let l = Lockout::default();
        let t = Instant::now();
        for _ in 0..40 {
            l.failed("admin", None, t);
        }
        assert_eq!(l.check("admin", None, t), Err(MAX));
        l.succeeded("admin", None);
        assert!(l.check("admin", None, t).is_ok());
    }

    #[test]
    fn one_address_spraying_many_accounts_is_locked() {
        let l = Lockout::default();
        let t = Instant::now();
        for i in 0..ADDRESS_FREE {
            l.failed(&format!("user{i}"), ADDR, t);
        }
        assert!(l.check("someone-else", ADDR, t).is_err());
        assert!(l.check("someone-else", None, t).is_ok());
    }
}
