//! Authenticated encryption of cookie values.
//!
//! A sealed value is `v1.` followed by unpadded base64url of a random 24-byte nonce and the
//! XChaCha20-Poly1305 ciphertext with its tag. The key for each purpose (session, login
//! state) comes from `secret_key` through HKDF-SHA256, and the associated data binds the
//! version and the cookie name, so a value cannot be moved to another cookie or purpose.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::secret::Secret;

/// Prefix of every value this version seals. A later format gets a new prefix, and values
/// with an unknown prefix are rejected before any decryption.
const VERSION_PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const HKDF_SALT: &[u8] = b"heroku-bouncer for Envoy";

/// Random bytes that one seal consumes.
pub const SEAL_RANDOM_BYTES: usize = NONCE_BYTES;

/// The use of a sealed value. Each purpose has its own derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Session,
    LoginState,
}

impl Purpose {
    fn hkdf_info(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"session cookie v1",
            Purpose::LoginState => b"login state cookie v1",
        }
    }
}

/// The reason a value could not be unsealed. Callers log the reason, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsealError {
    /// The value does not start with a version prefix this build supports.
    UnknownVersion,
    /// The value is not base64url or is too short to hold a nonce and a tag.
    Malformed,
    /// Decryption failed: the value was sealed with another key or cookie name, or changed.
    Forged,
}

impl fmt::Display for UnsealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnsealError::UnknownVersion => "unknown format version",
            UnsealError::Malformed => "malformed value",
            UnsealError::Forged => "authentication failed (wrong key, wrong cookie name or altered value)",
        })
    }
}

/// The ciphers derived from one `secret_key`.
#[derive(Clone)]
struct KeySet {
    session: XChaCha20Poly1305,
    login_state: XChaCha20Poly1305,
}

impl KeySet {
    fn derive(secret_key: &Secret) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret_key.expose().as_bytes());
        let cipher_for = |purpose: Purpose| {
            let mut key = [0u8; 32];
            // HKDF-SHA256 can expand up to 8160 bytes, so 32 never fails.
            let _ = hkdf.expand(purpose.hkdf_info(), &mut key);
            XChaCha20Poly1305::new(&key.into())
        };
        KeySet {
            session: cipher_for(Purpose::Session),
            login_state: cipher_for(Purpose::LoginState),
        }
    }

    fn cipher(&self, purpose: Purpose) -> &XChaCha20Poly1305 {
        match purpose {
            Purpose::Session => &self.session,
            Purpose::LoginState => &self.login_state,
        }
    }
}

/// A successfully opened value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    pub plaintext: Vec<u8>,
    /// True when a previous key opened the value, so it should be sealed again with the
    /// current key.
    pub by_previous_key: bool,
}

/// Seals cookie values with keys derived from the current `secret_key`, and opens values
/// sealed with the current key or any previous one.
#[derive(Clone)]
pub struct Sealer {
    current: KeySet,
    previous: Vec<KeySet>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    pub fn new(secret_key: &Secret) -> Self {
        Sealer::with_previous(secret_key, &[])
    }

    /// Creates a sealer that also opens values sealed with `previous` keys.
    pub fn with_previous(secret_key: &Secret, previous: &[Secret]) -> Self {
        Sealer {
            current: KeySet::derive(secret_key),
            previous: previous.iter().map(KeySet::derive).collect(),
        }
    }

    /// Seals `plaintext` for the cookie `cookie_name`, with `nonce` from a secure random
    /// source. Returns `None` only if the cipher refuses, which it does for inputs over
    /// 256 GiB.
    pub fn seal(
        &self,
        purpose: Purpose,
        cookie_name: &str,
        plaintext: &[u8],
        nonce: &[u8; SEAL_RANDOM_BYTES],
    ) -> Option<String> {
        let aad = associated_data(cookie_name);
        let ciphertext = self
            .current
            .cipher(purpose)
            .encrypt(XNonce::from_slice(nonce), Payload { msg: plaintext, aad: &aad })
            .ok()?;
        let mut raw = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        raw.extend_from_slice(nonce);
        raw.extend_from_slice(&ciphertext);
        Some(format!("{VERSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Opens a value sealed by [`Sealer::seal`] for the same purpose and cookie name, with
    /// the current key or a previous one.
    pub fn unseal(&self, purpose: Purpose, cookie_name: &str, sealed: &[u8]) -> Result<Unsealed, UnsealError> {
        let encoded = sealed
            .strip_prefix(VERSION_PREFIX.as_bytes())
            .ok_or(UnsealError::UnknownVersion)?;
        let raw = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| UnsealError::Malformed)?;
        if raw.len() < NONCE_BYTES + TAG_BYTES {
            return Err(UnsealError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
        let aad = associated_data(cookie_name);
        let open = |keys: &KeySet| {
            keys.cipher(purpose)
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
                .ok()
        };
        if let Some(plaintext) = open(&self.current) {
            return Ok(Unsealed { plaintext, by_previous_key: false });
        }
        self.previous
            .iter()
            .find_map(open)
            .map(|plaintext| Unsealed { plaintext, by_previous_key: true })
            .ok_or(UnsealError::Forged)
    }
}

fn associated_data(cookie_name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(VERSION_PREFIX.len() + cookie_name.len());
    aad.extend_from_slice(VERSION_PREFIX.as_bytes());
    aad.extend_from_slice(cookie_name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: &str) -> Sealer {
        Sealer::new(&Secret::new(key))
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const NONCE: [u8; 24] = [7; 24];

    #[test]
    fn round_trip() {
        let sealer = sealer(KEY);
        let sealed = sealer.seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        assert!(sealed.starts_with("v1."));
        assert_eq!(sealer.unseal(Purpose::Session, "sess", sealed.as_bytes()).unwrap().plaintext, b"hello");
    }

    #[test]
    fn plaintext_is_not_visible() {
        let sealed = sealer(KEY).seal(Purpose::Session, "sess", b"HRKU-token", &NONCE).unwrap();
        let decoded = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        assert!(!decoded.windows(4).any(|window| window == b"HRKU"));
    }

    #[test]
    fn known_answer_stays_stable() {
        // Cookies issued by earlier builds must keep opening: this pins the key derivation,
        // the cipher and the encoding.
        let sealed = sealer(KEY).seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        assert_eq!(sealed, KNOWN_SESSION_VALUE);
    }

    const KNOWN_SESSION_VALUE: &str = "v1.BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHdCjKc6bws46RBIszKf8TuBqF11jM";

    #[test]
    fn other_cookie_name_fails() {
        let sealer = sealer(KEY);
        let sealed = sealer.seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        assert_eq!(sealer.unseal(Purpose::Session, "other", sealed.as_bytes()), Err(UnsealError::Forged));
    }

    #[test]
    fn other_purpose_fails() {
        let sealer = sealer(KEY);
        let sealed = sealer.seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        assert_eq!(sealer.unseal(Purpose::LoginState, "sess", sealed.as_bytes()), Err(UnsealError::Forged));
    }

    #[test]
    fn other_key_fails() {
        let sealed = sealer(KEY).seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        let other = sealer("fedcba9876543210fedcba9876543210");
        assert_eq!(other.unseal(Purpose::Session, "sess", sealed.as_bytes()), Err(UnsealError::Forged));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let sealer = sealer(KEY);
        let sealed = sealer.seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        for index in 0..raw.len() {
            for bit in 0..8 {
                let mut altered = raw.clone();
                altered[index] ^= 1 << bit;
                let value = format!("v1.{}", URL_SAFE_NO_PAD.encode(&altered));
                assert_eq!(sealer.unseal(Purpose::Session, "sess", value.as_bytes()), Err(UnsealError::Forged));
            }
        }
    }

    #[test]
    fn garbage_is_rejected_by_reason() {
        let sealer = sealer(KEY);
        assert_eq!(sealer.unseal(Purpose::Session, "s", b""), Err(UnsealError::UnknownVersion));
        assert_eq!(sealer.unseal(Purpose::Session, "s", b"v0.abcd"), Err(UnsealError::UnknownVersion));
        assert_eq!(sealer.unseal(Purpose::Session, "s", b"v1.***"), Err(UnsealError::Malformed));
        assert_eq!(sealer.unseal(Purpose::Session, "s", b"v1.AAAA"), Err(UnsealError::Malformed));
        assert_eq!(sealer.unseal(Purpose::Session, "s", b"v1.\xff\xfe"), Err(UnsealError::Malformed));
        let sealed = sealer.seal(Purpose::Session, "s", b"hello", &NONCE).unwrap();
        let truncated = &sealed.as_bytes()[..sealed.len() - 2];
        assert!(sealer.unseal(Purpose::Session, "s", truncated).is_err());
    }

    #[test]
    fn previous_key_opens_and_is_flagged() {
        let old = "fedcba9876543210fedcba9876543210";
        let sealed = sealer(old).seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        let rotated = Sealer::with_previous(&Secret::new(KEY), &[Secret::new(old)]);
        let opened = rotated.unseal(Purpose::Session, "sess", sealed.as_bytes()).unwrap();
        assert_eq!(opened, Unsealed { plaintext: b"hello".to_vec(), by_previous_key: true });

        let fresh = rotated.seal(Purpose::Session, "sess", b"hello", &NONCE).unwrap();
        assert!(!rotated.unseal(Purpose::Session, "sess", fresh.as_bytes()).unwrap().by_previous_key);
        let unknown = sealer("0000000000000000000000000000000000").seal(Purpose::Session, "sess", b"x", &NONCE).unwrap();
        assert_eq!(rotated.unseal(Purpose::Session, "sess", unknown.as_bytes()), Err(UnsealError::Forged));
    }

    #[test]
    fn debug_output_is_redacted() {
        assert_eq!(format!("{:?}", sealer(KEY)), "Sealer([redacted])");
    }
}
