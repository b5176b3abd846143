//! The [`Standin`] handle: starting and stopping the server, the controls
//! tests use while it runs, and the routing of each request.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Approval, Config};
use crate::faults::fault_reply;
use crate::http::{error_reply, HttpRequest, HttpServer, Reply};
use crate::state::State;
use crate::{oauth, pages, platform};

/// A group of paths whose requests are counted, recorded and can be faulted together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET` and `POST /oauth/authorize`.
    Authorize,
    /// `POST /oauth/token`.
    Token,
    /// `GET /account` and its alias `GET /users/~`.
    Account,
    /// `GET /teams`, `/teams/{team}` and `/teams/{team}/members`.
    Teams,
}

impl Endpoint {
    pub(crate) const COUNT: usize = 4;

    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::Authorize => 0,
            Endpoint::Token => 1,
            Endpoint::Account => 2,
            Endpoint::Teams => 3,
        }
    }

    /// Returns the endpoint a path belongs to, whatever the method.
    pub(crate) fn for_path(path: &str) -> Option<Endpoint> {
        match path {
            "/oauth/authorize" => Some(Endpoint::Authorize),
            "/oauth/token" => Some(Endpoint::Token),
            "/account" | "/users/~" => Some(Endpoint::Account),
            "/teams" => Some(Endpoint::Teams),
            _ if path.starts_with("/teams/") => Some(Endpoint::Teams),
            _ => None,
        }
    }
}

/// A deliberate misbehaviour of one endpoint, for testing how clients cope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Waits this long, then handles the request normally.
    Delay(Duration),
    /// Responds with this status and the body Heroku sends with it: a
    /// `{"id","message"}` object for 4xx (`rate_limit` for 429), and a
    /// plain-text body for 5xx, as from Heroku's router.
    Status(u16),
    /// Responds with exactly this status, content type and body. An empty
    /// `content_type` sends no `Content-Type` header.
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

/// A request as the stand-in or the demo app received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path with its query string, as sent.
    pub path: String,
    /// Every header in the order received, duplicates included.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub(crate) fn from_http(request: &HttpRequest) -> RecordedRequest {
        RecordedRequest {
            method: request.method.clone(),
            path: request.target.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        }
    }

    /// Returns the first value of a header, matching its name case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A running stand-in for id.heroku.com and api.heroku.com on one address.
/// Dropping it stops the server.
pub struct Standin {
    state: Arc<Mutex<State>>,
    server: HttpServer,
}

impl Standin {
    /// Starts a stand-in on a free port of 127.0.0.1.
    pub fn start(config: Config) -> io::Result<Standin> {
        Standin::start_on("127.0.0.1:0", config)
    }

    /// Starts a stand-in on `addr`, such as `127.0.0.1:9292`.
    pub fn start_on(addr: &str, config: Config) -> io::Result<Standin> {
        let state = Arc::new(Mutex::new(State::new(config)));
        let handler_state = Arc::clone(&state);
        let server = HttpServer::start(
            addr,
            "heroku-standin",
            Arc::new(move |request: &HttpRequest| handle(&handler_state, request)),
        )?;
        Ok(Standin { state, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns `http://HOST:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Changes the client's registered redirect URI, for tests that learn the
    /// proxy's port only after starting the stand-in.
    pub fn set_redirect_uri(&self, uri: &str) {
        self.lock().client.redirect_uri = uri.to_string();
    }

    /// Logs in as the user with this email, adding a user without name or
    /// teams when the email is not configured.
    pub fn set_current_user(&self, email: &str) {
        let mut state = self.lock();
        let index = state.find_or_add_user(email);
        state.current_user = Some(index);
    }

    pub fn set_approval(&self, approval: Approval) {
        self.lock().approval = approval;
    }

    /// Sets or, with `None`, clears the fault that every later request to
    /// `endpoint` gets.
    pub fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        self.lock().faults[endpoint.index()] = fault;
    }

    /// Returns how many requests `endpoint` received, faulted or not.
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.lock().recorded[endpoint.index()].len()
    }

    /// Returns the requests `endpoint` received, oldest first.
    pub fn requests(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.lock().recorded[endpoint.index()].clone()
    }

    /// Revokes every refresh token issued so far; later refreshes with them get `401`.
    pub fn revoke_refresh_tokens(&self) {
        self.lock().revoke_refresh_tokens();
    }

    /// Sets the scopes, any one of which lets a token read `/teams`. The
    /// default is `global`, `read`, `read-protected`, `write` and
    /// `write-protected`, so an `identity`-only token gets `403`.
    ///
    /// NOTE: Heroku does not document which scopes read `/teams`; the default
    /// follows the consent-page wording, where only `identity` excludes apps
    /// and resources.
    pub fn set_teams_scopes(&self, scopes: &[&str]) {
        self.lock().teams_scopes = scopes.iter().map(|scope| scope.to_string()).collect();
    }

    /// Turns on or off one stderr line per request: method, path without the
    /// query string, and status. Off by default.
    pub fn set_request_logging(&self, enabled: bool) {
        self.server.set_request_logging(enabled);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }
}

/// Locks the state even if a thread panicked while holding it, so that one
/// failed test assertion does not cascade into every later call.
fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records the request, applies the endpoint's fault if any, then routes it.
fn handle(state: &Mutex<State>, request: &HttpRequest) -> Reply {
    let endpoint = Endpoint::for_path(request.path());

    if let Some(endpoint) = endpoint {
        let fault = {
            let mut state = lock_state(state);
            state.recorded[endpoint.index()].push(RecordedRequest::from_http(request));
            state.faults[endpoint.index()].clone()
        };
        match fault {
            None => {}
            // Sleep without the lock so that other requests go on meanwhile.
            Some(Fault::Delay(delay)) => thread::sleep(delay),
            Some(Fault::Status(status)) => {
                return fault_reply(
                    &mut lock_state(state),
                    endpoint,
                    status,
                    request,
                    Instant::now(),
                )
            }
            Some(Fault::Raw {
                status,
                content_type,
                body,
            }) => return Reply::with_body(status, &content_type, body),
        }
    }

    let now = Instant::now();
    let mut state = lock_state(state);
    match endpoint {
        Some(Endpoint::Authorize) => oauth::authorize(&mut state, request, now),
        Some(Endpoint::Token) => oauth::token(&mut state, request, now),
        Some(endpoint @ (Endpoint::Account | Endpoint::Teams)) => {
            platform::handle(&mut state, endpoint, request, now)
        }
        None => route_other(&mut state, request),
    }
}

/// Routes the paths that are not an [`Endpoint`]: the web session pages.
fn route_other(state: &mut State, request: &HttpRequest) -> Reply {
    match (request.method.as_str(), request.path()) {
        ("GET" | "DELETE", "/logout") => pages::logout(request),
        ("GET", "/login") => pages::login_page(state, request),
        ("POST", "/login") => pages::login_submit(state, request),
        _ => not_found(),
    }
}

pub(crate) fn not_found() -> Reply {
    error_reply(404, "not_found", "The requested resource was not found.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Standin>();
        assert_send_sync::<crate::DemoApp>();
        assert_send_sync::<RecordedRequest>();
        assert_send_sync::<Fault>();
    }

    #[test]
    fn endpoint_for_path_groups_aliases() {
        assert_eq!(Endpoint::for_path("/users/~"), Some(Endpoint::Account));
        assert_eq!(
            Endpoint::for_path("/teams/x/members"),
            Some(Endpoint::Teams)
        );
        assert_eq!(Endpoint::for_path("/account/"), None);
        assert_eq!(Endpoint::for_path("/logout"), None);
    }
}
