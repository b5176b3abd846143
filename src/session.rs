//! The session cookie and the login state cookie: their contents, sealing and checks.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::fmt;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::json::{self, Field, InvalidMember, Json};
use crate::seal::{Purpose, Sealer, Unsealed, UnsealError, SEAL_RANDOM_BYTES};
use crate::secret::Secret;

/// How long a login may take from the redirect to Heroku until the callback, in seconds.
pub const LOGIN_STATE_TTL_S: u64 = 600;

/// Clock difference tolerated between Envoy workers and hosts, in seconds.
const CLOCK_SKEW_S: u64 = 60;

/// Random bytes behind one OAuth `state` value.
pub const STATE_RANDOM_BYTES: usize = 24;

/// Characters of the state value that name its cookie. Eight base64url characters carry
/// 48 random bits, so the cookies of a few parallel logins do not collide.
const STATE_COOKIE_ID_CHARS: usize = 8;

/// A logged-in user, as sealed in the session cookie: a JSON object whose keys are the
/// letters in brackets below. Keys are short because the whole cookie must stay under 4096
/// bytes. `n` and `r` are left out when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account email (`e`).
    pub email: String,
    /// The Heroku account id (`i`).
    pub user_id: String,
    /// The account name (`n`).
    pub name: Option<String>,
    /// The Heroku access token (`a`).
    pub access_token: Secret,
    /// The Heroku refresh token (`r`).
    pub refresh_token: Option<Secret>,
    /// When the access token expires, in Unix seconds (`x`).
    pub expires_at: u64,
    /// When the user logged in, in Unix seconds (`t`).
    pub issued_at: u64,
}

/// The reason a session cookie does not log anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    Unsealed(UnsealError),
    /// The cookie decrypted but its contents are not a session of this version.
    BadContents,
    /// The session is older than `session_max_age_s`.
    Expired,
    /// The session claims to be issued in the future, beyond the tolerated clock skew.
    NotYetValid,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Unsealed(reason) => write!(f, "session cookie rejected: {reason}"),
            SessionError::BadContents => f.write_str("session cookie has unexpected contents"),
            SessionError::Expired => f.write_str("session reached its maximum age"),
            SessionError::NotYetValid => f.write_str("session issued in the future"),
        }
    }
}

impl Session {
    /// Seals the session for `cookie_name`. Returns `None` if sealing fails.
    pub fn seal(&self, sealer: &Sealer, cookie_name: &str, nonce: &[u8; SEAL_RANDOM_BYTES]) -> Option<String> {
        sealer.seal(Purpose::Session, cookie_name, self.to_json().as_bytes(), nonce)
    }

    fn to_json(&self) -> String {
        json::write_object(&[
            ("e", Some(Field::Str(&self.email))),
            ("i", Some(Field::Str(&self.user_id))),
            ("n", self.name.as_deref().map(Field::Str)),
            ("a", Some(Field::Str(self.access_token.expose()))),
            ("r", self.refresh_token.as_ref().map(|token| Field::Str(token.expose()))),
            ("x", Some(Field::Unsigned(self.expires_at))),
            ("t", Some(Field::Unsigned(self.issued_at))),
        ])
    }

    /// Decodes what [`Session::to_json`] wrote. Unknown keys are ignored.
    fn from_json(text: &[u8]) -> Result<Session, InvalidMember> {
        let mut members = json::parse(text).ok().and_then(Json::into_object).ok_or(InvalidMember)?;
        let mut required_string = |key| json::take_string(&mut members, key)?.ok_or(InvalidMember);
        let email = required_string("e")?;
        let user_id = required_string("i")?;
        let access_token = Secret::new(required_string("a")?);
        let name = json::take_string(&mut members, "n")?;
        let refresh_token = json::take_string(&mut members, "r")?.map(Secret::new);
        let expires_at = json::take_unsigned(&mut members, "x")?.ok_or(InvalidMember)?;
        let issued_at = json::take_unsigned(&mut members, "t")?.ok_or(InvalidMember)?;
        Ok(Session { email, user_id, name, access_token, refresh_token, expires_at, issued_at })
    }

    /// Opens a session cookie value and checks that the session is younger than
    /// `max_age_s` at `now`. The access token may have expired: refreshing it is the
    /// caller's decision.
    pub fn open(
        sealer: &Sealer,
        cookie_name: &str,
        value: &[u8],
        now: u64,
        max_age_s: u64,
    ) -> Result<OpenedSession, SessionError> {
        let opened = Session::unseal(sealer, cookie_name, value)?;
        opened.session.check_age(now, max_age_s)?;
        Ok(opened)
    }

    /// Decrypts and decodes a session cookie value, without the checks that depend on the
    /// time. The result depends only on the value and the keys, so it can be cached.
    pub fn unseal(sealer: &Sealer, cookie_name: &str, value: &[u8]) -> Result<OpenedSession, SessionError> {
        let Unsealed { plaintext, by_previous_key } = sealer
            .unseal(Purpose::Session, cookie_name, value)
            .map_err(SessionError::Unsealed)?;
        let session = Session::from_json(&plaintext).map_err(|_| SessionError::BadContents)?;
        if session.email.is_empty() || session.user_id.is_empty() {
            return Err(SessionError::BadContents);
        }
        Ok(OpenedSession { session, by_previous_key })
    }

    /// Checks that the session was issued no later than the tolerated clock skew after `now`
    /// and is younger than `max_age_s`.
    pub fn check_age(&self, now: u64, max_age_s: u64) -> Result<(), SessionError> {
        if self.issued_at > now.saturating_add(CLOCK_SKEW_S) {
            return Err(SessionError::NotYetValid);
        }
        if now >= self.issued_at.saturating_add(max_age_s) {
            return Err(SessionError::Expired);
        }
        Ok(())
    }

    /// Returns true when the access token has expired at `now`.
    pub fn token_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

/// A session cookie that opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    pub session: Session,
    /// True when a previous `secret_key` sealed it, so it should be sealed again.
    pub by_previous_key: bool,
}

/// Sessions recently opened in this VM, by sealed cookie value, so that a browser's later
/// requests skip the decryption and decoding.
///
/// An entry contains what [`Session::unseal`] returned, which depends only on the value and
/// the keys. The checks that depend on the time (age, token expiry, refresh) still run on
/// every request. Only values that opened are stored, so a forged cookie never takes a place. When
/// the cache is full, the oldest entry makes room.
///
/// A sealed value is a bearer credential, so lookups must not leak how much of a stored value
/// a guess matches: entries are found by a keyed hash, and the stored value is compared in
/// constant time.
pub struct SessionCache<T> {
    /// Hashes with a random key per VM, so a client cannot aim at a given entry.
    hasher: RandomState,
    entries: HashMap<u64, CachedSession<T>, BuildHasherDefault<KeyIsHash>>,
    /// Keys in the order they were inserted, oldest first.
    order: VecDeque<u64>,
}

/// Hashes a cache key, which is already a keyed hash of the value, by passing it through, so
/// that a lookup hashes the value once instead of twice.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for the `u64` keys; fold anything else in all the same.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A cached value and what it opened to: an [`OpenedSession`], or whatever the caller derives
/// from one.
struct CachedSession<T> {
    value: Box<[u8]>,
    opened: Rc<T>,
}

/// Entries kept at most per VM. An entry takes about 1 KiB (a sealed value of 300 to 600
/// bytes and the decoded session), so the cache stays near 1 MiB for each Envoy worker.
pub const MAX_CACHED_SESSIONS: usize = 1024;

/// Bytes at the end of a value that the cache hashes. In a sealed value they encode the
/// Poly1305 tag, which differs between any two sealed values, and hashing them instead of the
/// whole value keeps lookups cheap.
const KEY_TAIL_BYTES: usize = 16;

/// Eight-byte samples, spread evenly over a value, that the cache hashes besides its tail.
/// A whole `cookie` header may end with an app cookie that many browsers share, and the
/// samples then fall into the session cookie, so such headers still spread over the cache.
const KEY_SAMPLES: usize = 2;

impl<T> Default for SessionCache<T> {
    fn default() -> Self {
        SessionCache { hasher: RandomState::new(), entries: HashMap::default(), order: VecDeque::new() }
    }
}

impl<T> fmt::Debug for SessionCache<T> {
    /// Shows the number of entries only: sessions carry emails and tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache").field("entries", &self.entries.len()).finish()
    }
}

impl<T> SessionCache<T> {
    /// Returns what `value` opened to before, if it is still cached.
    pub fn get(&self, value: &[u8]) -> Option<Rc<T>> {
        let cached = self.entries.get(&self.key(value))?;
        equal_in_constant_time(&cached.value, value).then(|| Rc::clone(&cached.opened))
    }

    /// Stores what `value` opened to, evicting the oldest entry when full.
    pub fn insert(&mut self, value: &[u8], opened: Rc<T>) {
        let key = self.key(value);
        let cached = CachedSession { value: value.into(), opened };
        if let Some(existing) = self.entries.get_mut(&key) {
            *existing = cached;
            return;
        }
        while self.entries.len() >= MAX_CACHED_SESSIONS {
            let Some(oldest) = self.order.pop_front() else { break };
            self.entries.remove(&oldest);
        }
        self.order.push_back(key);
        self.entries.insert(key, cached);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, value: &[u8]) -> u64 {
        // The length, the samples and the tail go to the hasher in one write, because SipHash
        // pays for every write.
        let mut input = [0u8; 8 + KEY_SAMPLES * 8 + KEY_TAIL_BYTES];
        let (length, rest) = input.split_at_mut(8);
        length.copy_from_slice(&(value.len() as u64).to_le_bytes());
        let (samples, tail) = rest.split_at_mut(KEY_SAMPLES * 8);
        let step = value.len() / (KEY_SAMPLES + 1);
        for (index, sample) in samples.chunks_exact_mut(8).enumerate() {
            let start = (index + 1) * step;
            if let Some(bytes) = value.get(start..start + 8) {
                sample.copy_from_slice(bytes);
            }
        }
        let value_tail = value.get(value.len().saturating_sub(KEY_TAIL_BYTES)..).unwrap_or(value);
        if let Some(slot) = tail.get_mut(..value_tail.len()) {
            slot.copy_from_slice(value_tail);
        }
        self.hasher.hash_one(input)
    }
}

/// Compares two byte strings in time that depends only on their lengths, eight bytes at a
/// time. `subtle`'s slice comparison works byte by byte and is several times slower here.
fn equal_in_constant_time(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let word = |chunk: &[u8]| chunk.try_into().map(u64::from_ne_bytes).unwrap_or(u64::MAX);
    let mut left_words = left.chunks_exact(8);
    let mut right_words = right.chunks_exact(8);
    let mut difference = 0u64;
    for (left_word, right_word) in left_words.by_ref().zip(right_words.by_ref()) {
        difference |= word(left_word) ^ word(right_word);
    }
    for (left_byte, right_byte) in left_words.remainder().iter().zip(right_words.remainder()) {
        difference |= u64::from(left_byte ^ right_byte);
    }
    std::hint::black_box(difference) == 0
}

/// A login in progress, sealed in a short-lived cookie of its own so that several tabs can
/// log in at once without overwriting each other. It is sealed as a JSON object whose keys
/// are the letters in brackets below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    /// The OAuth `state` value sent to Heroku; the callback must bring back the same value
    /// (`s`).
    pub state: Secret,
    /// The same-origin path, with its query, to send the browser to after login (`r`).
    pub return_to: String,
    /// When the login started, in Unix seconds (`t`).
    pub issued_at: u64,
}

/// The reason a callback's `state` was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// The callback had no `state`, or one this filter could not have issued.
    MissingOrMalformed,
    /// This browser sent no login state cookie for that `state`.
    NoCookie,
    Unsealed(UnsealError),
    BadContents,
    Expired,
    Mismatch,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::MissingOrMalformed => f.write_str("callback state missing or malformed"),
            StateError::NoCookie => f.write_str("no login state cookie for this state"),
            StateError::Unsealed(reason) => write!(f, "login state cookie rejected: {reason}"),
            StateError::BadContents => f.write_str("login state cookie has unexpected contents"),
            StateError::Expired => f.write_str("login state expired"),
            StateError::Mismatch => f.write_str("callback state does not match the login state cookie"),
        }
    }
}

impl LoginState {
    /// Creates a login state from random bytes.
    pub fn new(random: &[u8; STATE_RANDOM_BYTES], return_to: String, now: u64) -> Self {
        LoginState {
            state: Secret::new(URL_SAFE_NO_PAD.encode(random)),
            return_to,
            issued_at: now,
        }
    }

    pub fn seal(&self, sealer: &Sealer, cookie_name: &str, nonce: &[u8; SEAL_RANDOM_BYTES]) -> Option<String> {
        let plaintext = json::write_object(&[
            ("s", Some(Field::Str(self.state.expose()))),
            ("r", Some(Field::Str(&self.return_to))),
            ("t", Some(Field::Unsigned(self.issued_at))),
        ]);
        sealer.seal(Purpose::LoginState, cookie_name, plaintext.as_bytes(), nonce)
    }

    fn from_json(text: &[u8]) -> Result<LoginState, InvalidMember> {
        let mut members = json::parse(text).ok().and_then(Json::into_object).ok_or(InvalidMember)?;
        let state = json::take_string(&mut members, "s")?.ok_or(InvalidMember)?;
        let return_to = json::take_string(&mut members, "r")?.ok_or(InvalidMember)?;
        let issued_at = json::take_unsigned(&mut members, "t")?.ok_or(InvalidMember)?;
        Ok(LoginState { state: Secret::new(state), return_to, issued_at })
    }

    /// Opens a login state cookie and checks it against the callback's `state` at `now`.
    pub fn open(
        sealer: &Sealer,
        cookie_name: &str,
        value: &[u8],
        callback_state: &str,
        now: u64,
    ) -> Result<LoginState, StateError> {
        let Unsealed { plaintext, .. } = sealer
            .unseal(Purpose::LoginState, cookie_name, value)
            .map_err(StateError::Unsealed)?;
        let login = LoginState::from_json(&plaintext).map_err(|_| StateError::BadContents)?;
        let fresh = login.issued_at <= now.saturating_add(CLOCK_SKEW_S)
            && now < login.issued_at.saturating_add(LOGIN_STATE_TTL_S);
        if !fresh {
            return Err(StateError::Expired);
        }
        let matches: bool = login.state.expose().as_bytes().ct_eq(callback_state.as_bytes()).into();
        if !matches {
            return Err(StateError::Mismatch);
        }
        Ok(login)
    }
}

/// Returns the name of the cookie that contains the login state for `state`, or `None` when
/// `state` cannot be a value this filter issued.
pub fn state_cookie_name(session_cookie: &str, state: &str) -> Option<String> {
    let expected_len = URL_SAFE_NO_PAD.encode([0u8; STATE_RANDOM_BYTES]).len();
    let well_formed = state.len() == expected_len
        && state.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !well_formed {
        return None;
    }
    let id = state.get(..STATE_COOKIE_ID_CHARS)?;
    Some(format!("{}{id}", state_cookie_prefix(session_cookie)))
}

/// Returns the prefix shared by all login state cookies of this filter.
pub fn state_cookie_prefix(session_cookie: &str) -> String {
    format!("{session_cookie}-state-")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const NONCE: [u8; SEAL_RANDOM_BYTES] = [3; SEAL_RANDOM_BYTES];

    fn sealer() -> Sealer {
        Sealer::new(&Secret::new("0123456789abcdef0123456789abcdef"))
    }

    fn session() -> Session {
        Session {
            email: "ada@example.com".into(),
            user_id: "01234567-89ab-cdef-0123-456789abcdef".into(),
            name: Some("Ada Lovelace".into()),
            access_token: Secret::new("HRKU-access"),
            refresh_token: Some(Secret::new("HRKU-refresh")),
            expires_at: NOW + 100,
            issued_at: NOW,
        }
    }

    const MAX_AGE: u64 = 1000;

    fn open(sealed: &str, now: u64) -> Result<OpenedSession, SessionError> {
        Session::open(&sealer(), "sess", sealed.as_bytes(), now, MAX_AGE)
    }

    #[test]
    fn session_round_trip() {
        let sealed = session().seal(&sealer(), "sess", &NONCE).unwrap();
        let opened = open(&sealed, NOW).unwrap();
        assert_eq!(opened.session, session());
        assert!(!opened.by_previous_key);
    }

    #[test]
    fn session_ends_at_max_age() {
        let sealed = session().seal(&sealer(), "sess", &NONCE).unwrap();
        assert!(open(&sealed, NOW + MAX_AGE - 1).is_ok());
        assert_eq!(open(&sealed, NOW + MAX_AGE), Err(SessionError::Expired));
    }

    #[test]
    fn token_expiry_is_exact() {
        assert!(!session().token_expired(NOW + 99));
        assert!(session().token_expired(NOW + 100));
    }

    #[test]
    fn previous_key_session_is_flagged() {
        let old = Secret::new("fedcba9876543210fedcba9876543210");
        let sealed = session().seal(&Sealer::new(&old), "sess", &NONCE).unwrap();
        let rotated = Sealer::with_previous(&Secret::new("0123456789abcdef0123456789abcdef"), &[old]);
        let opened = Session::open(&rotated, "sess", sealed.as_bytes(), NOW, MAX_AGE).unwrap();
        assert!(opened.by_previous_key);
    }

    #[test]
    fn session_from_future_is_rejected() {
        let sealed = session().seal(&sealer(), "sess", &NONCE).unwrap();
        assert!(open(&sealed, NOW - CLOCK_SKEW_S).is_ok());
        assert_eq!(open(&sealed, NOW - CLOCK_SKEW_S - 1), Err(SessionError::NotYetValid));
    }

    #[test]
    fn session_without_email_is_rejected() {
        let mut empty = session();
        empty.email.clear();
        let sealed = empty.seal(&sealer(), "sess", &NONCE).unwrap();
        assert_eq!(open(&sealed, NOW), Err(SessionError::BadContents));
    }

    #[test]
    fn session_json_is_unchanged() {
        let expected = r#"{"e":"ada@example.com","i":"01234567-89ab-cdef-0123-456789abcdef","n":"Ada Lovelace","a":"HRKU-access","r":"HRKU-refresh","x":1800000100,"t":1800000000}"#;
        assert_eq!(session().to_json(), expected);
        let mut without_options = session();
        without_options.name = None;
        without_options.refresh_token = None;
        assert_eq!(
            without_options.to_json(),
            r#"{"e":"ada@example.com","i":"01234567-89ab-cdef-0123-456789abcdef","a":"HRKU-access","x":1800000100,"t":1800000000}"#
        );
    }

    #[test]
    fn session_opens_with_nulls_and_unknown_keys() {
        let plaintext = br#"{"e":"ada@example.com","i":"u-1","n":null,"a":"tok","r":null,"x":1,"t":1800000000,"z":[{}]}"#;
        let sealed = sealer().seal(Purpose::Session, "sess", plaintext, &NONCE).unwrap();
        let opened = open(&sealed, NOW).unwrap().session;
        assert_eq!(opened.name, None);
        assert_eq!(opened.refresh_token, None);
        assert_eq!(opened.expires_at, 1);
    }

    #[test]
    fn sealed_json_of_other_shape_is_rejected() {
        for plaintext in [
            &br#"{"e":"ada@example.com","i":"u-1","a":"tok","x":-1,"t":1800000000}"#[..],
            br#"{"e":"ada@example.com","i":"u-1","a":null,"x":1,"t":1800000000}"#,
            br#"{"e":"ada@example.com","e":"eve@example.com","i":"u-1","a":"tok","x":1,"t":1800000000}"#,
            br#"["ada@example.com","u-1"]"#,
            b"not json",
        ] {
            let sealed = sealer().seal(Purpose::Session, "sess", plaintext, &NONCE).unwrap();
            assert_eq!(open(&sealed, NOW), Err(SessionError::BadContents), "{}", String::from_utf8_lossy(plaintext));
        }
        let sealed = sealer().seal(Purpose::Session, "sess", br#"{"e":"a@b.c"}"#, &NONCE).unwrap();
        assert_eq!(open(&sealed, NOW), Err(SessionError::BadContents));
    }

    #[test]
    fn cache_is_bounded_and_evicts_oldest() {
        let opened = Rc::new(OpenedSession { session: session(), by_previous_key: false });
        let mut cache = SessionCache::default();
        for index in 0..MAX_CACHED_SESSIONS + 10 {
            cache.insert(format!("v1.{index}").as_bytes(), Rc::clone(&opened));
        }
        assert_eq!(cache.len(), MAX_CACHED_SESSIONS);
        assert!(cache.get(b"v1.0").is_none(), "the oldest made room");
        assert!(cache.get(b"v1.9").is_none());
        assert!(cache.get(b"v1.10").is_some());
        assert!(cache.get(format!("v1.{}", MAX_CACHED_SESSIONS + 9).as_bytes()).is_some());
    }

    #[test]
    fn cache_matches_whole_values_only() {
        let opened = Rc::new(OpenedSession { session: session(), by_previous_key: false });
        let mut cache = SessionCache::default();
        let value = format!("v1.{}", "x".repeat(300));
        cache.insert(value.as_bytes(), opened);
        assert!(cache.get(value.as_bytes()).is_some());
        let other_start = format!("v1.y{}", "x".repeat(299));
        assert!(cache.get(other_start.as_bytes()).is_none(), "same tail, other start");
        assert!(cache.get(&value.as_bytes()[1..]).is_none(), "same tail, shorter");
    }

    #[test]
    fn constant_time_comparison_is_exact() {
        assert!(equal_in_constant_time(b"", b""));
        assert!(equal_in_constant_time(b"0123456789abcdefXYZ", b"0123456789abcdefXYZ"));
        assert!(!equal_in_constant_time(b"0123456789abcdefXYZ", b"0123456789abcdefXYz"));
        assert!(!equal_in_constant_time(b"0123456789abcdefXYZ", b"1123456789abcdefXYZ"));
        assert!(!equal_in_constant_time(b"abc", b"abcd"));
    }

    #[test]
    fn login_state_checks_state_and_age() {
        let login = LoginState::new(&[9; STATE_RANDOM_BYTES], "/deep?x=1".into(), NOW);
        let state = login.state.expose().to_string();
        let name = state_cookie_name("sess", &state).unwrap();
        let sealed = login.seal(&sealer(), &name, &NONCE).unwrap();

        let opened = LoginState::open(&sealer(), &name, sealed.as_bytes(), &state, NOW + 1).unwrap();
        assert_eq!(opened.return_to, "/deep?x=1");

        let mut other = state.clone();
        other.replace_range(..1, if state.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            LoginState::open(&sealer(), &name, sealed.as_bytes(), &other, NOW),
            Err(StateError::Mismatch)
        );
        assert_eq!(
            LoginState::open(&sealer(), &name, sealed.as_bytes(), &state, NOW + LOGIN_STATE_TTL_S),
            Err(StateError::Expired)
        );
        assert!(LoginState::open(&sealer(), &name, sealed.as_bytes(), &state, NOW + LOGIN_STATE_TTL_S - 1).is_ok());
    }

    #[test]
    fn login_state_is_bound_to_its_cookie() {
        let login = LoginState::new(&[9; STATE_RANDOM_BYTES], "/".into(), NOW);
        let state = login.state.expose().to_string();
        let sealed = login.seal(&sealer(), "sess-state-AAAAAAAA", &NONCE).unwrap();
        let result = LoginState::open(&sealer(), "sess-state-BBBBBBBB", sealed.as_bytes(), &state, NOW);
        assert_eq!(result, Err(StateError::Unsealed(UnsealError::Forged)));
    }

    #[test]
    fn session_value_cannot_serve_as_login_state() {
        let sealed = session().seal(&sealer(), "sess", &NONCE).unwrap();
        let result = LoginState::open(&sealer(), "sess", sealed.as_bytes(), "x", NOW);
        assert_eq!(result, Err(StateError::Unsealed(UnsealError::Forged)));
    }

    #[test]
    fn state_cookie_name_rejects_foreign_states() {
        let state = URL_SAFE_NO_PAD.encode([1u8; STATE_RANDOM_BYTES]);
        assert_eq!(state_cookie_name("sess", &state).unwrap(), format!("sess-state-{}", &state[..8]));
        for bad in ["", "short", "a/b", &format!("{state}x"), &state.replace('A', "=")] {
            assert_eq!(state_cookie_name("sess", bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_tokens() {
        let printed = format!("{:?}", session());
        assert!(!printed.contains("HRKU"), "{printed}");
    }
}
