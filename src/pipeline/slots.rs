//! Which ready (repository, mirror) pairs may start now, so hung or slow mirrors never keep
//! healthy ones waiting (no I/O; the worker asks before each start).
//!
//! `max_parallel` bounds the updates running at once, with one twist: an update running longer
//! than [`SLOW_AFTER`] is *slow*, and slow updates together never hold more than
//! `max_parallel - 1` slots. So however many mirrors hang (a host that accepts connections and
//! never answers holds a push until its `timeout`), one slot is always free for the others
//! within a few seconds. A host with a slow update, or one whose update was slow lately, is
//! *suspect*: its next updates start only while fewer than `max_parallel - 1` updates run in
//! all, so a hung host cannot take the reserved slot, and never runs more than that at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An update running longer than this no longer counts against the slot kept for others.
pub const SLOW_AFTER: Duration = Duration::from_secs(3);

/// How long a host whose update was slow stays suspect.
const SUSPECT_FOR: Duration = Duration::from_secs(15 * 60);

/// The running updates, and hosts that were slow lately.
#[derive(Debug)]
pub struct Slots<K: Ord + Clone> {
    running: BTreeMap<K, (String, Instant)>,
    slow_hosts: BTreeMap<String, Instant>,
}

impl<K: Ord + Clone> Default for Slots<K> {
    fn default() -> Self {
        Slots {
            running: BTreeMap::new(),
            slow_hosts: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Slots<K> {
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    pub fn is_running(&self, key: &K) -> bool {
        self.running.contains_key(key)
    }

    fn is_slow(started: Instant, now: Instant) -> bool {
        now.saturating_duration_since(started) >= SLOW_AFTER
    }

    /// Slots taken, counting slow updates only up to `max_parallel - 1`.
    fn taken(&self, max_parallel: usize, now: Instant) -> usize {
        let slow = self.running.values().filter(|(_, t)| Self::is_slow(*t, now)).count();
        let fast = self.running.len() - slow;
        fast + slow.min(max_parallel.saturating_sub(1))
    }

    /// Whether any update may start now (cheap: lets the caller stop looking).
    pub fn any_free(&self, max_parallel: usize, now: Instant) -> bool {
        self.taken(max_parallel, now) < max_parallel
    }

    fn is_suspect(&self, host: &str, now: Instant) -> bool {
        self.slow_hosts
            .get(host)
            .is_some_and(|t| now.saturating_duration_since(*t) < SUSPECT_FOR)
            || self.running.values().any(|(h, t)| h == host && Self::is_slow(*t, now))
    }

    /// Whether an update of a mirror on `host` may start now.
    pub fn may_start(&self, host: &str, max_parallel: usize, now: Instant) -> bool {
        if self.is_suspect(host, now) {
            self.running.len() < max_parallel.saturating_sub(1).max(1)
        } else {
            self.any_free(max_parallel, now)
        }
    }

    pub fn start(&mut self, key: K, host: String, now: Instant) {
        self.running.insert(key, (host, now));
    }

    /// Ends an update; a slow one makes its host suspect for a while.
    pub fn finish(&mut self, key: &K, now: Instant) {
        if let Some((host, started)) = self.running.remove(key)
            && Self::is_slow(started, now)
        {
            self.slow_hosts.insert(host, now);
        }
    }
}

pub use crate::util::remote_url::host_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_drop_users_paths_and_schemes() {
        assert_eq!(
            host_of("https://bob@Git.Example.com:8443/a/b.git"),
            "git.example.com:8443"
        );
        assert_eq!(host_of("ssh://git@h:2222/srv/a.git"), "h:2222");
        assert_eq!(host_of("git@github.com:acme/app.git"), "github.com");
        assert_eq!(host_of("git://127.0.0.1:9418/x.git"), "127.0.0.1:9418");
        assert_eq!(host_of("file:///backup/a.git"), "file");
        assert_eq!(host_of("/backup/a.git"), "file");
    }

    #[test]
    fn a_bracketed_scp_like_url_and_an_ssh_url_of_one_host_and_port_share_its_slots() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        let (scp_like, ssh) = (host_of("[h:22]:a"), host_of("ssh://h:22/b"));
        assert_eq!(scp_like, ssh);
        slots.start(1, scp_like, t0);
        let slow = t0 + SLOW_AFTER;
        assert!(
            !slots.may_start(&ssh, 2, slow),
            "the host with a slow update is suspect"
        );
        assert!(slots.may_start(&host_of("ssh://other:22/b"), 2, slow));
    }

    #[test]
    fn four_hung_updates_leave_a_slot_to_a_healthy_one_once_they_are_slow() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        for i in 0..4 {
            assert!(slots.may_start("hung:1", 4, t0));
            slots.start(i, "hung:1".to_string(), t0);
        }
        assert!(
            !slots.may_start("file", 4, t0),
            "all four slots are taken while they are young"
        );
        let later = t0 + SLOW_AFTER;
        assert!(slots.may_start("file", 4, later), "slow updates keep one slot free");
        assert!(!slots.may_start("hung:1", 4, later), "the hung host gets no more");
        assert!(
            slots.may_start("another:2", 4, later),
            "another host may take the reserved slot"
        );
        slots.start(10, "file".to_string(), later);
        assert!(!slots.may_start("file", 4, later), "the reserved slot is in use");
        slots.finish(&10, later);
        assert!(slots.may_start("file", 4, later));
    }

    #[test]
    fn a_host_that_was_slow_stays_suspect_and_cannot_take_the_reserved_slot() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        slots.start("a", "slow:1".to_string(), t0);
        let later = t0 + SLOW_AFTER;
        slots.finish(&"a", later);
        for key in ["b", "c", "d"] {
            assert!(slots.may_start("slow:1", 4, later));
            slots.start(key, "slow:1".to_string(), later);
        }
        assert!(
            !slots.may_start("slow:1", 4, later),
            "at most max_parallel - 1 while suspect"
        );
        assert!(slots.may_start("healthy", 4, later));
    }

    #[test]
    fn with_one_slot_a_slow_update_does_not_block_the_others() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        slots.start(1, "hung".to_string(), t0);
        assert!(!slots.may_start("file", 1, t0));
        assert!(slots.may_start("file", 1, t0 + SLOW_AFTER));
        assert!(
            !slots.may_start("hung", 1, t0 + SLOW_AFTER),
            "nor does it get a second one"
        );
    }
}
