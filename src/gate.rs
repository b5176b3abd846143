//! The login gate: what to do with each request, and with each Heroku response.
//!
//! This module is pure. It receives the request headers as bytes, the current time and a
//! source of random bytes, and returns a [`Step`] that the proxy-wasm glue applies: forward
//! the request with header edits, answer it locally, or call Heroku and wait.

use std::fmt;

use crate::config::Config;
use crate::headers::{canonical_name, cookie_header_without, cookie_pairs};
use crate::heroku::{self, Account, AnswerError, Callout, CalloutResponse, Tokens};
use crate::pages::{self, Notice, Pages};
use crate::paths;
use crate::seal::{Sealer, SEAL_RANDOM_BYTES};
use crate::session::{self, LoginState, Session, StateError, LOGIN_STATE_TTL_S, STATE_RANDOM_BYTES};

/// Maximum length of the original path (with query) kept as the place to return to after login. A longer
/// one is dropped, not truncated, because a cut path can mean something else.
pub const MAX_RETURN_PATH_BYTES: usize = 2048;

/// Browsers reject a `Set-Cookie` value over 4096 bytes, which would loop the login.
pub const MAX_SET_COOKIE_BYTES: usize = 4096;

/// How long after a logout the next page shows "Logged out" instead of a new login, in
/// seconds. Without it, `/` would send the browser straight back through Heroku, which
/// logs a user with an active Heroku session in again at once.
const LOGGED_OUT_MARKER_TTL_S: u64 = 600;

/// Most login state cookies a browser may hold at once. A login started beyond this
/// clears the older ones, so abandoned logins cannot grow the `cookie` header without end.
const MAX_PENDING_LOGINS: usize = 5;

/// A source of secure random bytes. The filter reads the host's (WASI `random_get`);
/// tests use a fixed sequence.
pub trait Random {
    /// Fills `buf` with random bytes, or returns `Err` when no randomness is available.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

/// The parts of a request the gate reads. Header names are lowercase, as Envoy gives them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub headers: &'a [(String, Vec<u8>)],
}

impl<'a> Request<'a> {
    fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    fn method(&self) -> &'a [u8] {
        self.header(":method").unwrap_or_default()
    }

    /// The `:path` pseudo-header: the path with its query.
    fn path_and_query(&self) -> &'a [u8] {
        self.header(":path").unwrap_or_default()
    }

    fn path(&self) -> &'a [u8] {
        let full = self.path_and_query();
        let end = full.iter().position(|byte| *byte == b'?' || *byte == b'#').unwrap_or(full.len());
        full.get(..end).unwrap_or_default()
    }

    fn query(&self) -> &'a [u8] {
        let full = self.path_and_query();
        match full.iter().position(|byte| *byte == b'?') {
            Some(at) => {
                let rest = full.get(at + 1..).unwrap_or_default();
                let end = rest.iter().position(|byte| *byte == b'#').unwrap_or(rest.len());
                rest.get(..end).unwrap_or_default()
            }
            None => &[],
        }
    }

    /// True when Envoy received the request over https (`:scheme`, which Envoy derives from
    /// the connection or a trusted `x-forwarded-proto`).
    fn is_https(&self) -> bool {
        self.header(":scheme").is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"https"))
    }

    fn cookie_headers(&self) -> Vec<&'a [u8]> {
        self.headers
            .iter()
            .filter(|(name, _)| name == "cookie")
            .map(|(_, value)| value.as_slice())
            .collect()
    }

    /// Decides whether the client is a program that cannot follow a login redirect: any
    /// method but GET and HEAD, an XHR, a fetch that is not a navigation, or an `Accept`
    /// that wants JSON and not HTML.
    fn is_api_client(&self) -> bool {
        let method = self.method();
        if method != b"GET" && method != b"HEAD" {
            return true;
        }
        if self.header("x-requested-with").is_some_and(|value| value.eq_ignore_ascii_case(b"XMLHttpRequest")) {
            return true;
        }
        if self.header("sec-fetch-mode").is_some_and(|mode| !mode.eq_ignore_ascii_case(b"navigate")) {
            return true;
        }
        self.header("accept").is_some_and(wants_json_not_html)
    }
}

/// Reads an `Accept` value: true when some media range names JSON and none names HTML.
/// Ranges with `q=0` are refusals and do not count.
fn wants_json_not_html(accept: &[u8]) -> bool {
    let text = String::from_utf8_lossy(accept).to_ascii_lowercase();
    let mut json = false;
    let mut html = false;
    for range in text.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let refused = parts.any(|param| {
            let param = param.trim();
            param.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        if refused {
            continue;
        }
        json |= media == "application/json" || media.ends_with("+json");
        html |= media == "text/html" || media == "application/xhtml+xml";
    }
    json && !html
}

/// Request header edits for a request that goes on to the upstream app.
#[derive(Default, PartialEq, Eq)]
pub struct Forward {
    /// Header names, as the client spelled them, to remove.
    pub remove: Vec<String>,
    /// Identity headers to set.
    pub set: Vec<(String, String)>,
    /// The new `cookie` header: `None` leaves it alone, `Some(None)` removes it.
    pub cookie: Option<Option<Vec<u8>>>,
}

impl fmt::Debug for Forward {
    /// Shows header names only: the values include the token when `expose_token` is on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<&str> = self.set.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Forward")
            .field("remove", &self.remove)
            .field("set", &set)
            .field("cookie_changed", &self.cookie.is_some())
            .finish()
    }
}

/// A response the filter sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn new(status: u32, content_type: &str, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body,
        }
    }

    fn redirect(location: &str) -> Self {
        let mut reply = Reply::new(302, "text/html; charset=utf-8", pages::redirect_html(location));
        reply.headers.push(("location".into(), location.into()));
        reply
    }

    fn notice(pages: &Pages, notice: Notice, api_client: bool, action_href: &str) -> Self {
        if api_client {
            Reply::new(notice.status(), "application/json", pages::json(notice))
        } else {
            Reply::new(notice.status(), "text/html; charset=utf-8", pages.html(notice, action_href))
        }
    }

    fn with_cookie(mut self, set_cookie: String) -> Self {
        self.headers.push(("set-cookie".into(), set_cookie));
        self
    }
}

/// The next action for the glue.
#[derive(Debug)]
pub enum Step {
    Forward(Forward),
    Reply(Reply),
    /// Send the callout, then hand its response and `Pending` back to the gate.
    Callout(Callout, Pending),
}

/// Something worth a counter and a log line. Values never include secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LoginStarted,
    LoginSucceeded { email: String },
    LoginFailed { reason: String },
    LoginForbidden { email: String },
    SessionInvalid { reason: String },
    CalloutFailed { endpoint: &'static str, reason: String },
    Unauthorized,
    LoggedOut,
}

/// A decision and the events it produced.
#[derive(Debug)]
pub struct Outcome {
    pub step: Step,
    pub events: Vec<Event>,
}

impl Outcome {
    fn new(step: Step) -> Self {
        Outcome { step, events: Vec::new() }
    }

    fn with(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }
}

/// A login waiting for Heroku, named for the response it waits for.
#[derive(Debug)]
pub enum Pending {
    ExpectToken(Login),
    ExpectAccount(Login, Tokens),
}

/// The login data a callback carries across its callouts.
#[derive(Debug, Clone)]
pub struct Login {
    return_to: String,
    state_cookie: String,
    https: bool,
    api_client: bool,
}

/// The login gate for one plugin configuration.
#[derive(Debug)]
pub struct Gate {
    config: Config,
    sealer: Sealer,
    state_prefix: String,
    logged_out_marker: String,
}

impl Gate {
    pub fn new(config: Config) -> Self {
        let sealer = Sealer::new(&config.secret_key);
        let state_prefix = session::state_cookie_prefix(&config.cookie_name);
        let logged_out_marker = format!("{}-logged-out", config.cookie_name);
        Gate { config, sealer, state_prefix, logged_out_marker }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decides what to do with a request, in this order:
    /// 1. the callback path finishes a login;
    /// 2. the logout path ends the session and marks the browser as logged out;
    /// 3. the forbidden path gets a 403 page, or passes without identity when so configured;
    /// 4. skip paths pass without login;
    /// 5. a valid session passes with the identity headers set;
    /// 6. anything else gets a 401 (API clients) or a redirect to Heroku (browsers).
    ///
    /// Every request that goes upstream loses client-sent identity headers and the filter's
    /// own cookies.
    pub fn on_request(&self, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
        let path = request.path();

        if self.is_route(path, &self.config.callback_path) {
            return self.on_callback(request, now);
        }

        if self.is_route(path, &self.config.logout_path) {
            let https = request.is_https();
            let reply = Reply::redirect("/")
                .with_cookie(self.clear_cookie(&self.config.cookie_name, https))
                .with_cookie(set_cookie(&self.logged_out_marker, "1", LOGGED_OUT_MARKER_TTL_S, https));
            return Outcome::new(Step::Reply(reply)).with(Event::LoggedOut);
        }

        if self.is_route(path, &self.config.forbidden_path) {
            if self.config.forbidden_passthrough {
                return Outcome::new(Step::Forward(self.forward(request, None)));
            }
            let reply = Reply::notice(&self.config.pages, Notice::Forbidden, request.is_api_client(), &self.config.logout_path);
            return Outcome::new(Step::Reply(reply));
        }

        // Skip rules see the path without its query, so `?x=/healthz` cannot widen them,
        // and never a path that an app could resolve elsewhere (`/public/..%2Fadmin`).
        let path_text = String::from_utf8_lossy(path);
        if paths::is_unambiguous(path) && self.config.skip_paths.iter().any(|pattern| pattern.matches(&path_text)) {
            return Outcome::new(Step::Forward(self.forward(request, None)));
        }

        let mut events = Vec::new();
        match self.find_session(request, now) {
            Ok(session) => return Outcome::new(Step::Forward(self.forward(request, Some(&session)))),
            Err(Some(reason)) => events.push(Event::SessionInvalid { reason }),
            Err(None) => {}
        }

        let mut outcome = if request.is_api_client() {
            Outcome::new(Step::Reply(Reply::notice(&self.config.pages, Notice::Unauthorized, true, "/"))).with(Event::Unauthorized)
        } else if self.has_cookie(request, &self.logged_out_marker) {
            // If the browser just logged out, say so once; its link then starts a login.
            let href = safe_return_path(request.path_and_query());
            let reply = Reply::notice(&self.config.pages, Notice::LoggedOut, false, &href)
                .with_cookie(self.clear_cookie(&self.logged_out_marker, request.is_https()));
            Outcome::new(Step::Reply(reply))
        } else {
            self.start_login(request, now, random)
        };
        events.append(&mut outcome.events);
        outcome.events = events;
        outcome
    }

    /// Continues a login with Heroku's response to the callout that `pending` waited for.
    pub fn on_callout_response(
        &self,
        pending: Pending,
        response: &CalloutResponse,
        now: u64,
        random: &mut dyn Random,
    ) -> Outcome {
        match pending {
            Pending::ExpectToken(login) => match heroku::parse_tokens(response) {
                Ok(tokens) => {
                    let callout = heroku::account_request(&self.config, &tokens.access_token);
                    Outcome::new(Step::Callout(callout, Pending::ExpectAccount(login, tokens)))
                }
                // If Heroku rejects the code itself, the login is stale or replayed: the
                // person can start again, so this is a failed login, not an outage.
                Err(AnswerError::Status(status @ (400 | 401))) => {
                    let reason = format!("token endpoint rejected the code with status {status}");
                    self.fail_login(&login, Notice::LoginNotVerified, Event::LoginFailed { reason })
                }
                Err(error) => self.fail_login(
                    &login,
                    Notice::HerokuUnavailable,
                    Event::CalloutFailed { endpoint: "token", reason: error.to_string() },
                ),
            },
            Pending::ExpectAccount(login, tokens) => match heroku::parse_account(response) {
                Ok(account) => self.finish_login(login, tokens, account, now, random),
                Err(error) => self.fail_login(
                    &login,
                    Notice::HerokuUnavailable,
                    Event::CalloutFailed { endpoint: "account", reason: error.to_string() },
                ),
            },
        }
    }

    /// Ends a login whose callout could not even be sent (for example, an unknown cluster).
    pub fn on_callout_not_sent(&self, pending: Pending, reason: &str) -> Outcome {
        let (login, endpoint) = match pending {
            Pending::ExpectToken(login) => (login, "token"),
            Pending::ExpectAccount(login, _) => (login, "account"),
        };
        let event = Event::CalloutFailed { endpoint, reason: format!("not sent: {reason}") };
        self.fail_login(&login, Notice::HerokuUnavailable, event)
    }

    /// Matches a route path exactly, with or without its trailing slash, so a callback URL
    /// registered at Heroku without the slash still works.
    fn is_route(&self, path: &[u8], route: &str) -> bool {
        path == route.as_bytes() || path == route.trim_end_matches('/').as_bytes()
    }

    /// Finds a valid session among the session cookies. Returns `Err(None)` when there is
    /// no session cookie and `Err(Some(reason))` when every one was invalid.
    fn find_session(&self, request: &Request, now: u64) -> Result<Session, Option<String>> {
        let name = self.config.cookie_name.as_bytes();
        let mut last_error = None;
        for header in request.cookie_headers() {
            for (_, value) in cookie_pairs(header).filter(|(cookie, _)| *cookie == name) {
                match Session::open(&self.sealer, &self.config.cookie_name, value, now) {
                    Ok(session) => return Ok(session),
                    Err(error) => last_error = Some(error.to_string()),
                }
            }
        }
        Err(last_error)
    }

    /// Builds the edits for a request that goes upstream, with identity when logged in.
    fn forward(&self, request: &Request, session: Option<&Session>) -> Forward {
        let identity = self.config.headers.all().map(|name| canonical_name(name.as_bytes()));
        let mut remove: Vec<String> = Vec::new();
        for (name, _) in request.headers {
            let spelled = canonical_name(name.as_bytes());
            if identity.contains(&spelled) && !remove.contains(name) {
                remove.push(name.clone());
            }
        }

        let mut set = Vec::new();
        if let Some(session) = session {
            let headers = &self.config.headers;
            set.push((headers.email.clone(), session.email.clone()));
            set.push((headers.id.clone(), session.user_id.clone()));
            if let Some(name) = &session.name {
                set.push((headers.name.clone(), encode_header_text(name)));
            }
            if self.config.expose_token {
                set.push((headers.token.clone(), session.access_token.expose().to_string()));
            }
        }

        let cookie = cookie_header_without(&request.cookie_headers(), |name| self.is_own_cookie(name));
        Forward { remove, set, cookie }
    }

    fn is_own_cookie(&self, name: &[u8]) -> bool {
        name == self.config.cookie_name.as_bytes()
            || name == self.logged_out_marker.as_bytes()
            || name.starts_with(self.state_prefix.as_bytes())
    }

    fn has_cookie(&self, request: &Request, name: &str) -> bool {
        request
            .cookie_headers()
            .iter()
            .any(|header| cookie_pairs(header).any(|(cookie, _)| cookie == name.as_bytes()))
    }

    /// Sends a browser to Heroku's authorize page with a fresh `state`, sealed with the
    /// return path in a cookie of its own.
    fn start_login(&self, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
        let https = request.is_https();
        let mut state_bytes = [0u8; STATE_RANDOM_BYTES];
        let mut nonce = [0u8; SEAL_RANDOM_BYTES];
        if random.fill(&mut state_bytes).is_err() || random.fill(&mut nonce).is_err() {
            let reason = "no random bytes available for the login state".to_string();
            let reply = Reply::notice(&self.config.pages, Notice::HerokuUnavailable, false, "/");
            return Outcome::new(Step::Reply(reply)).with(Event::LoginFailed { reason });
        }

        let return_to = safe_return_path(request.path_and_query());
        let login = LoginState::new(&state_bytes, return_to, now);
        let state = login.state.expose().to_string();
        let sealed = session::state_cookie_name(&self.config.cookie_name, &state)
            .and_then(|name| login.seal(&self.sealer, &name, &nonce).map(|value| (name, value)));
        let Some((cookie_name, sealed)) = sealed else {
            let reason = "could not seal the login state".to_string();
            let reply = Reply::notice(&self.config.pages, Notice::HerokuUnavailable, false, "/");
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
    fn on_callback(&self, request: &Request, now: u64) -> Outcome {
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
            let reply = Reply::notice(&self.config.pages, Notice::AccessDenied, api_client, "/");
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

        let login = Login { return_to: login.return_to, state_cookie, https, api_client };
        let code = code.unwrap_or_default();
        let code_ok = !code.is_empty() && code.len() <= 512 && code.bytes().all(|byte| byte.is_ascii_graphic());
        if !code_ok {
            let reason = "callback has no usable code".to_string();
            return self.fail_login(&login, Notice::LoginNotVerified, Event::LoginFailed { reason });
        }

        let callout = heroku::token_request(&self.config, &code);
        Outcome::new(Step::Callout(callout, Pending::ExpectToken(login)))
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
        let mut reply = Reply::notice(&self.config.pages, Notice::LoginNotVerified, api_client, "/");
        if let Some(name) = state_cookie {
            reply = reply.with_cookie(self.clear_cookie(name, https));
        }
        Outcome::new(Step::Reply(reply)).with(Event::LoginFailed { reason: error.to_string() })
    }

    /// Ends a login without a session: the page for `notice`, the login state cleared.
    fn fail_login(&self, login: &Login, notice: Notice, event: Event) -> Outcome {
        let reply = Reply::notice(&self.config.pages, notice, login.api_client, &login.return_to)
            .with_cookie(self.clear_cookie(&login.state_cookie, login.https));
        Outcome::new(Step::Reply(reply)).with(event)
    }

    /// Applies the allow rule and, for an allowed user, issues a fresh session cookie and
    /// sends the browser back to where it started.
    fn finish_login(&self, login: Login, tokens: Tokens, account: Account, now: u64, random: &mut dyn Random) -> Outcome {
        if tokens.user_id.as_ref().is_some_and(|user_id| *user_id != account.id) {
            let reason = "account id differs from the token's user_id".to_string();
            return self.fail_login(&login, Notice::HerokuUnavailable, Event::CalloutFailed { endpoint: "account", reason });
        }

        let clear_state = self.clear_cookie(&login.state_cookie, login.https);
        if !self.config.allow.allows(&account.email) {
            let reply = Reply::redirect(&self.config.forbidden_path).with_cookie(clear_state);
            return Outcome::new(Step::Reply(reply)).with(Event::LoginForbidden { email: account.email });
        }

        let session = Session {
            email: account.email,
            user_id: account.id,
            name: account.name,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: now.saturating_add(tokens.expires_in_s),
            issued_at: now,
        };
        let mut nonce = [0u8; SEAL_RANDOM_BYTES];
        let sealed = match random.fill(&mut nonce) {
            Ok(()) => session.seal(&self.sealer, &self.config.cookie_name, &nonce),
            Err(RandomUnavailable) => None,
        };
        let set_session = sealed.map(|value| {
            set_cookie(&self.config.cookie_name, &value, session.remaining_s(now), login.https)
        });
        let Some(set_session) = set_session.filter(|cookie| cookie.len() <= MAX_SET_COOKIE_BYTES) else {
            let reason = "session cookie could not be sealed within 4096 bytes".to_string();
            return self.fail_login(&login, Notice::HerokuUnavailable, Event::LoginFailed { reason });
        };

        let reply = Reply::redirect(&login.return_to).with_cookie(set_session).with_cookie(clear_state);
        Outcome::new(Step::Reply(reply)).with(Event::LoginSucceeded { email: session.email })
    }

    fn clear_cookie(&self, name: &str, https: bool) -> String {
        set_cookie(name, "", 0, https)
    }
}

/// Formats a `Set-Cookie` value with the attributes every cookie of this filter has.
fn set_cookie(name: &str, value: &str, max_age_s: u64, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// Returns `path_and_query` when a browser can only resolve it to this origin, else `/`.
///
/// It must start with one `/`: `//host` and `/\host` are read by browsers as another host.
/// Only visible ASCII is kept, because control characters and spaces can change how a
/// browser parses a `Location` header.
pub fn safe_return_path(path_and_query: &[u8]) -> String {
    let plain = path_and_query.len() <= MAX_RETURN_PATH_BYTES
        && path_and_query.first() == Some(&b'/')
        && !matches!(path_and_query.get(1), Some(b'/' | b'\\'))
        && path_and_query.iter().all(|byte| byte.is_ascii_graphic() && *byte != b'\\');
    match (plain, std::str::from_utf8(path_and_query)) {
        (true, Ok(text)) => text.to_string(),
        _ => "/".to_string(),
    }
}

/// Encodes free text for a header value: `%` and every byte outside printable ASCII are
/// percent-encoded as UTF-8, so a plain ASCII name arrives unchanged and any name can be
/// recovered with a standard percent-decode.
pub fn encode_header_text(text: &str) -> String {
    const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    percent_encoding::utf8_percent_encode(text, ENCODED).to_string()
}

#[cfg(test)]
mod tests;
