//! The stand-in's mutable state: users, the current session user, issued
//! codes and tokens, rate-limit pools, faults and recorded requests.
//!
//! Methods take `now` as an argument so that unit tests can move time.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use uuid::Uuid;

use crate::config::{Approval, Client, Config, User};
use crate::server::{Endpoint, Fault, RecordedRequest};

/// Size of each account's API rate-limit pool, Heroku's published limit.
pub(crate) const RATE_LIMIT_POOL: f64 = 4500.0;
/// Pool refill rate: 75 requests per minute, also Heroku's published figure.
const RATE_LIMIT_REFILL_PER_SECOND: f64 = 75.0 / 60.0;

/// Scopes that let a token read `/teams` unless [`crate::Standin::set_teams_scopes`] changes them.
/// `identity` is missing because it covers account information only.
pub(crate) const DEFAULT_TEAMS_SCOPES: &[&str] = &[
    "global",
    "read",
    "read-protected",
    "write",
    "write-protected",
];

/// What the user granted to the client: who, which scopes, in which web session.
#[derive(Clone, Debug)]
pub(crate) struct Authorization {
    pub user_id: String,
    /// Sorted and de-duplicated, as Heroku stores it.
    pub scope: Vec<String>,
    pub session_nonce: Option<String>,
    /// Wall-clock time of the login, shown as `last_login`.
    pub logged_in_at: SystemTime,
}

/// The instant a code or token expires, or `None` for a lifetime too long
/// for `Instant` to represent, which never expires.
#[derive(Clone, Copy)]
struct Deadline(Option<Instant>);

impl Deadline {
    fn after(now: Instant, lifetime: Duration) -> Deadline {
        Deadline(now.checked_add(lifetime))
    }

    fn has_passed(self, now: Instant) -> bool {
        self.0.is_some_and(|deadline| now >= deadline)
    }
}

struct Grant {
    authorization: Authorization,
    expires_at: Deadline,
}

struct AccessToken {
    authorization: Authorization,
    expires_at: Deadline,
}

struct RefreshToken {
    authorization: Authorization,
    expires_at: Deadline,
    revoked: bool,
}

struct RatePool {
    remaining: f64,
    updated_at: Instant,
}

/// The body of a successful `POST /oauth/token`, fields in Heroku's order.
#[derive(Serialize, Debug)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub user_id: String,
    pub session_nonce: Option<String>,
}

/// Why a code or refresh token was not exchanged. Every variant gets the same
/// `401` on the wire; the variants exist for unit tests.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GrantError {
    UnknownOrUsed,
    Expired,
    Revoked,
    WrongSecret,
}

pub(crate) struct State {
    pub client: Client,
    pub users: Vec<User>,
    /// Index into `users` of the user logged in to the stand-in's web session.
    pub current_user: Option<usize>,
    pub approval: Approval,
    pub teams_scopes: Vec<String>,
    code_lifetime: Duration,
    access_token_lifetime: Duration,
    refresh_token_lifetime: Duration,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    rate_pools: HashMap<String, RatePool>,
    pub faults: [Option<Fault>; Endpoint::COUNT],
    pub recorded: [Vec<RecordedRequest>; Endpoint::COUNT],
}

impl State {
    pub fn new(config: Config) -> State {
        let current_user = if config.users.is_empty() {
            None
        } else {
            Some(0)
        };
        State {
            client: config.client,
            users: config.users,
            current_user,
            approval: config.approval,
            teams_scopes: DEFAULT_TEAMS_SCOPES
                .iter()
                .map(|scope| scope.to_string())
                .collect(),
            code_lifetime: Duration::from_secs(config.code_lifetime_s),
            access_token_lifetime: Duration::from_secs(config.access_token_lifetime_s),
            refresh_token_lifetime: Duration::from_secs(config.refresh_token_lifetime_s),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            rate_pools: HashMap::new(),
            faults: Default::default(),
            recorded: Default::default(),
        }
    }

    /// Returns the index of the user with this email (compared
    /// case-insensitively), adding a user without name or teams if none exists.
    pub fn find_or_add_user(&mut self, email: &str) -> usize {
        let email = email.trim();
        if let Some(index) = self
            .users
            .iter()
            .position(|user| user.email.eq_ignore_ascii_case(email))
        {
            return index;
        }
        self.users.push(User::new(email, None, &[]));
        self.users.len() - 1
    }

    pub fn user_by_id(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|user| user.id == id)
    }

    /// Issues a one-time authorization code for `user_index` with `scope`.
    pub fn issue_code(&mut self, user_index: usize, scope: Vec<String>, now: Instant) -> String {
        let user_id = self
            .users
            .get(user_index)
            .map(|user| user.id.clone())
            .unwrap_or_default();
        let authorization = Authorization {
            user_id,
            scope,
            session_nonce: Some(new_session_nonce()),
            logged_in_at: SystemTime::now(),
        };
        let code = Uuid::new_v4().to_string();
        self.codes.insert(
            code.clone(),
            Grant {
                authorization,
                expires_at: Deadline::after(now, self.code_lifetime),
            },
        );
        code
    }

    /// Exchanges a code for tokens. A code is consumed by its first exchange
    /// with the right secret; a wrong secret leaves it usable.
    pub fn exchange_code(
        &mut self,
        code: &str,
        secret: &str,
        now: Instant,
    ) -> Result<TokenResponse, GrantError> {
        let grant = self.codes.get(code).ok_or(GrantError::UnknownOrUsed)?;
        if grant.expires_at.has_passed(now) {
            self.codes.remove(code);
            return Err(GrantError::Expired);
        }
        if secret != self.client.secret {
            return Err(GrantError::WrongSecret);
        }

        let grant = self.codes.remove(code).ok_or(GrantError::UnknownOrUsed)?;
        let refresh_token = new_token();
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshToken {
                authorization: grant.authorization.clone(),
                expires_at: Deadline::after(now, self.refresh_token_lifetime),
                revoked: false,
            },
        );
        Ok(self.issue_access_token(grant.authorization, refresh_token, now))
    }

    /// Issues a new access token for a refresh token. The refresh token stays
    /// the same, as in Heroku's own stubs, and the old access token stays valid
    /// until it expires.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        secret: &str,
        now: Instant,
    ) -> Result<TokenResponse, GrantError> {
        let stored = self
            .refresh_tokens
            .get(refresh_token)
            .ok_or(GrantError::UnknownOrUsed)?;
        if stored.revoked {
            return Err(GrantError::Revoked);
        }
        if stored.expires_at.has_passed(now) {
            return Err(GrantError::Expired);
        }
        if secret != self.client.secret {
            return Err(GrantError::WrongSecret);
        }
        let authorization = stored.authorization.clone();
        Ok(self.issue_access_token(authorization, refresh_token.to_string(), now))
    }

    fn issue_access_token(
        &mut self,
        authorization: Authorization,
        refresh_token: String,
        now: Instant,
    ) -> TokenResponse {
        let access_token = new_token();
        let response = TokenResponse {
            access_token: access_token.clone(),
            expires_in: self.access_token_lifetime.as_secs(),
            refresh_token,
            token_type: "Bearer",
            user_id: authorization.user_id.clone(),
            session_nonce: authorization.session_nonce.clone(),
        };
        self.access_tokens.insert(
            access_token,
            AccessToken {
                authorization,
                expires_at: Deadline::after(now, self.access_token_lifetime),
            },
        );
        response
    }

    /// Returns the authorization behind a live access token.
    pub fn authenticate(&self, access_token: &str, now: Instant) -> Option<&Authorization> {
        let token = self.access_tokens.get(access_token)?;
        if token.expires_at.has_passed(now) {
            return None;
        }
        Some(&token.authorization)
    }

    pub fn revoke_refresh_tokens(&mut self) {
        for token in self.refresh_tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// Refills the user's pool for the time elapsed and returns what remains,
    /// without spending anything.
    pub fn rate_limit_remaining(&mut self, user_id: &str, now: Instant) -> u32 {
        self.refilled_pool(user_id, now).remaining as u32
    }

    /// Spends one request from the user's pool. Returns the remaining count,
    /// or `None` when the pool is empty and the request must get `429`.
    pub fn spend_rate_limit(&mut self, user_id: &str, now: Instant) -> Option<u32> {
        let pool = self.refilled_pool(user_id, now);
        if pool.remaining < 1.0 {
            return None;
        }
        pool.remaining -= 1.0;
        Some(pool.remaining as u32)
    }

    fn refilled_pool(&mut self, user_id: &str, now: Instant) -> &mut RatePool {
        let pool = self
            .rate_pools
            .entry(user_id.to_string())
            .or_insert(RatePool {
                remaining: RATE_LIMIT_POOL,
                updated_at: now,
            });
        let elapsed = now.saturating_duration_since(pool.updated_at).as_secs_f64();
        pool.remaining =
            (pool.remaining + elapsed * RATE_LIMIT_REFILL_PER_SECOND).min(RATE_LIMIT_POOL);
        pool.updated_at = now;
        pool
    }
}

/// Creates an opaque token in the shape Heroku has used since 2024: `HRKU-` and a UUID.
fn new_token() -> String {
    format!("HRKU-{}", Uuid::new_v4())
}

/// Creates a 16-hex-digit session id, the shape of Heroku's `session_nonce`.
fn new_session_nonce() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(code_lifetime_s: u64) -> State {
        State::new(Config {
            code_lifetime_s,
            ..Config::default()
        })
    }

    #[test]
    fn code_is_single_use() {
        let mut state = state_with(300);
        let now = Instant::now();
        let code = state.issue_code(0, vec!["global".to_string()], now);

        let tokens = state
            .exchange_code(&code, "standin-client-secret", now)
            .unwrap();
        assert_eq!(tokens.user_id, state.users[0].id);
        assert_eq!(
            state
                .exchange_code(&code, "standin-client-secret", now)
                .unwrap_err(),
            GrantError::UnknownOrUsed
        );
    }

    #[test]
    fn code_expires_after_its_lifetime() {
        let mut state = state_with(300);
        let now = Instant::now();
        let code = state.issue_code(0, vec!["global".to_string()], now);
        let later = now + Duration::from_secs(300);
        assert_eq!(
            state
                .exchange_code(&code, "standin-client-secret", later)
                .unwrap_err(),
            GrantError::Expired
        );
    }

    #[test]
    fn wrong_secret_leaves_code_usable() {
        let mut state = state_with(300);
        let now = Instant::now();
        let code = state.issue_code(0, vec!["global".to_string()], now);
        assert_eq!(
            state.exchange_code(&code, "wrong", now).unwrap_err(),
            GrantError::WrongSecret
        );
        assert!(state
            .exchange_code(&code, "standin-client-secret", now)
            .is_ok());
    }

    #[test]
    fn access_token_expires() {
        let mut state = state_with(300);
        let now = Instant::now();
        let code = state.issue_code(0, vec!["identity".to_string()], now);
        let tokens = state
            .exchange_code(&code, "standin-client-secret", now)
            .unwrap();
        assert!(state.authenticate(&tokens.access_token, now).is_some());
        assert!(state
            .authenticate(&tokens.access_token, now + Duration::from_secs(28_800))
            .is_none());
    }

    #[test]
    fn refresh_keeps_refresh_token_and_honours_revocation() {
        let mut state = state_with(300);
        let now = Instant::now();
        let code = state.issue_code(1, vec!["identity".to_string()], now);
        let first = state
            .exchange_code(&code, "standin-client-secret", now)
            .unwrap();

        let second = state
            .refresh(&first.refresh_token, "standin-client-secret", now)
            .unwrap();
        assert_eq!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        assert_eq!(second.session_nonce, first.session_nonce);

        state.revoke_refresh_tokens();
        assert_eq!(
            state
                .refresh(&first.refresh_token, "standin-client-secret", now)
                .unwrap_err(),
            GrantError::Revoked
        );
    }

    #[test]
    fn rate_limit_pool_empties_and_refills() {
        let mut state = state_with(300);
        let now = Instant::now();
        for _ in 0..4500 {
            assert!(state.spend_rate_limit("user", now).is_some());
        }
        assert_eq!(state.spend_rate_limit("user", now), None);
        // 75 per minute: 4 seconds refill 5 requests.
        assert_eq!(
            state.rate_limit_remaining("user", now + Duration::from_secs(4)),
            5
        );
    }

    #[test]
    fn huge_lifetime_never_expires() {
        let mut state = State::new(Config {
            code_lifetime_s: u64::MAX,
            ..Config::default()
        });
        let now = Instant::now();
        let code = state.issue_code(0, vec!["global".to_string()], now);
        assert!(state
            .exchange_code(
                &code,
                "standin-client-secret",
                now + Duration::from_secs(1_000_000)
            )
            .is_ok());
    }

    #[test]
    fn tokens_have_heroku_shape() {
        assert!(new_token().starts_with("HRKU-"));
        assert_eq!(new_session_nonce().len(), 16);
    }
}
