//! Per-VM bookkeeping of token refreshes, so parallel requests with one expiring session
//! share a single refresh.
//!
//! Each Envoy worker has its own VM and so its own table: with N workers, one session is
//! refreshed at most N times at once, and usually once. Entries are keyed by a hash of the
//! sealed cookie value, which every request of one browser carries alike.

use sha2::{Digest, Sha256};

use crate::session::Session;

/// Entries kept at most. When the table is full, the oldest entry makes room; losing one
/// only means a second refresh for that session.
const MAX_ENTRIES: usize = 256;

/// Seconds after which a refresh still marked in flight is forgotten. Envoy ends every
/// callout within `callout_timeout_ms` (60 s at most), so such an entry is left over from a
/// request whose stream was reset.
const IN_FLIGHT_TTL_S: u64 = 180;

/// Seconds for which a finished refresh is handed to requests that still carry the old
/// cookie, which are the ones sent before the browser received the new cookie.
const DONE_TTL_S: u64 = 60;

/// A hash of a sealed session cookie value.
pub type SessionKey = [u8; 32];

/// Returns the table key of a sealed session cookie value.
pub fn session_key(sealed_value: &[u8]) -> SessionKey {
    Sha256::digest(sealed_value).into()
}

/// A refresh's state as the table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Unknown,
    InFlight,
    /// The refreshed session and the `Set-Cookie` value that carries it.
    Done(Session, String),
}

#[derive(Debug)]
struct Entry {
    key: SessionKey,
    since: u64,
    done: Option<(Session, String)>,
}

/// Refreshes in flight and recently finished, in one VM.
#[derive(Debug, Default)]
pub struct RefreshTable {
    entries: Vec<Entry>,
}

impl RefreshTable {
    /// Returns the state of the refresh for `key` at `now`, dropping stale entries first.
    pub fn lookup(&mut self, key: &SessionKey, now: u64) -> Lookup {
        self.entries.retain(|entry| {
            let ttl = if entry.done.is_some() { DONE_TTL_S } else { IN_FLIGHT_TTL_S };
            now < entry.since.saturating_add(ttl)
        });
        match self.entries.iter().find(|entry| entry.key == *key) {
            None => Lookup::Unknown,
            Some(Entry { done: None, .. }) => Lookup::InFlight,
            Some(Entry { done: Some((session, cookie)), .. }) => Lookup::Done(session.clone(), cookie.clone()),
        }
    }

    /// Records that a refresh for `key` has started.
    pub fn start(&mut self, key: SessionKey, now: u64) {
        self.entries.retain(|entry| entry.key != key);
        if self.entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = (0..self.entries.len()).min_by_key(|index| self.entries.get(*index).map(|entry| entry.since)) {
                self.entries.remove(oldest);
            }
        }
        self.entries.push(Entry { key, since: now, done: None });
    }

    /// Records how the refresh for `key` ended: the new session and its cookie, or `None`
    /// when it failed, so the next request tries again.
    pub fn finish(&mut self, key: &SessionKey, result: Option<(Session, String)>, now: u64) {
        match result {
            Some(done) => {
                self.entries.retain(|entry| entry.key != *key);
                self.entries.push(Entry { key: *key, since: now, done: Some(done) });
            }
            None => self.entries.retain(|entry| entry.key != *key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn session() -> Session {
        Session {
            email: "ada@example.com".into(),
            user_id: "1".into(),
            name: None,
            access_token: Secret::new("t"),
            refresh_token: None,
            expires_at: 10,
            issued_at: 0,
        }
    }

    #[test]
    fn refresh_lifecycle() {
        let mut table = RefreshTable::default();
        let key = session_key(b"v1.cookie");
        assert_eq!(table.lookup(&key, 100), Lookup::Unknown);
        table.start(key, 100);
        assert_eq!(table.lookup(&key, 101), Lookup::InFlight);
        table.finish(&key, Some((session(), "c=1".into())), 102);
        assert_eq!(table.lookup(&key, 102 + DONE_TTL_S - 1), Lookup::Done(session(), "c=1".into()));
        assert_eq!(table.lookup(&key, 102 + DONE_TTL_S), Lookup::Unknown);
    }

    #[test]
    fn failed_refresh_is_forgotten() {
        let mut table = RefreshTable::default();
        let key = session_key(b"v1.cookie");
        table.start(key, 100);
        table.finish(&key, None, 101);
        assert_eq!(table.lookup(&key, 101), Lookup::Unknown);
    }

    #[test]
    fn stale_in_flight_entry_expires() {
        let mut table = RefreshTable::default();
        let key = session_key(b"v1.cookie");
        table.start(key, 100);
        assert_eq!(table.lookup(&key, 100 + IN_FLIGHT_TTL_S - 1), Lookup::InFlight);
        assert_eq!(table.lookup(&key, 100 + IN_FLIGHT_TTL_S), Lookup::Unknown);
    }

    #[test]
    fn table_is_bounded() {
        let mut table = RefreshTable::default();
        for index in 0..(MAX_ENTRIES as u64 + 10) {
            table.start(session_key(&index.to_le_bytes()), index);
        }
        assert_eq!(table.entries.len(), MAX_ENTRIES);
        let first = session_key(&0u64.to_le_bytes());
        assert!(!table.entries.iter().any(|entry| entry.key == first), "the oldest made room");
        assert_eq!(table.lookup(&session_key(&(MAX_ENTRIES as u64).to_le_bytes()), 300), Lookup::InFlight);
    }
}
