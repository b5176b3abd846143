//! Starting a login and checking its callback.

use super::*;
use crate::session::{LoginState, StateError, LOGIN_STATE_TTL_S, STATE_RANDOM_BYTES};
use crate::used_states::{self, StateDigest};

/// Most login state cookies a browser may hold at once. A login started beyond this
/// clears the older ones, so abandoned logins cannot grow the `cookie` header without end.
pub(super) const MAX_PENDING_LOGINS: usize = 5;

/// The login data a callback carries across its callouts.
#[derive(Debug, Clone)]
pub struct Login {
    pub(super) return_to: String,
    pub(super) state_cookie: String,
    pub(super) https: bool,
    pub(super) api_client: bool,
    /// The hash of the callback's `state`, so the glue can refuse a second use of it.
    pub(super) state_digest: StateDigest,
}

impl Gate {
    /// Sends a browser to Heroku's authorize page with a fresh `state`, sealed with the
    /// return path in a cookie of its own.
    pub(super) fn start_login(&self, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
        let https = request.is_https();
        let mut state_bytes = [0u8; STATE_RANDOM_BYTES];
        let mut nonce = [0u8; SEAL_RANDOM_BYTES];
        if random.fill(&mut state_bytes).is_err() || random.fill(&mut nonce).is_err() {
            let reason = "no random bytes available for the login state".to_string();
            let reply = self.notice(Notice::HerokuUnavailable, false, "/");
            return Outcome::new(Step::Reply(reply)).with(Event::LoginFailed { reason });
        }

        let return_to = safe_return_path(request.path_and_query());
        let login = LoginState::new(&state_bytes, return_to, now);
        let state = login.state.expose().to_string();
        let sealed = session::state_cookie_name(&self.config.cookie_name, &state)
            .and_then(|name| login.seal(&self.sealer, &name, &nonce).map(|value| (name, value)));
        let Some((cookie_name, sealed)) = sealed else {
            let reason = "could not seal the login state".to_string();
            let reply = self.notice(Notice::HerokuUnavailable, false, "/");
            return Outcome::new(Step::Reply(reply)).with(Event::LoginFailed { reason });
        };

        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.config.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.config.scope)
            .append_pair("state", &state)
            .finish();
        let separator = if self.config.authorize_url.contains('?') { '&' } else { '?' };
        let location = format!("{}{separator}{query}", self.config.authorize_url);

        let mut reply = Reply::redirect(&location);
        for stale in self.stale_state_cookies(request) {
            reply = reply.with_cookie(self.clear_cookie(&stale, https));
        }
        reply = reply.with_cookie(set_cookie(&cookie_name, &sealed, LOGIN_STATE_TTL_S, https));
        Outcome::new(Step::Reply(reply)).with(Event::LoginStarted)
    }

    /// Returns the login state cookies to clear so that, with the new one, at most
    /// `MAX_PENDING_LOGINS` remain. Only names of the form the filter issues (the prefix,
    /// then base64url) count, because each name is echoed back in a `Set-Cookie`.
    fn stale_state_cookies(&self, request: &Request) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for header in request.cookie_headers() {
            for (name, _) in cookie_pairs(header) {
                let id = name.strip_prefix(self.state_prefix.as_bytes()).unwrap_or_default();
                let issued_form = !id.is_empty()
                    && id.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'_');
                if issued_form {
                    let name = String::from_utf8_lossy(name).into_owned();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        let keep = MAX_PENDING_LOGINS - 1;
        let excess = names.len().saturating_sub(keep);
        names.truncate(excess);
        names
    }

    /// Checks a callback: Heroku's `error`, then `state` against this browser's login state
    /// cookie, then the `code`. Only a callback that passes all three calls Heroku.
    pub(super) fn on_callback(&self, request: &Request, now: u64) -> Outcome {
        let https = request.is_https();
        let api_client = request.is_api_client();
        let mut error = None;
        let mut state = None;
        let mut code = None;
        for (key, value) in form_urlencoded::parse(request.query()) {
            let slot = match key.as_ref() {
                "error" => &mut error,
                "state" => &mut state,
                "code" => &mut code,
                _ => continue,
            };
            slot.get_or_insert(value.into_owned());
        }

        // If the person pressed Deny, Heroku sends `error=access_denied` without `state`.
        if let Some(error) = error {
            let shown: String = error.chars().filter(char::is_ascii_graphic).take(40).collect();
            let reply = self.notice(Notice::AccessDenied, api_client, "/");
            let reason = format!("Heroku returned error {shown:?}");
            return Outcome::new(Step::Reply(reply)).with(Event::LoginFailed { reason });
        }

        let state = state.unwrap_or_default();
        let Some(state_cookie) = session::state_cookie_name(&self.config.cookie_name, &state) else {
            return self.reject_callback(None, api_client, https, StateError::MissingOrMalformed);
        };
        let login = match self.open_login_state(request, &state_cookie, &state, now) {
            Ok(login) => login,
            Err(error) => return self.reject_callback(Some(&state_cookie), api_client, https, error),
        };

        let state_digest = used_states::digest(&state);
        let login = Login { return_to: login.return_to, state_cookie, https, api_client, state_digest };
        let code = code.unwrap_or_default();
        let code_ok = !code.is_empty() && code.len() <= 512 && code.bytes().all(|byte| byte.is_ascii_graphic());
        if !code_ok {
            let reason = "callback has no usable code".to_string();
            return self.fail_login(&login, Notice::LoginNotVerified, Event::LoginFailed { reason });
        }

        let callout = heroku::token_request(&self.config, &code);
        Outcome::new(Step::Callout(callout, Pending::ExpectToken(Flow::Login(login))))
    }

    fn open_login_state(
        &self,
        request: &Request,
        cookie_name: &str,
        state: &str,
        now: u64,
    ) -> Result<LoginState, StateError> {
        let mut last_error = StateError::NoCookie;
        for header in request.cookie_headers() {
            for (_, value) in cookie_pairs(header).filter(|(name, _)| *name == cookie_name.as_bytes()) {
                match LoginState::open(&self.sealer, cookie_name, value, state, now) {
                    Ok(login) => return Ok(login),
                    Err(error) => last_error = error,
                }
            }
        }
        Err(last_error)
    }

    fn reject_callback(&self, state_cookie: Option<&str>, api_client: bool, https: bool, error: StateError) -> Outcome {
        let mut reply = self.notice(Notice::LoginNotVerified, api_client, "/");
        if let Some(name) = state_cookie {
            reply = reply.with_cookie(self.clear_cookie(name, https));
        }
        Outcome::new(Step::Reply(reply)).with(Event::LoginFailed { reason: error.to_string() })
    }

    /// Ends a login without a session: the page for `notice`, the login state cleared.
    pub(super) fn fail_login(&self, login: &Login, notice: Notice, event: Event) -> Outcome {
        let reply = self.notice(notice, login.api_client, &login.return_to)
            .with_cookie(self.clear_cookie(&login.state_cookie, login.https));
        Outcome::new(Step::Reply(reply)).with(event)
    }
}
