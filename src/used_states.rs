//! Memory of OAuth `state` values already exchanged, so a replayed callback is rejected
//! before Heroku is called, even by a client that kept its login state cookie.
//!
//! The memory lives in Envoy's shared data, which every worker VM of the plugin shares. It is
//! a fixed set of slots, so it never grows: a state takes the slot its hash picks, with the
//! time it was used. A state is rejected only while its slot still holds it and for at most
//! `LOGIN_STATE_TTL_S`, after which the login state cookie has expired anyway. When two
//! states of one period share a slot, the later one overwrites the earlier, and a replay of
//! the earlier one is caught only by Heroku's single-use codes.

use sha2::{Digest, Sha256};

use crate::session::LOGIN_STATE_TTL_S;

/// Slots in the shared memory, about 160 KiB at 40 bytes each.
pub const SLOTS: u64 = 4096;

const DIGEST_BYTES: usize = 32;

/// A hash of a callback's `state`.
pub type StateDigest = [u8; DIGEST_BYTES];

/// Returns the hash of a callback's `state`.
pub fn digest(state: &str) -> StateDigest {
    Sha256::digest(state.as_bytes()).into()
}

/// Returns the shared-data key of the slot for `digest`.
pub fn slot_key(digest: &StateDigest) -> String {
    let first: [u8; 8] = digest.get(..8).and_then(|bytes| bytes.try_into().ok()).unwrap_or_default();
    format!("heroku_bouncer.used_state.{}", u64::from_le_bytes(first) % SLOTS)
}

/// Decides whether the slot's stored value records `digest` as used within the last
/// `LOGIN_STATE_TTL_S` seconds before `now`.
pub fn was_used(slot: Option<&[u8]>, digest: &StateDigest, now: u64) -> bool {
    let Some(slot) = slot else {
        return false;
    };
    let (stored, used_at) = slot.split_at(slot.len().min(DIGEST_BYTES));
    let Ok(used_at) = <[u8; 8]>::try_from(used_at) else {
        return false;
    };
    stored == digest.as_slice() && now < u64::from_le_bytes(used_at).saturating_add(LOGIN_STATE_TTL_S)
}

/// Returns the slot value that records `digest` as used at `now`.
pub fn mark_used(digest: &StateDigest, now: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(DIGEST_BYTES + 8);
    value.extend_from_slice(digest);
    value.extend_from_slice(&now.to_le_bytes());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn marked_state_is_used_until_ttl() {
        let state = digest("state-one");
        let slot = mark_used(&state, NOW);
        assert!(was_used(Some(&slot), &state, NOW));
        assert!(was_used(Some(&slot), &state, NOW + LOGIN_STATE_TTL_S - 1));
        assert!(!was_used(Some(&slot), &state, NOW + LOGIN_STATE_TTL_S));
    }

    #[test]
    fn other_state_in_slot_is_not_used() {
        let slot = mark_used(&digest("state-one"), NOW);
        assert!(!was_used(Some(&slot), &digest("state-two"), NOW));
        assert!(!was_used(None, &digest("state-one"), NOW));
    }

    #[test]
    fn malformed_slot_is_not_used() {
        let state = digest("state-one");
        for slot in [&b""[..], &b"short"[..], &[0u8; 41][..], &state[..]] {
            assert!(!was_used(Some(slot), &state, NOW), "{slot:?}");
        }
    }

    #[test]
    fn slot_keys_are_bounded() {
        let key = slot_key(&digest("state-one"));
        let number: u64 = key.rsplit('.').next().unwrap().parse().unwrap();
        assert!(number < SLOTS);
        assert!(key.starts_with("heroku_bouncer.used_state."));
        assert_eq!(key, slot_key(&digest("state-one")), "the same state always takes the same slot");
    }
}
