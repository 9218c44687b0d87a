//! How many connections the hub holds, and from whom: the accept loop's
//! bookkeeping, without I/O.
//!
//! A connection is *unproven* from accept until it shows who is at the other
//! end: an agent whose signed hello verified, or an authenticated request
//! for the live stream. Unproven connections are capped in total and per
//! client address; every connection, proven or not, counts against a ceiling
//! derived from the open-files limit, which leaves a reserve of files for
//! the store. Over any limit a connection is refused before it costs
//! anything (no TLS, no task).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Files kept free for everything that is not a client socket: SQLite's
/// database, WAL and shared-memory files for each pooled connection and its
/// temporary files, the listener, the runtime, logs, and (in `twinbay up`)
/// the local agent's reads of `/proc`. An idle hub holds about 30.
pub const FD_RESERVE: u64 = 128;

/// The largest default for unproven connections, whatever the open-files
/// limit: each costs memory (about 15 KiB for one that trickles headers).
pub const MAX_UNPROVEN_DEFAULT: usize = 16_384;

/// The default cap on unproven connections per client address. Generous:
/// a household or office behind one NAT address shares it.
pub const PER_ADDRESS_DEFAULT: usize = 256;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, proven or not (the open-files limit minus
    /// [`FD_RESERVE`]).
    pub max_open: usize,
    /// Unproven connections at once.
    pub max_unproven: usize,
    /// Unproven connections at once from one address (IPv4) or /64 (IPv6).
    pub max_unproven_per_address: usize,
}

impl Limits {
    /// The limits for an open-files limit of `nofile` (`None`: unlimited),
    /// with the configured caps (`None`: the default). Half the file budget
    /// at most goes to unproven connections, so agents and UI streams keep
    /// the other half during an attack.
    pub fn derive(
        nofile: Option<u64>,
        max_unproven: Option<usize>,
        per_address: usize,
    ) -> Result<Limits, String> {
        let budget = match nofile {
            Some(n) if n <= FD_RESERVE + 1 => {
                return Err(format!(
                    "the open files limit ({n}) is too low for a hub; raise it (ulimit -n) above {}",
                    FD_RESERVE + 1
                ));
            }
            Some(n) => usize::try_from(n - FD_RESERVE).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let max_unproven = match max_unproven {
            None => (budget / 2).min(MAX_UNPROVEN_DEFAULT),
            Some(0) => return Err("--max-connections must be at least 1".into()),
            Some(n) if n > budget => {
                return Err(format!(
                    "--max-connections {n} is more than the open files limit allows \
                     ({budget}: the limit minus {FD_RESERVE} kept for the store); \
                     raise the limit (ulimit -n) or lower --max-connections"
                ));
            }
            Some(n) => n,
        };
        if per_address == 0 {
            return Err("--max-connections-per-ip must be at least 1".into());
        }
        Ok(Limits {
            max_open: budget,
            max_unproven,
            max_unproven_per_address: per_address.min(max_unproven),
        })
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every file the limits allow for sockets is in use.
    Open,
    /// Too many unproven connections in total.
    Unproven,
    /// Too many unproven connections from this address.
    PerAddress,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Open => "open_files",
            Refused::Unproven => "unproven",
            Refused::PerAddress => "per_address",
        }
    }
}

/// What is counted per address: an IPv4 address, or an IPv6 /64 (one
/// subscriber's prefix; a single host can use every address in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    V6(u64),
}

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.into()),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The counts at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub open: usize,
    pub unproven: usize,
    /// Addresses with unproven connections.
    pub addresses: usize,
    /// Refused since start, by [`Refused`] reason: open, unproven, per address.
    pub refused: [u64; 3],
}

/// The hub's connections; shared by the accept loop and whoever proves one.
#[derive(Debug, Clone)]
pub struct Connections(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limits: Limits,
    state: Mutex<State>,
    refused: [AtomicU64; 3],
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    /// The most open at once since [`Connections::take_peak`].
    peak: usize,
    unproven: usize,
    per_address: HashMap<AddressKey, usize>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The counts stay consistent under any panic (each update is one
        // step), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Connections {
    pub fn new(limits: Limits) -> Connections {
        Connections(Arc::new(Inner {
            limits,
            state: Mutex::default(),
            refused: Default::default(),
        }))
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    /// Counts a new connection from `ip` as open and unproven, or refuses it.
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refused> {
        let key = AddressKey::of(ip);
        let limits = &self.0.limits;
        let mut state = self.0.state();
        let from_here = state.per_address.get(&key).copied().unwrap_or(0);
        let refused = if state.open >= limits.max_open {
            Some(Refused::Open)
        } else if state.unproven >= limits.max_unproven {
            Some(Refused::Unproven)
        } else if from_here >= limits.max_unproven_per_address {
            Some(Refused::PerAddress)
        } else {
            None
        };
        if let Some(reason) = refused {
            drop(state);
            self.0.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
            return Err(reason);
        }
        state.open += 1;
        state.peak = state.peak.max(state.open);
        state.unproven += 1;
        state.per_address.insert(key, from_here + 1);
        drop(state);
        Ok(Admission(Arc::new(Slot {
            inner: self.0.clone(),
            key,
            proven: AtomicBool::new(false),
        })))
    }

    /// The most connections open at once since the last call, and now.
    pub fn take_peak(&self) -> (usize, usize) {
        let mut state = self.0.state();
        let (peak, open) = (state.peak, state.open);
        state.peak = open;
        (peak, open)
    }

    pub fn counts(&self) -> Counts {
        let state = self.0.state();
        Counts {
            open: state.open,
            unproven: state.unproven,
            addresses: state.per_address.len(),
            refused: [0, 1, 2].map(|i| self.0.refused[i].load(Ordering::Relaxed)),
        }
    }
}

/// One admitted connection. Clones share it; it stays counted as open until
/// the last clone is dropped (the socket holds one), and as unproven until
/// [`Admission::prove`] or that drop.
#[derive(Debug, Clone)]
pub struct Admission(Arc<Slot>);

#[derive(Debug)]
struct Slot {
    inner: Arc<Inner>,
    key: AddressKey,
    proven: AtomicBool,
}

impl Admission {
    /// The other end has shown who it is: stop counting this connection
    /// against the unproven caps. Idempotent.
    pub fn prove(&self) {
        if !self.0.proven.swap(true, Ordering::AcqRel) {
            let mut state = self.0.inner.state();
            state.release_unproven(self.0.key);
        }
    }
}

impl State {
    fn release_unproven(&mut self, key: AddressKey) {
        self.unproven -= 1;
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        state.open -= 1;
        if !*self.proven.get_mut() {
            state.release_unproven(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(open: usize, unproven: usize, per_address: usize) -> Connections {
        Connections::new(Limits {
            max_open: open,
            max_unproven: unproven,
            max_unproven_per_address: per_address,
        })
    }

    #[test]
    fn one_address_is_refused_at_its_cap_and_others_still_get_in() {
        let c = limits(100, 100, 2);
        let a1 = c.admit(ip("10.0.0.1")).unwrap();
        let _a2 = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.1")).unwrap_err(), Refused::PerAddress);
        let _b = c.admit(ip("10.0.0.2")).unwrap();
        drop(a1);
        let _a3 = c.admit(ip("10.0.0.1")).unwrap();
        let counts = c.counts();
        assert_eq!((counts.open, counts.unproven, counts.addresses), (3, 3, 2));
        assert_eq!(counts.refused, [0, 0, 1]);
    }

    #[test]
    fn the_total_cap_refuses_every_address() {
        let c = limits(100, 2, 10);
        let _a = c.admit(ip("10.0.0.1")).unwrap();
        let _b = c.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.3")).unwrap_err(), Refused::Unproven);
    }

    #[test]
    fn a_proven_connection_frees_its_unproven_slot_but_stays_open() {
        let c = limits(3, 1, 1);
        let agent = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.1")).unwrap_err(), Refused::Unproven);
        agent.prove();
        agent.prove(); // idempotent
        let _next = c.admit(ip("10.0.0.1")).unwrap();
        let counts = c.counts();
        assert_eq!((counts.open, counts.unproven, counts.addresses), (2, 1, 1));
        drop(agent);
        assert_eq!(c.counts().open, 1);
        assert_eq!(c.counts().unproven, 1);
    }

    #[test]
    fn proven_connections_still_count_against_the_file_ceiling() {
        let c = limits(2, 2, 2);
        let a = c.admit(ip("10.0.0.1")).unwrap();
        let b = c.admit(ip("10.0.0.2")).unwrap();
        a.prove();
        b.prove();
        assert_eq!(c.admit(ip("10.0.0.3")).unwrap_err(), Refused::Open);
        drop(a);
        assert!(c.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn clones_keep_the_connection_counted_until_the_last_is_dropped() {
        let c = limits(10, 10, 10);
        let socket = c.admit(ip("10.0.0.1")).unwrap();
        let request = socket.clone();
        drop(socket);
        assert_eq!(c.counts().open, 1);
        drop(request);
        assert_eq!(c.counts(), Counts::default());
    }

    #[test]
    fn the_peak_is_the_most_open_at_once_since_it_was_last_taken() {
        let c = limits(10, 10, 10);
        let held: Vec<_> = (0..3).map(|_| c.admit(ip("10.0.0.1")).unwrap()).collect();
        drop(held);
        let _one = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.take_peak(), (3, 1));
        assert_eq!(c.take_peak(), (1, 1));
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_share_a_cap_and_mapped_ipv4_is_ipv4() {
        let c = limits(10, 10, 2);
        let _a = c.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = c.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            c.admit(ip("2001:db8:1:2::3")).unwrap_err(),
            Refused::PerAddress
        );
        let _other = c.admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(
            AddressKey::of(ip("::ffff:192.0.2.7")),
            AddressKey::of(ip("192.0.2.7"))
        );
    }

    #[test]
    fn defaults_derive_from_the_open_files_limit() {
        // systemd's usual soft limit: half of what is left after the reserve.
        let l = Limits::derive(Some(1024), None, PER_ADDRESS_DEFAULT).unwrap();
        assert_eq!(l.max_open, 1024 - FD_RESERVE as usize);
        assert_eq!(l.max_unproven, (1024 - FD_RESERVE as usize) / 2);
        assert_eq!(l.max_unproven_per_address, PER_ADDRESS_DEFAULT);
        // A large limit: the memory ceiling applies.
        let l = Limits::derive(Some(1 << 20), None, 256).unwrap();
        assert_eq!(l.max_unproven, MAX_UNPROVEN_DEFAULT);
        let l = Limits::derive(None, None, 256).unwrap();
        assert_eq!(l.max_unproven, MAX_UNPROVEN_DEFAULT);
        // A per-address cap above the total is the total.
        let l = Limits::derive(Some(1024), Some(100), 256).unwrap();
        assert_eq!(l.max_unproven_per_address, 100);
    }

    #[test]
    fn impossible_limits_are_refused() {
        assert!(Limits::derive(Some(1024), Some(5000), 256).is_err());
        assert!(Limits::derive(Some(1024), Some(0), 256).is_err());
        assert!(Limits::derive(Some(1024), None, 0).is_err());
        assert!(Limits::derive(Some(100), None, 256).is_err());
        assert!(Limits::derive(Some(1024), Some(896), 256).is_ok());
    }
}
