//! The login gate: what to do with each request, and with each Heroku response.
//!
//! This module is pure. It receives the request headers as bytes, the current time and a
//! source of random bytes, and returns a [`Step`] that the proxy-wasm glue applies: forward
//! the request with header edits, send a local reply, or call Heroku and wait.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;

use crate::config::Config;
use crate::headers::{canonical_name, cookie_header_without, cookie_pairs, is_spelling_of};
use crate::heroku::{self, Callout};
use crate::pages::{self, Notice, Pages};
use crate::paths;
use crate::refresh::{session_key, Lookup, RefreshTable};
use crate::seal::{Sealer, SEAL_RANDOM_BYTES};
use crate::session::{self, OpenedSession, Session, SessionCache, SessionError};

pub use crate::request::{safe_return_path, Request, RequestSummary, MAX_RETURN_PATH_BYTES};
pub use login::Login;
pub use verify::{Flow, Pending, Refresh};

mod login;
mod verify;

/// Browsers reject a `Set-Cookie` value over 4096 bytes, which would loop the login.
pub const MAX_SET_COOKIE_BYTES: usize = 4096;

/// How long after a logout the next page shows "Logged out" instead of a new login, in
/// seconds. Without it, `/` would send the browser straight back through Heroku, which
/// logs a user with an active Heroku session in again at once.
const LOGGED_OUT_MARKER_TTL_S: u64 = 600;

/// A source of secure random bytes. The filter reads the host's (WASI `random_get`);
/// tests use a fixed sequence.
pub trait Random {
    /// Fills `buf` with random bytes, or returns `Err` when no randomness is available.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

/// Request header edits for a request that goes on to the upstream app.
#[derive(Default, PartialEq, Eq)]
pub struct Forward {
    /// Header names, as the client spelled them, to remove: every client-sent identity
    /// header, so none is left when `set` is applied.
    pub remove: Vec<String>,
    /// Identity headers to add after `remove`. Shared, so that a cached session's headers
    /// are handed out without copying.
    pub set: Identity,
    /// The new `cookie` header: `None` leaves it alone, `Some(None)` removes it. Shared, so
    /// that a cached header's upstream form is handed out without copying.
    pub cookie: UpstreamCookie,
    /// `Set-Cookie` values to add to the upstream response: a refreshed or re-sealed
    /// session. They are added, so the app's own `Set-Cookie` headers stay.
    pub response_cookies: Vec<String>,
}

impl fmt::Debug for Forward {
    /// Shows header names only: the values include the token when `expose_token` is on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("remove", &self.remove)
            .field("set", &identity_names(&self.set))
            .field("cookie_changed", &self.cookie.is_some())
            .field("response_cookies", &self.response_cookies.len())
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
// A step lives for one callback and is moved once, so boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
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
    /// A Heroku request failed. `during_login` is true for a login and false for a token refresh.
    CalloutFailed { endpoint: &'static str, reason: String, during_login: bool },
    Unauthorized,
    LoggedOut,
    RefreshSucceeded { email: String },
    /// Heroku rejected the refresh token, so the session ended.
    RefreshRejected { email: String, reason: String },
    /// The allow rule names teams, but the token's scope cannot read them.
    TeamsScopeMissing { scope: String },
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

/// Identity headers as (name, value) pairs.
pub type Identity = Rc<[(Rc<str>, Rc<str>)]>;

/// Returns the header names of `identity`. Debug output shows only these, because with
/// `expose_token` one value is the access token.
fn identity_names(identity: &Identity) -> Vec<&str> {
    identity.iter().map(|(name, _)| &**name).collect()
}

/// A change to the `cookie` header sent upstream: `None` leaves it alone, `Some(None)`
/// removes it, and `Some(Some(value))` replaces it.
pub type UpstreamCookie = Option<Option<Rc<[u8]>>>;

/// A session cookie value that opened, with the identity headers its session yields, as the
/// VM's session cache keeps it.
struct OpenedCookie {
    opened: OpenedSession,
    identity: Identity,
}

/// A whole `cookie` header as the VM's header cache keeps it: the session it carries, the
/// range of the sealed value in the header, and the header to send upstream.
/// A browser sends the same header on request after request, so a hit skips parsing it.
struct ParsedCookieHeader {
    cookie: Rc<OpenedCookie>,
    sealed: Range<usize>,
    upstream: UpstreamCookie,
}

/// The longest `cookie` header that the header cache keeps. Longer ones are parsed on every
/// request, so that a client cannot fill the cache with huge headers.
const MAX_CACHED_COOKIE_HEADER_BYTES: usize = 4096;

/// A valid session found in a request.
struct FoundSession<'r> {
    cookie: Rc<OpenedCookie>,
    /// The sealed cookie value, which keys the session's token refresh.
    sealed: &'r [u8],
    /// The `cookie` header to send upstream, when the header cache already knew it.
    upstream: Option<UpstreamCookie>,
}

impl fmt::Debug for OpenedCookie {
    /// Shows identity header names only: with `expose_token` a value is the access token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedCookie")
            .field("opened", &self.opened)
            .field("identity", &identity_names(&self.identity))
            .finish()
    }
}

/// The login gate for one plugin configuration, in one VM.
#[derive(Debug)]
pub struct Gate {
    config: Config,
    sealer: Sealer,
    state_prefix: String,
    logged_out_marker: String,
    /// Refreshes in flight in this VM. A `RefCell` because the gate is shared by the VM's
    /// streams, which Envoy runs one callback at a time.
    refreshes: RefCell<RefreshTable>,
    /// Session cookie values that opened in this VM, shared like `refreshes`.
    sessions: RefCell<SessionCache<OpenedCookie>>,
    /// Whole `cookie` headers that carried a valid session in this VM, shared like `refreshes`.
    cookie_headers: RefCell<SessionCache<ParsedCookieHeader>>,
    /// The configured identity header names: email, id, name and token.
    identity_header_names: [Rc<str>; 4],
    /// The identity header names as `canonical_name` spells them, for finding client-sent
    /// spellings without allocating.
    identity_names: [Vec<u8>; 4],
    /// Bit `n` is set when an identity header name is `n` bytes long (`n` below 64), so that
    /// most header names are ruled out by one test.
    identity_name_lengths: u64,
}

impl Gate {
    pub fn new(config: Config) -> Self {
        let sealer = Sealer::with_previous(&config.secret_key, &config.previous_secret_keys);
        let state_prefix = session::state_cookie_prefix(&config.cookie_name);
        let logged_out_marker = format!("{}-logged-out", config.cookie_name);
        let identity_names = config.headers.all().map(|name| canonical_name(name.as_bytes()));
        let identity_header_names = config.headers.all().map(Rc::from);
        let identity_name_lengths = identity_names.iter().fold(0, |lengths, name| lengths | length_bit(name.len()));
        Gate {
            identity_names,
            identity_name_lengths,
            identity_header_names,
            config,
            sealer,
            state_prefix,
            logged_out_marker,
            refreshes: RefCell::default(),
            sessions: RefCell::default(),
            cookie_headers: RefCell::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decides what to do with a request, in this order:
    /// 1. the callback path finishes a login;
    /// 2. the logout path ends the session and marks the browser as logged out;
    /// 3. the forbidden path gets a 403 page, or passes without identity when so configured;
    /// 4. skip paths pass without login;
    /// 5. a valid session passes with the identity headers set, after a token refresh when
    ///    its access token is about to expire;
    /// 6. anything else gets a 401 (API clients) or a redirect to Heroku (browsers).
    ///
    /// Every request that goes upstream loses client-sent identity headers and the filter's
    /// own cookies.
    pub fn on_request(&self, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
        let mut summary = RequestSummary::default();
        for (name, value) in request.fields() {
            self.note_field(&mut summary, name, value);
        }
        match self.pass_known_session(&summary, now) {
            Some((identity, cookie)) => {
                let forward = Forward { remove: Vec::new(), set: identity, cookie, response_cookies: Vec::new() };
                Outcome::new(Step::Forward(forward))
            }
            None => self.decide(request, now, random),
        }
    }

    /// Adds one request header field to `summary`.
    pub fn note_field<'a>(&self, summary: &mut RequestSummary<'a>, name: &'a [u8], value: &'a [u8]) {
        if name == b":path" {
            summary.path_and_query = value;
        } else if name == b"cookie" {
            summary.cookie = Some(value);
            summary.cookie_headers += 1;
        } else if self.is_identity_name(name) {
            summary.identity_sent = true;
        }
    }

    /// Returns the identity headers and the upstream `cookie` header for a request whose one
    /// `cookie` header carried a valid session before. That covers the common case, where
    /// nothing else needs deciding: not one of the filter's paths, no skip path, no
    /// client-sent identity header, and no refresh or re-sealing due. Returns `None` for
    /// everything else, which [`Gate::on_request`] decides in full.
    ///
    /// The glue calls this first, with a summary gathered in one pass over the headers, so
    /// that the code every authenticated request runs stays small.
    pub fn pass_known_session(&self, summary: &RequestSummary, now: u64) -> Option<(Identity, UpstreamCookie)> {
        if summary.identity_sent || summary.cookie_headers != 1 {
            return None;
        }
        let path = crate::request::path_of(summary.path_and_query);
        let config = &self.config;
        let own_path = [&config.callback_path, &config.logout_path, &config.forbidden_path];
        if own_path.into_iter().any(|route| self.is_route(path, route)) || self.is_skip_path(path) {
            return None;
        }
        let found = self.cached_cookie_header(summary.cookie?, now)?;
        let OpenedSession { session, by_previous_key } = &found.cookie.opened;
        if *by_previous_key || self.refresh_due(session, now) || session.token_expired(now) {
            return None;
        }
        Some((Rc::clone(&found.cookie.identity), found.upstream?))
    }

    /// Decides what to do with a request that [`Gate::pass_known_session`] did not pass.
    #[cold]
    #[inline(never)]
    fn decide(&self, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
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
            let reply = self.notice(Notice::Forbidden, request.is_api_client(), &self.config.logout_path);
            return Outcome::new(Step::Reply(reply));
        }

        if self.is_skip_path(path) {
            return Outcome::new(Step::Forward(self.forward(request, None)));
        }

        let mut events = Vec::new();
        match self.find_session(request, now) {
            Ok(found) => match self.use_session(request, found, now, random) {
                Ok(outcome) => return outcome,
                Err(reason) => events.push(Event::SessionInvalid { reason }),
            },
            Err(Some(reason)) => events.push(Event::SessionInvalid { reason }),
            Err(None) => {}
        }

        let mut outcome = self.ask_for_login(request, now, random);
        events.append(&mut outcome.events);
        outcome.events = events;
        outcome
    }

    /// Responds to a request that has no usable session: 401 for API clients, the logged-out
    /// page right after a logout, and otherwise a redirect to Heroku's login.
    fn ask_for_login(&self, request: &Request, now: u64, random: &mut dyn Random) -> Outcome {
        if request.is_api_client() {
            let reply = self.notice(Notice::Unauthorized, true, "/");
            return Outcome::new(Step::Reply(reply)).with(Event::Unauthorized);
        }
        if self.has_cookie(request, &self.logged_out_marker) {
            // If the browser just logged out, say so once; its link then starts a login.
            let href = safe_return_path(request.path_and_query());
            let reply = self
                .notice(Notice::LoggedOut, false, &href)
                .with_cookie(self.clear_cookie(&self.logged_out_marker, request.is_https()));
            return Outcome::new(Step::Reply(reply));
        }
        self.start_login(request, now, random)
    }

    /// Passes a request with an open session, refreshing its access token first when it
    /// expires within `refresh_margin_s`. Returns `Err` with a reason when the session
    /// cannot be used: its token expired and cannot be refreshed.
    fn use_session(
        &self,
        request: &Request,
        found: FoundSession,
        now: u64,
        random: &mut dyn Random,
    ) -> Result<Outcome, String> {
        let FoundSession { cookie, sealed, upstream } = found;
        let upstream = upstream.unwrap_or_else(|| self.upstream_cookie(request));
        let OpenedSession { session, by_previous_key } = &cookie.opened;
        if !self.refresh_due(session, now) {
            if session.token_expired(now) {
                return Err("access token expired and there is no refresh token to renew it".to_string());
            }
            let mut forward = self.forward_with(request, &cookie.identity, upstream);
            // If an old key sealed the cookie, seal it again with the current one.
            if *by_previous_key {
                forward.response_cookies.extend(self.session_cookie(session, request.is_https(), now, random));
            }
            return Ok(Outcome::new(Step::Forward(forward)));
        }

        let key = session_key(sealed);
        let lookup = match self.refreshes.try_borrow_mut() {
            Ok(mut table) => table.lookup(&key, now),
            Err(_) => Lookup::Unknown,
        };
        match lookup {
            Lookup::Done(refreshed, cookie) => {
                let mut forward = self.forward(request, Some(&refreshed));
                forward.response_cookies.push(cookie);
                Ok(Outcome::new(Step::Forward(forward)))
            }
            // Another request of this browser is refreshing; this one goes on with the old
            // token while it is still valid.
            Lookup::InFlight if !session.token_expired(now) => {
                Ok(Outcome::new(Step::Forward(self.forward_with(request, &cookie.identity, upstream))))
            }
            Lookup::InFlight | Lookup::Unknown => {
                if let Ok(mut table) = self.refreshes.try_borrow_mut() {
                    table.start(key, now);
                }
                Ok(self.start_refresh(request, session.clone(), key))
            }
        }
    }

    /// Returns true when `path` matches a skip rule. Skip rules see the path without its
    /// query, so `?x=/healthz` cannot widen them, and never a path that an app could resolve
    /// elsewhere (`/public/..%2Fadmin`).
    fn is_skip_path(&self, path: &[u8]) -> bool {
        !self.config.skip_paths.is_empty() && paths::is_unambiguous(path) && {
            let path_text = String::from_utf8_lossy(path);
            self.config.skip_paths.iter().any(|pattern| pattern.matches(&path_text))
        }
    }

    /// Returns true when `session` can be refreshed and its access token expires within
    /// `refresh_margin_s` of `now`.
    fn refresh_due(&self, session: &Session, now: u64) -> bool {
        self.config.refresh
            && session.refresh_token.is_some()
            && now.saturating_add(self.config.refresh_margin_s) >= session.expires_at
    }

    /// Matches a route path exactly, with or without its trailing slash, so a callback URL
    /// registered at Heroku without the slash still works.
    fn is_route(&self, path: &[u8], route: &str) -> bool {
        let route = route.as_bytes();
        let without_slashes = route.iter().rposition(|byte| *byte != b'/').map_or(0, |at| at + 1);
        path == route || Some(path) == route.get(..without_slashes)
    }

    /// Finds a valid session among the session cookies. Returns `Err(None)` when there is no
    /// session cookie and `Err(Some(reason))` when every one was invalid.
    ///
    /// A request with one `cookie` header is first looked up whole in the header cache. On a
    /// miss the header is parsed, and a header that carried a valid session is cached.
    fn find_session<'r>(&self, request: &Request<'r>, now: u64) -> Result<FoundSession<'r>, Option<String>> {
        let mut headers = request.cookie_header_values();
        let only_header = match (headers.next(), headers.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        };
        if let Some(header) = only_header {
            if let Some(found) = self.cached_cookie_header(header, now) {
                return Ok(found);
            }
        }

        let name = self.config.cookie_name.as_bytes();
        let mut last_error = None;
        for header in request.cookie_header_values() {
            for (_, value) in cookie_pairs(header).filter(|(cookie, _)| *cookie == name) {
                match self.open_session(value, now) {
                    Ok(cookie) => {
                        let upstream = only_header.map(|header| self.cache_cookie_header(header, &cookie, value));
                        return Ok(FoundSession { cookie, sealed: value, upstream });
                    }
                    Err(error) => last_error = Some(error.to_string()),
                }
            }
        }
        Err(last_error)
    }

    /// Returns the session that `header` carried when it was cached, if its age still allows it.
    fn cached_cookie_header<'r>(&self, header: &'r [u8], now: u64) -> Option<FoundSession<'r>> {
        let parsed = self.cookie_headers.try_borrow().ok()?.get(header)?;
        parsed.cookie.opened.session.check_age(now, self.config.session_max_age_s).ok()?;
        let sealed = header.get(parsed.sealed.clone())?;
        Some(FoundSession { cookie: Rc::clone(&parsed.cookie), sealed, upstream: Some(parsed.upstream.clone()) })
    }

    /// Computes the upstream form of a `cookie` header that carried `cookie` in `sealed`, a
    /// slice of `header`, and caches both when the header is short enough. Returns the
    /// upstream form.
    fn cache_cookie_header(&self, header: &[u8], cookie: &Rc<OpenedCookie>, sealed: &[u8]) -> UpstreamCookie {
        let upstream = self.upstream_cookie_of(&[header]);
        // `sealed` borrows from `header`, so its offset is the distance between the two.
        let start = (sealed.as_ptr() as usize).wrapping_sub(header.as_ptr() as usize);
        let range = start..start.saturating_add(sealed.len());
        let within = header.get(range.clone()) == Some(sealed);
        if within && header.len() <= MAX_CACHED_COOKIE_HEADER_BYTES {
            if let Ok(mut cache) = self.cookie_headers.try_borrow_mut() {
                let parsed = ParsedCookieHeader { cookie: Rc::clone(cookie), sealed: range, upstream: upstream.clone() };
                cache.insert(header, Rc::new(parsed));
            }
        }
        upstream
    }

    /// Opens a session cookie value, from the VM's cache when this value opened before, and
    /// checks the session's age at `now` either way.
    fn open_session(&self, value: &[u8], now: u64) -> Result<Rc<OpenedCookie>, SessionError> {
        let cached = self.sessions.try_borrow().ok().and_then(|cache| cache.get(value));
        let cookie = match cached {
            Some(cookie) => cookie,
            None => {
                let opened = Session::unseal(&self.sealer, &self.config.cookie_name, value)?;
                let identity = self.identity_of(&opened.session);
                let cookie = Rc::new(OpenedCookie { opened, identity });
                if let Ok(mut cache) = self.sessions.try_borrow_mut() {
                    cache.insert(value, Rc::clone(&cookie));
                }
                cookie
            }
        };
        cookie.opened.session.check_age(now, self.config.session_max_age_s)?;
        Ok(cookie)
    }

    /// Returns the identity headers to set for `session`.
    fn identity_of(&self, session: &Session) -> Identity {
        let [email, id, name, token] = &self.identity_header_names;
        let mut set = Vec::with_capacity(4);
        set.push((Rc::clone(email), Rc::from(session.email.as_str())));
        set.push((Rc::clone(id), Rc::from(session.user_id.as_str())));
        if let Some(text) = &session.name {
            set.push((Rc::clone(name), Rc::from(encode_header_text(text))));
        }
        if self.config.expose_token {
            set.push((Rc::clone(token), Rc::from(session.access_token.expose())));
        }
        set.into()
    }

    /// Builds the edits for a request that goes upstream, with identity when logged in.
    fn forward(&self, request: &Request, session: Option<&Session>) -> Forward {
        let identity = match session {
            Some(session) => self.identity_of(session),
            None => Rc::new([]),
        };
        self.forward_with(request, &identity, self.upstream_cookie(request))
    }

    /// Builds the edits for a request that goes upstream with the given identity headers and
    /// upstream `cookie` header.
    fn forward_with(&self, request: &Request, identity: &Identity, cookie: UpstreamCookie) -> Forward {
        let mut remove: Vec<String> = Vec::new();
        for (name, _) in request.fields() {
            if self.is_identity_name(name) && !remove.iter().any(|removed| removed.as_bytes() == name) {
                // A name that matched spells an ASCII identity name, so it is ASCII itself.
                remove.push(String::from_utf8_lossy(name).into_owned());
            }
        }

        Forward { remove, set: Rc::clone(identity), cookie, response_cookies: Vec::new() }
    }

    /// Returns the change to the request's `cookie` headers that removes the filter's own cookies.
    fn upstream_cookie(&self, request: &Request) -> UpstreamCookie {
        // One `cookie` header is the usual case, and needs no list of headers.
        let mut cookie_headers = request.cookie_header_values();
        match (cookie_headers.next(), cookie_headers.next()) {
            (None, _) => None,
            (Some(only), None) => self.upstream_cookie_of(&[only]),
            (Some(_), Some(_)) => self.upstream_cookie_of(&request.cookie_headers()),
        }
    }

    fn upstream_cookie_of(&self, headers: &[&[u8]]) -> UpstreamCookie {
        let upstream = cookie_header_without(headers, |name| self.is_own_cookie(name))?;
        Some(upstream.map(Rc::from))
    }

    /// Seals `session` into a `Set-Cookie` value. Its `Max-Age` runs to the end of the
    /// session: `session_max_age_s` after login, or the token's expiry when the session
    /// cannot be refreshed. Returns `None` when no randomness is available or the cookie
    /// would exceed 4096 bytes.
    fn session_cookie(&self, session: &Session, https: bool, now: u64, random: &mut dyn Random) -> Option<String> {
        let mut nonce = [0u8; SEAL_RANDOM_BYTES];
        random.fill(&mut nonce).ok()?;
        let sealed = session.seal(&self.sealer, &self.config.cookie_name, &nonce)?;
        let mut ends_at = session.issued_at.saturating_add(self.config.session_max_age_s);
        if !self.config.refresh || session.refresh_token.is_none() {
            ends_at = ends_at.min(session.expires_at);
        }
        let cookie = set_cookie(&self.config.cookie_name, &sealed, ends_at.saturating_sub(now), https);
        (cookie.len() <= MAX_SET_COOKIE_BYTES).then_some(cookie)
    }

    fn notice(&self, notice: Notice, api_client: bool, action_href: &str) -> Reply {
        Reply::notice(&self.config.pages, notice, api_client, action_href)
    }

    /// Returns true when `name` spells one of the identity headers, as an app server would read it.
    fn is_identity_name(&self, name: &[u8]) -> bool {
        self.identity_name_lengths & length_bit(name.len()) != 0
            && self.identity_names.iter().any(|canonical| is_spelling_of(name, canonical))
    }

    fn is_own_cookie(&self, name: &[u8]) -> bool {
        name == self.config.cookie_name.as_bytes()
            || name == self.logged_out_marker.as_bytes()
            || name.starts_with(self.state_prefix.as_bytes())
    }

    fn has_cookie(&self, request: &Request, name: &str) -> bool {
        request
            .cookie_header_values()
            .any(|header| cookie_pairs(header).any(|(cookie, _)| cookie == name.as_bytes()))
    }

    fn clear_cookie(&self, name: &str, https: bool) -> String {
        set_cookie(name, "", 0, https)
    }
}

/// Returns the bit for names of `length` bytes in a set of lengths below 64; longer lengths
/// share the top bit, so a length at or above 63 never rules a name out.
fn length_bit(length: usize) -> u64 {
    1 << length.min(63)
}

/// Formats a `Set-Cookie` value with the attributes every cookie of this filter has.
fn set_cookie(name: &str, value: &str, max_age_s: u64, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// Encodes free text for a header value: `%` and every byte outside printable ASCII are
/// percent-encoded as UTF-8, so a plain ASCII name arrives unchanged and any name can be
/// recovered with a standard percent-decode.
pub fn encode_header_text(text: &str) -> String {
    if text.bytes().all(|byte| (b' '..=b'~').contains(&byte) && byte != b'%') {
        return text.to_string();
    }
    const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    percent_encoding::utf8_percent_encode(text, ENCODED).to_string()
}

#[cfg(test)]
mod tests;
