//! Shared fixture for the fuzz targets: a gate with a fixed key, one completed login, and
//! the properties every gate decision must have.
//!
//! Inputs are text so that seeds stay readable. These markers in an input are replaced
//! before use, so the fuzzer can combine real credentials with hostile bytes:
//! `@SESSION@` (a valid session cookie value), `@STATE@` (the `state` of a pending
//! login) and `@STATECOOKIE@` (that login's state cookie as `name=value`).


use heroku_bouncer::config::{self, Config};
use heroku_bouncer::gate::{Gate, Outcome, Random, RandomUnavailable, Reply, Request, Step};
use heroku_bouncer::headers::canonical_name;
use heroku_bouncer::heroku::CalloutResponse;

/// The clock of every gate call, in Unix seconds.
pub const NOW: u64 = 1_800_000_000;
pub const SECRET_KEY: &str = "fuzz-secret-key-0123456789abcdef0123";
pub const AUTHORIZE_URL: &str = "https://id.example/oauth/authorize";
pub const EMAIL: &str = "ada@example.com";
/// The page where the fixture's login started, and so where it returns.
pub const LOGIN_START: &str = "/start?x=1";

pub const TOKEN_BODY: &str =
    r#"{"access_token":"HRKU-access","expires_in":28799,"refresh_token":"HRKU-refresh","token_type":"Bearer","user_id":"user-1"}"#;
pub const ACCOUNT_BODY: &str = r#"{"email":"ada@example.com","id":"user-1","name":"Ada Lovelace"}"#;

/// Deterministic bytes (SplitMix64), so a crash replays exactly.
pub struct CountingRandom(u64);

impl CountingRandom {
    pub fn new(seed: u64) -> Self {
        CountingRandom(seed)
    }
}

impl Random for CountingRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        for byte in buf.iter_mut() {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut mixed = self.0;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *byte = (mixed ^ (mixed >> 31)) as u8;
        }
        Ok(())
    }
}

/// Returns the plugin configuration the fixture's gate uses.
pub fn config() -> Config {
    let json = format!(
        r#"{{"client_id":"fuzz-client","client_secret":"fuzz-secret","secret_key":"{SECRET_KEY}",
            "authorize_url":"{AUTHORIZE_URL}","skip_paths":["/healthz","/public/*"],
            "forbidden_passthrough":true,"expose_token":true}}"#
    );
    config::parse(json.as_bytes(), &|_| None).expect("the fixture configuration is valid")
}

pub fn json_response(body: &str) -> CalloutResponse {
    CalloutResponse {
        status: Some(200),
        content_type: Some("application/json".into()),
        next_range: None,
        body: body.as_bytes().to_vec(),
    }
}

/// A gate and the credentials of one finished and one pending login.
pub struct Fixture {
    pub gate: Gate,
    pub session: String,
    pub state: String,
    pub state_cookie: String,
}

/// Returns the fixture, built once per thread. The gate keeps per-VM state in a `RefCell`,
/// as a proxy-wasm VM is single-threaded, so it cannot sit in a process-wide static.
pub fn fixture() -> &'static Fixture {
    thread_local! {
        static FIXTURE: &'static Fixture = Box::leak(Box::new(build_fixture()));
    }
    FIXTURE.with(|fixture| *fixture)
}

fn build_fixture() -> Fixture {
    let gate = Gate::new(config());
    let (state, state_cookie) = start_login(&gate, 1);
    let session = finish_login(&gate, &state, &state_cookie).expect("the fixture login succeeds");
    // A second login stays pending, so callbacks can bring a valid state.
    let (state, state_cookie) = start_login(&gate, 2);
    Fixture { gate, session, state, state_cookie }
}

fn request_headers(path: &str, cookie: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":scheme".to_string(), b"https".to_vec()),
        ("accept".to_string(), b"text/html".to_vec()),
    ];
    if let Some(cookie) = cookie {
        headers.push(("cookie".to_string(), cookie.as_bytes().to_vec()));
    }
    headers
}

fn reply_of(outcome: Outcome) -> Option<Reply> {
    match outcome.step {
        Step::Reply(reply) => Some(reply),
        _ => None,
    }
}

pub fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// Starts a login at [`LOGIN_START`]. Returns the state and the state cookie's `name=value`.
fn start_login(gate: &Gate, seed: u64) -> (String, String) {
    let headers = request_headers(LOGIN_START, None);
    let reply = reply_of(gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::new(seed)))
        .expect("a browser without a session is redirected");
    let location = header(&reply, "location").expect("a redirect to Heroku");
    let query = location.split_once('?').expect("a query").1;
    let state = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "state")
        .expect("a state")
        .1
        .into_owned();
    let set_cookie = reply.headers.iter().rev().find(|(key, _)| key == "set-cookie").expect("a state cookie");
    let pair = set_cookie.1.split(';').next().unwrap_or_default().to_string();
    (state, pair)
}

/// Runs the callback for a started login with good Heroku responses. Returns the session
/// cookie's value.
fn finish_login(gate: &Gate, state: &str, state_cookie: &str) -> Option<String> {
    let path = format!("/auth/heroku/callback/?code=the-code&state={state}");
    let headers = request_headers(&path, Some(state_cookie));
    let outcome = gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::new(3));
    let reply = complete_callouts(gate, outcome)?;
    let set_cookie = reply.headers.iter().find(|(key, value)| key == "set-cookie" && value.starts_with("herokuoauthsess="))?;
    let pair = set_cookie.1.split(';').next()?;
    Some(pair.split_once('=')?.1.to_string())
}

/// Feeds good Heroku responses to the callouts of `outcome` until the gate replies.
pub fn complete_callouts(gate: &Gate, mut outcome: Outcome) -> Option<Reply> {
    for answer in [TOKEN_BODY, ACCOUNT_BODY] {
        match outcome.step {
            Step::Callout(_, pending) => {
                let no_headers: Vec<(String, Vec<u8>)> = Vec::new();
                let request = Request { headers: &no_headers };
                outcome = gate.on_callout_response(pending, &json_response(answer), &request, NOW, &mut CountingRandom::new(4));
            }
            Step::Reply(reply) => return Some(reply),
            Step::Forward(_) => return None,
        }
    }
    reply_of(outcome)
}

/// Replaces the markers described in the module documentation.
pub fn substitute(input: &[u8]) -> Vec<u8> {
    let fixture = fixture();
    let mut out = input.to_vec();
    for (marker, value) in [
        (&b"@SESSION@"[..], fixture.session.as_bytes()),
        (b"@STATECOOKIE@", fixture.state_cookie.as_bytes()),
        (b"@STATE@", fixture.state.as_bytes()),
    ] {
        out = replace_all(&out, marker, value);
    }
    out
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|window| window == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Reads a request written as text: the first line is `METHOD PATH` (or only the path,
/// for GET), each later line is `name: value`. Names are lowercased, as Envoy gives them.
pub fn parse_request(input: &[u8]) -> Vec<(String, Vec<u8>)> {
    let input = substitute(input);
    let mut lines = input.split(|byte| *byte == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, path) = match first.iter().position(|byte| *byte == b' ') {
        Some(at) => (&first[..at], &first[at + 1..]),
        None => (&b"GET"[..], first),
    };
    let mut headers = vec![
        (":method".to_string(), method.to_vec()),
        (":path".to_string(), path.to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        (":authority".to_string(), b"app.example".to_vec()),
    ];
    for line in lines {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
        let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
        headers.push((name, value.to_vec()));
    }
    headers
}

/// Checks that a `Location` sends the browser to the fixture's authorize URL or stays on
/// this origin.
pub fn assert_safe_location(location: &str) {
    assert_safe_location_for(location, AUTHORIZE_URL);
}

/// Checks that a `Location` sends the browser to `authorize_url` or stays on this origin.
pub fn assert_safe_location_for(location: &str, authorize_url: &str) {
    let rest = location.strip_prefix(authorize_url).unwrap_or_default();
    if rest.starts_with('?') || rest.starts_with('&') {
        return;
    }
    let bytes = location.as_bytes();
    assert_eq!(bytes.first(), Some(&b'/'), "location {location:?} is not a path");
    assert!(!matches!(bytes.get(1), Some(b'/' | b'\\')), "location {location:?} names another host");
    assert!(bytes.iter().all(|byte| byte.is_ascii_graphic() && *byte != b'\\'), "location {location:?} has unsafe bytes");
    assert!(bytes.len() <= heroku_bouncer::gate::MAX_RETURN_PATH_BYTES, "location {location:?} is too long");
}

/// Checks the properties of any decision about `request`.
pub fn check_outcome(request: &[(String, Vec<u8>)], outcome: &Outcome) {
    let fixture = fixture();
    let cookies: Vec<&[u8]> =
        request.iter().filter(|(name, _)| name == "cookie").map(|(_, value)| value.as_slice()).collect();
    let carries = |needle: &str| cookies.iter().any(|cookie| cookie.windows(needle.len()).any(|w| w == needle.as_bytes()));

    match &outcome.step {
        Step::Reply(reply) => check_reply(reply),
        Step::Forward(forward) => {
            let identity: Vec<Vec<u8>> =
                fixture.gate.config().headers.all().iter().map(|name| canonical_name(name.as_bytes())).collect();
            for (name, _) in request {
                if identity.contains(&canonical_name(name.as_bytes())) {
                    assert!(forward.remove.contains(name), "client header {name:?} is not removed");
                }
            }
            if !forward.set.is_empty() {
                assert!(carries(&fixture.session), "identity set without the valid session");
                assert_eq!(forward.set[0], ("x-heroku-user-email".into(), EMAIL.into()));
            }
            for (_, value) in forward.set.iter() {
                assert!(value.bytes().all(|byte| byte == b' ' || byte.is_ascii_graphic()), "identity value {value:?}");
            }
            if let Some(Some(cookie)) = &forward.cookie {
                for (name, _) in heroku_bouncer::headers::cookie_pairs(cookie) {
                    let own = name == b"herokuoauthsess"
                        || name == b"herokuoauthsess-logged-out"
                        || name.starts_with(b"herokuoauthsess-state-");
                    assert!(!own, "the filter's cookie {:?} goes upstream", String::from_utf8_lossy(name));
                }
            }
        }
        Step::Callout(_, _) => {
            assert!(carries(&fixture.state_cookie), "a callout without the pending login's state cookie");
        }
    }
}

/// Checks a local reply of the fixture's gate.
pub fn check_reply(reply: &Reply) {
    check_reply_for(reply, AUTHORIZE_URL);
}

/// Checks a local reply: a documented status, and header values a browser reads as meant.
pub fn check_reply_for(reply: &Reply, authorize_url: &str) {
    assert!(matches!(reply.status, 302 | 401 | 403 | 502), "undocumented status {}", reply.status);
    for (name, value) in &reply.headers {
        assert!(!value.bytes().any(|byte| matches!(byte, b'\r' | b'\n' | 0)), "{name}: {value:?}");
    }
    if let Some(location) = header(reply, "location") {
        assert_safe_location_for(location, authorize_url);
    }
}
