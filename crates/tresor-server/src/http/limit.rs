//! Failed authentication is rate-limited per client address: after [`MAX_FAILURES`] failures
//! within [`WINDOW`], that address gets 429 until the window passes, before any token lookup. An
//! IPv6 client counts as its /64 (one host holds a whole /64 to rotate through).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may have within [`WINDOW`].
pub const MAX_FAILURES: u32 = 20;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest windows are dropped first beyond it).
const MAX_ADDRESSES: usize = 10_000;

/// Failures per client address, in their current window.
#[derive(Default)]
pub(crate) struct Failures {
    by_address: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// What failures are counted under: the address, or an IPv6 address's /64.
fn client(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

impl Failures {
    /// Whether `address` is over its limit now.
    pub(crate) fn limited(&self, address: IpAddr) -> bool {
        let address = client(address);
        let map = self.by_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&address).is_some_and(|(start, count)| start.elapsed() < WINDOW && *count >= MAX_FAILURES)
    }

    /// Counts a failed authentication from `address`.
    pub(crate) fn record(&self, address: IpAddr) {
        let address = client(address);
        let mut map = self.by_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, (start, _)| start.elapsed() < WINDOW);
            if map.len() >= MAX_ADDRESSES
                && let Some(oldest) = map.iter().min_by_key(|(_, (start, _))| *start).map(|(a, _)| *a)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(address).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_after_its_failures_and_others_are_not() {
        let f = Failures::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES - 1 {
            f.record(a);
        }
        assert!(!f.limited(a));
        f.record(a);
        assert!(f.limited(a));
        assert!(!f.limited(b));
    }

    #[test]
    fn an_ipv6_client_counts_as_its_slash_64() {
        let f = Failures::default();
        for i in 0..MAX_FAILURES {
            f.record(format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap());
        }
        assert!(f.limited("2001:db8:1:2:ffff::9".parse().unwrap()), "another address of the same /64");
        assert!(!f.limited("2001:db8:1:3::1".parse().unwrap()), "another /64");
        f.record("::ffff:10.0.0.9".parse().unwrap());
        assert!(!f.limited("10.0.0.9".parse().unwrap()));
    }
}
