//! Sign-in throttling, keyed so that one attacker cannot lock a user out
//! from everywhere:
//!
//! - **account at an address**: failures in a row for one name from one
//!   client address lock that pair out for a while that doubles with every
//!   further failure;
//! - **address**: one address spraying many names is locked out as a whole;
//! - **account**: failures from anywhere slow the name down (at most one
//!   attempt per [`ACCOUNT_PACE`] once it has [`ACCOUNT_FREE`] failures), so a
//!   botnet cannot guess quickly either, but the user's own address is never
//!   locked by someone else's guesses.
//!
//! Pure bookkeeping; the clock is passed in. The address is the client's
//! (through trusted proxies, see `api/client.rs`), not the TCP peer's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed for one name from one address before that pair is locked.
const PAIR_FREE: u32 = 5;
/// Failures allowed from one address (offices share one) before it is locked.
const ADDRESS_FREE: u32 = 20;
/// Failures of one name, from anywhere, before its attempts are paced.
const ACCOUNT_FREE: u32 = 5;
/// Once paced, one attempt per this long for the name, hub-wide.
const ACCOUNT_PACE: Duration = Duration::from_secs(1);
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
    pairs: HashMap<(String, Option<IpAddr>), Failures>,
    addresses: HashMap<IpAddr, Failures>,
    accounts: HashMap<String, Failures>,
}

impl Lockout {
    /// `Err(wait)` while `account` at `address`, or `address`, is locked
    /// out, or the account is paced and its next attempt is not due yet.
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
        let by_pair = locked(inner.pairs.get(&(account.to_string(), address)));
        let by_address = address.and_then(|a| locked(inner.addresses.get(&a)));
        let by_pace = inner
            .accounts
            .get(account)
            .filter(|f| f.count >= ACCOUNT_FREE)
            .map(|f| f.last + ACCOUNT_PACE)
            .filter(|due| *due > now)
            .map(|due| due - now);
        match by_pair.max(by_address).max(by_pace) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a wrong password; returns how many failures in a row the name
    /// has from this address.
    pub fn failed(&self, account: &str, address: Option<IpAddr>, now: Instant) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let count = bump(
            inner.pairs.entry((account.to_string(), address)),
            Some(PAIR_FREE),
            now,
        );
        if let Some(a) = address {
            bump(inner.addresses.entry(a), Some(ADDRESS_FREE), now);
        }
        bump(inner.accounts.entry(account.to_string()), None, now);
        if inner.pairs.len() + inner.addresses.len() + inner.accounts.len() > MAX_ENTRIES {
            let recent = |f: &Failures| now.duration_since(f.last) < MAX * 2;
            inner.pairs.retain(|_, f| recent(f));
            inner.addresses.retain(|_, f| recent(f));
            inner.accounts.retain(|_, f| recent(f));
        }
        count
    }

    /// The right password: the name starts afresh, here and hub-wide, and so
    /// does the address.
    pub fn succeeded(&self, account: &str, address: Option<IpAddr>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.pairs.remove(&(account.to_string(), address));
        inner.accounts.remove(account);
        if let Some(a) = address {
            inner.addresses.remove(&a);
        }
    }
}

/// Counts one failure; `free` failures in a row start a doubling lockout
/// (`None`: counted, never locked).
fn bump<K>(
    entry: std::collections::hash_map::Entry<'_, K, Failures>,
    free: Option<u32>,
    now: Instant,
) -> u32 {
    let f = entry.or_insert(Failures {
        count: 0,
        until: None,
        last: now,
    });
    f.count = f.count.saturating_add(1);
    f.last = now;
    if let Some(free) = free.filter(|free| f.count >= *free) {
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
    const OTHER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9)));

    #[test]
    fn five_failures_lock_the_name_at_that_address_for_a_doubling_while() {
        let l = Lockout::default();
        let t = Instant::now();
        for _ in 0..4 {
            l.failed("admin", ADDR, t);
            assert!(l.check("admin", ADDR, t + ACCOUNT_PACE).is_ok());
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
        assert!(l.check("alice", ADDR, t + BASE).is_ok());
    }

    #[test]
    fn an_attacker_elsewhere_cannot_lock_the_user_out_but_is_paced() {
        let l = Lockout::default();
        let t = Instant::now();
        for _ in 0..ADDRESS_FREE {
            l.failed("admin", OTHER, t);
        }
        assert!(l.check("admin", OTHER, t + BASE).is_err());
        // The user's own address only waits out the pace, never the lockout.
        assert_eq!(l.check("admin", ADDR, t), Err(ACCOUNT_PACE));
        assert!(l.check("admin", ADDR, t + ACCOUNT_PACE).is_ok());
        // Hub-wide, the name takes one guess per pace however many addresses try.
        let t2 = t + ACCOUNT_PACE;
        l.failed("admin", Some(IpAddr::from([203, 0, 113, 1])), t2);
        assert!(
            l.check("admin", Some(IpAddr::from([203, 0, 113, 2])), t2)
                .is_err()
        );
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
        assert!(l.check("someone-else", OTHER, t).is_ok());
    }
}
