//! Heroku's responses during a login or a token refresh: first the tokens, then the account,
//! then the user's teams when the allow rule names teams and the email alone does not admit.

use super::login::Login;
use super::*;
use crate::heroku::{Account, AnswerError, CalloutResponse, Tokens};
use crate::refresh::SessionKey;
use crate::used_states::StateDigest;

/// Most `/teams` pages read for one user, at 200 teams a page.
const MAX_TEAMS_PAGES: u32 = 25;

/// The reason Heroku is being called.
#[derive(Debug)]
pub enum Flow {
    /// A callback exchanging its code for a first session.
    Login(Login),
    /// A request whose session's access token is about to expire.
    Refresh(Refresh),
}

/// A request waiting for its session's token refresh.
#[derive(Debug)]
pub struct Refresh {
    session: Session,
    key: SessionKey,
    https: bool,
    api_client: bool,
}

/// A flow waiting for Heroku, named for the response it waits for.
#[derive(Debug)]
pub enum Pending {
    ExpectToken(Flow),
    ExpectAccount(Flow, Tokens),
    ExpectTeams { flow: Flow, tokens: Tokens, account: Account, pages_read: u32 },
}

impl Pending {
    /// Returns the hash of the callback `state` when this is a login about to exchange its
    /// code, so the glue can check that the state was not used before.
    pub fn login_state_digest(&self) -> Option<&StateDigest> {
        match self {
            Pending::ExpectToken(Flow::Login(login)) => Some(&login.state_digest),
            _ => None,
        }
    }
}

impl Gate {
    /// Rejects a callback whose `state` was already exchanged, without calling Heroku.
    pub fn on_callback_replayed(&self, pending: Pending) -> Outcome {
        let reason = "callback state was already used".to_string();
        match pending {
            Pending::ExpectToken(Flow::Login(login)) => {
                self.fail_login(&login, Notice::LoginNotVerified, Event::LoginFailed { reason })
            }
            // Only a login's first callout is checked for replays; anything else is a caller error.
            _ => Outcome::new(Step::Reply(self.notice(Notice::LoginNotVerified, true, "/")))
                .with(Event::LoginFailed { reason }),
        }
    }

    /// Sends the session's refresh token to Heroku. The request waits for the result.
    pub(super) fn start_refresh(&self, request: &Request, session: Session, key: SessionKey) -> Outcome {
        let Some(refresh_token) = session.refresh_token.clone() else {
            // `use_session` only refreshes sessions that hold a refresh token.
            let reason = "session has no refresh token".to_string();
            return Outcome::new(Step::Reply(self.notice(Notice::Unauthorized, true, "/")))
                .with(Event::SessionInvalid { reason });
        };
        let callout = heroku::refresh_request(&self.config, &refresh_token);
        let refresh = Refresh { session, key, https: request.is_https(), api_client: request.is_api_client() };
        Outcome::new(Step::Callout(callout, Pending::ExpectToken(Flow::Refresh(refresh))))
    }

    /// Continues a login or refresh with Heroku's response to the callout that `pending`
    /// waited for. `request` is the request that started it.
    pub fn on_callout_response(
        &self,
        pending: Pending,
        response: &CalloutResponse,
        request: &Request,
        now: u64,
        random: &mut dyn Random,
    ) -> Outcome {
        match pending {
            Pending::ExpectToken(flow) => match heroku::parse_tokens(response, self.config.default_expires_in_s) {
                Ok(mut tokens) => {
                    if let Flow::Refresh(refresh) = &flow {
                        // If the refresh response has no refresh token, the old one stays valid.
                        if tokens.refresh_token.is_none() {
                            tokens.refresh_token = refresh.session.refresh_token.clone();
                        }
                    }
                    let callout = heroku::account_request(&self.config, &tokens.access_token);
                    Outcome::new(Step::Callout(callout, Pending::ExpectAccount(flow, tokens)))
                }
                Err(AnswerError::Status(status @ (400 | 401))) => self.token_rejected(flow, status, request, now, random),
                Err(error) => self.heroku_failed(flow, "token", error.to_string(), request, now),
            },
            Pending::ExpectAccount(flow, tokens) => match heroku::parse_account(response) {
                Ok(account) => self.check_account(flow, tokens, account, request, now, random),
                Err(error) => self.heroku_failed(flow, "account", error.to_string(), request, now),
            },
            Pending::ExpectTeams { flow, tokens, account, pages_read } => match heroku::parse_teams(response) {
                Ok(page) => {
                    if self.config.allow.allows_any_team(page.names_and_ids.iter().map(String::as_str)) {
                        return self.admit(flow, tokens, account, request, now, random);
                    }
                    match page.next_range {
                        Some(range) if pages_read < MAX_TEAMS_PAGES => {
                            let callout = heroku::teams_request(&self.config, &tokens.access_token, Some(&range));
                            let pages_read = pages_read + 1;
                            Outcome::new(Step::Callout(callout, Pending::ExpectTeams { flow, tokens, account, pages_read }))
                        }
                        _ => self.forbid(flow, account.email, request),
                    }
                }
                // If the token's scope cannot read teams, membership cannot admit anyone.
                Err(AnswerError::Status(403)) => {
                    let scope = self.config.scope.clone();
                    self.forbid(flow, account.email, request).with(Event::TeamsScopeMissing { scope })
                }
                Err(error) => self.heroku_failed(flow, "teams", error.to_string(), request, now),
            },
        }
    }

    /// Ends a flow whose callout could not even be sent (for example, an unknown cluster).
    pub fn on_callout_not_sent(&self, pending: Pending, reason: &str, request: &Request, now: u64) -> Outcome {
        let (flow, endpoint) = match pending {
            Pending::ExpectToken(flow) => (flow, "token"),
            Pending::ExpectAccount(flow, _) => (flow, "account"),
            Pending::ExpectTeams { flow, .. } => (flow, "teams"),
        };
        self.heroku_failed(flow, endpoint, format!("not sent: {reason}"), request, now)
    }

    /// Applies the allow rule to the account, reading the user's teams when only team
    /// membership could admit them.
    fn check_account(
        &self,
        flow: Flow,
        tokens: Tokens,
        account: Account,
        request: &Request,
        now: u64,
        random: &mut dyn Random,
    ) -> Outcome {
        let expected_id = match &flow {
            Flow::Login(_) => tokens.user_id.as_deref(),
            Flow::Refresh(refresh) => Some(refresh.session.user_id.as_str()),
        };
        if expected_id.is_some_and(|id| id != account.id) {
            let reason = "the account id differs from the one the tokens belong to".to_string();
            return self.heroku_failed(flow, "account", reason, request, now);
        }

        if self.config.allow.allows(&account.email) {
            return self.admit(flow, tokens, account, request, now, random);
        }
        if self.config.allow.checks_teams() {
            let callout = heroku::teams_request(&self.config, &tokens.access_token, None);
            return Outcome::new(Step::Callout(callout, Pending::ExpectTeams { flow, tokens, account, pages_read: 1 }));
        }
        self.forbid(flow, account.email, request)
    }

    /// Issues the session of an allowed user. A login redirects back to where it started;
    /// a refreshed request goes on to the app with the new session cookie on its response.
    fn admit(
        &self,
        flow: Flow,
        tokens: Tokens,
        account: Account,
        request: &Request,
        now: u64,
        random: &mut dyn Random,
    ) -> Outcome {
        let issued_at = match &flow {
            Flow::Login(_) => now,
            Flow::Refresh(refresh) => refresh.session.issued_at,
        };
        let session = Session {
            email: account.email,
            user_id: account.id,
            name: account.name,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: now.saturating_add(tokens.expires_in_s),
            issued_at,
        };

        match flow {
            Flow::Login(login) => {
                let Some(set_session) = self.session_cookie(&session, login.https, now, random) else {
                    let reason = "session cookie could not be sealed within 4096 bytes".to_string();
                    return self.fail_login(&login, Notice::HerokuUnavailable, Event::LoginFailed { reason });
                };
                let reply = Reply::redirect(&login.return_to)
                    .with_cookie(set_session)
                    .with_cookie(self.clear_cookie(&login.state_cookie, login.https));
                Outcome::new(Step::Reply(reply)).with(Event::LoginSucceeded { email: session.email })
            }
            Flow::Refresh(refresh) => {
                let cookie = self.session_cookie(&session, refresh.https, now, random);
                let mut forward = self.forward(request, Some(&session));
                self.finish_refresh(&refresh.key, cookie.clone().map(|cookie| (session.clone(), cookie)), now);
                forward.response_cookies.extend(cookie);
                Outcome::new(Step::Forward(forward)).with(Event::RefreshSucceeded { email: session.email })
            }
        }
    }

    /// Turns away a user the allow rule does not admit. A refreshed session ends here too,
    /// because a user who left the allowed teams or domain must lose access.
    fn forbid(&self, flow: Flow, email: String, request: &Request) -> Outcome {
        let event = Event::LoginForbidden { email };
        match flow {
            Flow::Login(login) => {
                let reply = Reply::redirect(&self.config.forbidden_path)
                    .with_cookie(self.clear_cookie(&login.state_cookie, login.https));
                Outcome::new(Step::Reply(reply)).with(event)
            }
            Flow::Refresh(refresh) => {
                self.finish_refresh(&refresh.key, None, 0);
                let reply = if refresh.api_client {
                    self.notice(Notice::Forbidden, true, "/")
                } else {
                    Reply::redirect(&self.config.forbidden_path)
                };
                let reply = reply.with_cookie(self.clear_cookie(&self.config.cookie_name, request.is_https()));
                Outcome::new(Step::Reply(reply)).with(event)
            }
        }
    }

    /// Handles a code or refresh token that Heroku rejected with 400 or 401.
    fn token_rejected(&self, flow: Flow, status: u16, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
        match flow {
            // If Heroku rejects the code itself, the login is stale or replayed: the person
            // can start again, so this is a failed login, not an outage.
            Flow::Login(login) => {
                let reason = format!("token endpoint rejected the code with status {status}");
                self.fail_login(&login, Notice::LoginNotVerified, Event::LoginFailed { reason })
            }
            // If Heroku rejects the refresh token (revoked, or expired), the session is over:
            // the request gets the reply for a request without a session, and the cookie is cleared.
            Flow::Refresh(refresh) => {
                self.finish_refresh(&refresh.key, None, now);
                let reason = format!("token endpoint rejected the refresh token with status {status}");
                let event = Event::RefreshRejected { email: refresh.session.email.clone(), reason };
                let mut outcome = self.ask_for_login(request, now, random);
                if let Step::Reply(reply) = outcome.step {
                    let cleared = reply.with_cookie(self.clear_cookie(&self.config.cookie_name, request.is_https()));
                    outcome.step = Step::Reply(cleared);
                }
                outcome.events.insert(0, event);
                outcome
            }
        }
    }

    /// Handles Heroku being unreachable or sending an unusable response. A login ends
    /// with the 502 page. A refresh goes on with the old session while its token is still
    /// valid, and a later request tries again.
    fn heroku_failed(&self, flow: Flow, endpoint: &'static str, reason: String, request: &Request, now: u64) -> Outcome {
        match flow {
            Flow::Login(login) => {
                let event = Event::CalloutFailed { endpoint, reason, during_login: true };
                self.fail_login(&login, Notice::HerokuUnavailable, event)
            }
            Flow::Refresh(refresh) => {
                self.finish_refresh(&refresh.key, None, now);
                let event = Event::CalloutFailed { endpoint, reason, during_login: false };
                if !refresh.session.token_expired(now) {
                    return Outcome::new(Step::Forward(self.forward(request, Some(&refresh.session)))).with(event);
                }
                let href = safe_return_path(request.path_and_query());
                Outcome::new(Step::Reply(self.notice(Notice::HerokuUnavailable, refresh.api_client, &href))).with(event)
            }
        }
    }

    fn finish_refresh(&self, key: &SessionKey, result: Option<(Session, String)>, now: u64) {
        if let Ok(mut table) = self.refreshes.try_borrow_mut() {
            table.finish(key, result, now);
        }
    }
}
