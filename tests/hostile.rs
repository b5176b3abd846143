//! Hostile input through a real Envoy 1.40: spoofed identity headers, return paths that
//! point elsewhere, paths that try to widen skip rules, odd emails, replayed callbacks,
//! broken cookies and untrusted account data. Each test checks one property as a user of
//! the filter would verify it, looking at what the client gets and what the app receives.
//!
//! Requests that no ordinary client sends (exact header spellings, repeated headers, raw
//! request targets, non-UTF-8 bytes) go over a plain TCP socket; HTTP/2 goes through
//! `curl --http2-prior-knowledge`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use heroku_bouncer::seal::{Sealer, SEAL_RANDOM_BYTES};
use heroku_bouncer::secret::Secret;
use heroku_bouncer::session::{self, LoginState, STATE_RANDOM_BYTES};
use heroku_standin::{RecordedRequest, User};
use serde_json::json;

const ADA: &str = "ada@example.com";
const SESSION_COOKIE: &str = "herokuoauthsess";

/// A response read whole from a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// Sends `request` (which must ask for `Connection: close`) and reads the whole response.
fn exchange(address: &str, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(address).expect("connect to Envoy");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("set a read timeout");
    stream.write_all(request).expect("send the raw request");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read the response");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    RawResponse { status, headers, body: body.to_string() }
}

/// Sends `GET target` over HTTP/1.1 as a browser would, plus `extra` header lines given
/// as raw bytes (`b"Name: value"`).
fn raw_get(stack: &Stack, target: &[u8], extra: &[&[u8]]) -> RawResponse {
    raw_get_accepting(stack, target, "text/html", extra)
}

/// Sends `GET target` with this `Accept` header and the `extra` header lines.
fn raw_get_accepting(stack: &Stack, target: &[u8], accept: &str, extra: &[&[u8]]) -> RawResponse {
    let mut request = Vec::new();
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(target);
    request.extend_from_slice(format!(" HTTP/1.1\r\nHost: app.test\r\nAccept: {accept}\r\n").as_bytes());
    for line in extra {
        request.extend_from_slice(line);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    exchange(stack.envoy.listener(), &request)
}

/// Logs in as `email` through the stand-in and returns the session cookie's value.
fn session_for(stack: &Stack, email: &str) -> String {
    stack.standin.set_current_user(email);
    let mut browser = Browser::default();
    let landed = stack.log_in(&mut browser, "/");
    assert_eq!(landed.status, 200, "login as {email}: {}", landed.body);
    browser.cookie(&stack.url("/"), SESSION_COOKIE).expect("a session cookie after login")
}

/// Returns the identity headers of a recorded request in every spelling an app server
/// could read as one: any case, `_` for `-`.
fn identity_headers(request: &RecordedRequest) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .filter(|(name, _)| name.to_ascii_lowercase().replace('_', "-").starts_with("x-heroku-"))
        .cloned()
        .collect()
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Continues a login that `started` (the filter's redirect to Heroku) began: carries its
/// state cookie to the stand-in's authorize page and to the callback. Returns the
/// callback's response, whose `location` is the return path.
fn complete_login(stack: &Stack, started: &RawResponse) -> Response {
    assert_eq!(started.status, 302, "{}", started.body);
    let mut browser = Browser::default();
    for set_cookie in started.set_cookies() {
        let pair = set_cookie.split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        if !value.is_empty() {
            browser.set_cookie(&stack.url("/"), name, value);
        }
    }
    let authorize = started.header("location").expect("a redirect to Heroku");
    let consent = browser.get(authorize);
    let callback = consent.header("location").expect("the stand-in redirects to the callback").to_string();
    browser.get(&callback)
}

/// Starts a stack whose Envoy neither normalises paths nor merges slashes, so the filter
/// receives request targets as the client sent them.
fn start_without_normalisation(setup: Setup) -> Stack {
    let standin = Standin::start(setup.standin.clone()).unwrap();
    let app = DemoApp::start().unwrap();
    let config = render_envoy_config(&setup, &standin, &app)
        .replace("normalize_path: true", "normalize_path: false")
        .replace("merge_slashes: true", "merge_slashes: false");
    assert!(config.contains("normalize_path: false"), "the harness config names normalize_path");
    let envoy = Envoy::start(&config, &setup).unwrap_or_else(|log| panic!("Envoy did not start:\n{log}"));
    standin.set_redirect_uri(&format!("{}/auth/heroku/callback/", envoy.base_url()));
    Stack { standin, app, envoy }
}

/// Every spelling of every default identity header that HTTP/1.1 lets a client send, each
/// with a value that names the attacker.
const SPOOFED: [&[u8]; 12] = [
    b"X-Heroku-User-Email: mallory@evil.example",
    b"x-heroku-user-email: mallory@evil.example",
    b"X_HEROKU_USER_EMAIL: mallory@evil.example",
    b"x_heroku-user_email: mallory@evil.example",
    b"X-Heroku-User-Id: mallory-id",
    b"x_heroku_user_id: mallory-id",
    b"X-HEROKU-USER-NAME: Mallory",
    b"x-heroku_user-name: Mallory",
    b"X-Heroku-OAuth-Token: HRKU-stolen",
    b"x_heroku_oauth_token: HRKU-stolen",
    // A repeated header: each copy must go, not only the first.
    b"x-heroku-user-email: second@evil.example",
    b"X-Heroku-User-Email: third@evil.example",
];

fn assert_no_spoofed_value(text: &str, label: &str) {
    for needle in ["mallory", "evil.example", "HRKU-stolen", "Mallory"] {
        assert!(!text.contains(needle), "{label}: {needle:?} leaked into {text}");
    }
}

#[test]
fn spoofed_identity_removed_on_every_path() {
    let stack = Stack::start(Setup::with_plugin(json!({
        "skip_paths": ["/public/*"],
        "forbidden_passthrough": true,
        "expose_token": true
    })));
    let session = session_for(&stack, ADA);
    let session_line = format!("Cookie: {SESSION_COOKIE}={session}");
    let mut with_session: Vec<&[u8]> = SPOOFED.to_vec();
    with_session.push(session_line.as_bytes());

    // Authenticated: only the filter's values arrive, one of each.
    let response = raw_get(&stack, b"/private", &with_session);
    assert_eq!(response.status, 200, "{}", response.body);
    let seen = stack.app.requests().last().cloned().unwrap();
    let identity = identity_headers(&seen);
    let names: Vec<&str> = identity.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["x-heroku-user-email", "x-heroku-user-id", "x-heroku-user-name", "x-heroku-oauth-token"]);
    assert_eq!(seen.header("x-heroku-user-email"), Some(ADA));
    assert_eq!(seen.header("x-heroku-user-id"), Some(User::id_for_email(ADA).as_str()));
    assert_eq!(seen.header("x-heroku-user-name"), Some("Ada Lovelace"));
    assert!(seen.header("x-heroku-oauth-token").unwrap().starts_with("HRKU-"));
    assert_ne!(seen.header("x-heroku-oauth-token"), Some("HRKU-stolen"));

    // Skipped and forbidden-passthrough paths reach the app with no identity at all, with
    // and without a session.
    for (label, target, extra) in [
        ("skipped", &b"/public/logo.png"[..], SPOOFED.to_vec()),
        ("skipped with session", b"/public/logo.png", with_session.clone()),
        ("forbidden passthrough", b"/auth/heroku/forbidden/", SPOOFED.to_vec()),
        ("forbidden passthrough with session", b"/auth/heroku/forbidden/", with_session.clone()),
    ] {
        let before = stack.app.requests().len();
        let response = raw_get(&stack, target, &extra);
        assert_eq!(response.status, 200, "{label}: {}", response.body);
        let requests = stack.app.requests();
        assert_eq!(requests.len(), before + 1, "{label}: the app got the request");
        assert_eq!(identity_headers(requests.last().unwrap()), vec![], "{label}");
    }

    // The filter itself responds to the callback, the logout and the login redirect: the
    // app receives nothing, and no spoofed value comes back to the client.
    let targets: [&[u8]; 4] = [
        b"/auth/heroku/callback/?code=abc&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        b"/auth/heroku/callback/?error=access_denied",
        b"/auth/heroku/logout/",
        b"/needs/login",
    ];
    for target in targets {
        let label = String::from_utf8_lossy(target).into_owned();
        let before = stack.app.requests().len();
        let response = raw_get(&stack, target, &SPOOFED);
        assert!(matches!(response.status, 302 | 403), "{label}: {}", response.status);
        assert_eq!(stack.app.requests().len(), before, "{label}: answered by the filter");
        let headers: String = response.headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
        assert_no_spoofed_value(&headers, &label);
        assert_no_spoofed_value(&response.body, &label);
    }
}

#[test]
fn spoofed_identity_ignored_during_login() {
    let stack = Stack::start(Setup::default());
    let started = raw_get(&stack, b"/after/login", &SPOOFED);
    let mut browser = Browser::default();
    for set_cookie in started.set_cookies() {
        let (name, value) = set_cookie.split(';').next().unwrap().split_once('=').unwrap();
        browser.set_cookie(&stack.url("/"), name, value);
    }
    let consent = browser.get(started.header("location").unwrap());
    let callback = consent.header("location").unwrap().to_string();
    let spoofed: Vec<(&str, &str)> = vec![
        ("X-Heroku-User-Email", "mallory@evil.example"),
        ("x_heroku_user_id", "mallory-id"),
        ("X-Heroku-OAuth-Token", "HRKU-stolen"),
    ];
    let done = browser.request("GET", &callback, &spoofed);
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.header("location"), Some("/after/login"));

    // The callouts to Heroku are built by the filter and carry nothing of the client's.
    for endpoint in [Endpoint::Token, Endpoint::Account] {
        let calls = stack.standin.requests(endpoint);
        assert_eq!(calls.len(), 1, "{endpoint:?}");
        assert_eq!(identity_headers(&calls[0]), vec![], "{endpoint:?}");
        assert!(calls[0].header("cookie").is_none(), "{endpoint:?} gets no browser cookies");
    }
    assert!(stack.app.requests().is_empty(), "the app saw nothing during the login");

    // With the session, the app gets the real identity even while the client spoofs.
    let landed = browser.request("GET", &stack.url("/after/login"), &spoofed);
    assert_eq!(landed.status, 200);
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(identity_headers(&seen).len(), 3, "{:?}", seen.headers);
    assert_eq!(seen.header("x-heroku-user-email"), Some(ADA));
}

#[test]
fn custom_identity_header_names_are_removed() {
    let stack = Stack::start(Setup::with_plugin(json!({
        "skip_paths": ["/public/*"],
        "headers": {"email": "X-Remote-User", "id": "x-remote-id"}
    })));
    let spoofed: [&[u8]; 4] = [
        b"X-Remote-User: mallory@evil.example",
        b"x_remote_user: mallory@evil.example",
        b"X_REMOTE_ID: mallory",
        b"x-remote_id: mallory",
    ];
    let response = raw_get(&stack, b"/public/x", &spoofed);
    assert_eq!(response.status, 200);
    let seen = stack.app.requests().last().cloned().unwrap();
    let remote: Vec<_> = seen
        .headers
        .iter()
        .filter(|(name, _)| name.to_ascii_lowercase().replace('_', "-").starts_with("x-remote-"))
        .collect();
    assert_eq!(remote, Vec::<&(String, String)>::new());
}

#[test]
fn return_path_stays_on_origin() {
    let stack = Stack::start(Setup::default());
    let long_query = format!("/long?{}", "q".repeat(2100));
    let fits = format!("/fits?{}", "q".repeat(2048 - "/fits?".len()));
    // (request target, return path after login). Envoy has already merged slashes,
    // resolved dot-segments and backslashes, and split absolute-form targets.
    let cases: Vec<(&[u8], &str)> = vec![
        (b"/deep/link?x=1&y=%2F", "/deep/link?x=1&y=%2F"),
        (b"//evil.example/x", "/evil.example/x"),
        (b"///evil.example", "/evil.example"),
        (b"/\\evil.example", "/evil.example"),
        (b"/\\/evil.example", "/evil.example"),
        (b"/./..//evil.example", "/evil.example"),
        (b"/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        (b"/%5C%5Cevil.example", "/%5C%5Cevil.example"),
        (b"/%09/evil.example", "/%09/evil.example"),
        (b"/x%0D%0ALocation:%20http://evil.example", "/x%0D%0ALocation:%20http:/evil.example"),
        (b"http://evil.example/deep?x=1", "/deep?x=1"),
        (b"https://evil.example//other", "/other"),
        (long_query.as_bytes(), "/"),
        (fits.as_bytes(), fits.as_str()),
    ];
    for (target, expected) in cases {
        let label = String::from_utf8_lossy(&target[..target.len().min(60)]).into_owned();
        let started = raw_get(&stack, target, &[]);
        let done = complete_login(&stack, &started);
        assert_eq!(done.status, 302, "{label}: {}", done.body);
        assert_eq!(done.header("location"), Some(expected), "{label}");
    }
}

#[test]
fn return_path_checked_without_normalisation() {
    // The filter must not rely on Envoy's normalisation for this: here it receives the
    // target as the client sent it.
    let stack = start_without_normalisation(Setup::default());
    let cases: Vec<(&[u8], &str)> = vec![
        (b"/plain?x=1", "/plain?x=1"),
        (b"//evil.example/x", "/"),
        (b"///evil.example", "/"),
        (b"/\\evil.example", "/"),
        (b"/x\\y", "/"),
        (b"/%2F%2Fevil.example", "/%2F%2Fevil.example"),
    ];
    for (target, expected) in cases {
        let label = String::from_utf8_lossy(target).into_owned();
        let started = raw_get(&stack, target, &[]);
        let done = complete_login(&stack, &started);
        assert_eq!(done.status, 302, "{label}: {}", done.body);
        assert_eq!(done.header("location"), Some(expected), "{label}");
    }
}

#[test]
fn control_bytes_in_target_never_reach_filter() {
    let stack = Stack::start(Setup::default());
    // Envoy's HTTP/1 codec rejects these before any filter runs, so no login starts and no
    // `Location` can carry them.
    for target in [&b"/a\tb"[..], b"/a\x0bb", b"/a\x00b", b"/caf\xc3\xa9", b"/x#//evil.example"] {
        let label = String::from_utf8_lossy(target).into_owned();
        let response = raw_get(&stack, target, &[]);
        assert_eq!(response.status, 400, "{label}");
        assert!(response.header("location").is_none(), "{label}");
    }
    // A CR or LF ends the request line early, which leaves a request Envoy refuses: 400,
    // or 426 when the cut line reads as HTTP/0.9.
    for target in [&b"/a\rb"[..], b"/a\nLocation: //evil.example"] {
        let response = raw_get(&stack, target, &[]);
        let label = String::from_utf8_lossy(target).into_owned();
        assert!(matches!(response.status, 400 | 426), "{label}: {}", response.status);
        assert!(response.header("location").is_none(), "{label}");
    }
    assert!(stack.app.requests().is_empty());
    eventually("no login started", || stack.envoy.counter("heroku_bouncer.login_started") == 0);
}

#[test]
fn skip_rules_never_widen() {
    let stack = Stack::start(Setup::with_plugin(json!({
        "skip_paths": ["/healthz", "/public/*"],
        "forbidden_passthrough": true
    })));
    // Targets that must go through login: Envoy resolves them to a path outside the
    // rules, or the filter refuses to read them as inside.
    let login: Vec<&[u8]> = vec![
        b"/healthz/../admin",
        b"/healthz/%2E%2E/admin",
        b"/healthz%2F..%2Fadmin",
        b"/healthz%2f..%2fadmin",
        b"/healthz/",
        b"/healthz;x",
        b"/HEALTHZ",
        b"/publicity",
        b"/public",
        b"/PUBLIC/x",
        b"/public/../admin",
        b"/public/%2e%2e/admin",
        b"/public/..%2Fadmin",
        b"/public/..%2fadmin",
        b"/public/%2E%2E%2Fadmin",
        b"/public/..%5Cadmin",
        b"/public/..;/admin",
        b"/public\\..\\admin",
        b"/admin?/public/x",
        b"/auth/heroku/forbidden/../../admin",
        b"/auth/heroku/forbidden/x",
        b"/auth/heroku/forbidden/..%2F..%2Fadmin",
    ];
    for target in login {
        let label = String::from_utf8_lossy(target).into_owned();
        let before = stack.app.requests().len();
        let response = raw_get(&stack, target, &[]);
        assert_eq!(response.status, 302, "{label}: {}", response.body);
        assert!(response.header("location").unwrap().contains("/oauth/authorize?"), "{label}");
        assert_eq!(stack.app.requests().len(), before, "{label}: the app was not reached");
    }

    // Targets that pass without login, with the path the app then receives: the filter
    // and the app see the same path.
    let skipped: Vec<(&[u8], &str)> = vec![
        (b"/healthz", "/healthz"),
        (b"/healthz?/../admin", "/healthz?/../admin"),
        (b"//healthz", "/healthz"),
        (b"/public/x", "/public/x"),
        (b"//public//x", "/public/x"),
        (b"/public/a/../b", "/public/b"),
        (b"/public/%7Euser", "/public/~user"),
        (b"/auth/heroku/forbidden/", "/auth/heroku/forbidden/"),
    ];
    for (target, app_path) in skipped {
        let label = String::from_utf8_lossy(target).into_owned();
        let response = raw_get(&stack, target, &[]);
        assert_eq!(response.status, 200, "{label}: {}", response.body);
        assert!(response.set_cookies().is_empty(), "{label}: no login cookie");
        assert_eq!(stack.app.requests().last().unwrap().path, app_path, "{label}");
    }
}

#[test]
fn allow_rule_reads_email_strictly() {
    let stack = Stack::start(Setup::with_plugin(json!({
        "allow": {"email_domains": ["example.com"], "emails": ["ops.lead@partner.example"]}
    })));
    // Plain addresses: allowed when the domain or the whole address is listed, in any case.
    for (email, allowed) in [
        ("Lin@Example.COM", true),
        ("OPS.Lead@Partner.EXAMPLE", true),
        ("evil.example@example.com", true),
        ("lin@sub.example.com", false),
        ("lin@example.com.evil.example", false),
        ("lin@evilexample.com", false),
        ("lin@example.co", false),
        ("ops.lead@partner.example.net", false),
        ("other@partner.example", false),
    ] {
        stack.standin.set_current_user(email);
        let mut browser = Browser::default();
        let response = stack.log_in(&mut browser, "/");
        let session = browser.cookie(&stack.url("/"), SESSION_COOKIE);
        if allowed {
            assert_eq!(response.status, 200, "{email}: {}", response.body);
            assert_eq!(stack.app.requests().last().unwrap().header("x-heroku-user-email"), Some(email));
            assert!(session.is_some(), "{email}");
        } else {
            assert_eq!(response.status, 403, "{email}: {}", response.body);
            assert_eq!(response.url, stack.url("/auth/heroku/forbidden/"), "{email}");
            assert!(session.is_none(), "{email}: no session for a user outside the rule");
        }
    }

    // Not plain addresses: the login fails whatever the rule allows, with no session.
    let before = stack.app.requests().len();
    for email in [
        "lin@evil.example@example.com",
        "lin@example.com@evil.example",
        "lin@example.com.",
        "lin@.example.com",
        "lin@exam ple.com",
        "@example.com",
        "lin",
        "lin@\u{435}xample.com",
        "lin\u{0}@example.com",
        "lin@example.com\u{200b}",
    ] {
        stack.standin.set_current_user(email);
        let mut browser = Browser::default();
        let response = stack.log_in(&mut browser, "/");
        assert_eq!(response.status, 502, "{email:?}: {}", response.body);
        assert!(response.body.contains("Heroku is unavailable"), "{email:?}");
        assert_eq!(browser.cookie(&stack.url("/"), SESSION_COOKIE), None, "{email:?}");
    }
    assert_eq!(stack.app.requests().len(), before, "no odd email reached the app");
}

/// Seals a login state for this stack's key, as the filter would have issued it at
/// `issued_at`. Returns (state, cookie name, cookie value).
fn forged_login_state(issued_at: u64) -> (String, String, String) {
    let login = LoginState::new(&[42; STATE_RANDOM_BYTES], "/".into(), issued_at);
    let state = login.state.expose().to_string();
    let name = session::state_cookie_name(SESSION_COOKIE, &state).unwrap();
    let sealer = Sealer::new(&Secret::new(SECRET_KEY));
    let value = login.seal(&sealer, &name, &[7; SEAL_RANDOM_BYTES]).unwrap();
    (state, name, value)
}

fn assert_not_verified(response: &Response, label: &str) {
    assert_eq!(response.status, 403, "{label}: {}", response.body);
    assert!(response.body.contains("Login could not be verified"), "{label}: {}", response.body);
    assert!(
        !response.all("set-cookie").iter().any(|cookie| cookie.starts_with("herokuoauthsess=")),
        "{label}: no session"
    );
}

#[test]
fn callback_needs_own_fresh_state() {
    let stack = Stack::start(Setup::default());
    let callback = stack.url("/auth/heroku/callback/");

    // A login of this browser, stopped at the callback.
    let mut browser = Browser::default();
    let authorize = browser.get(&stack.url("/")).header("location").unwrap().to_string();
    let real_callback = browser.get(&authorize).header("location").unwrap().to_string();
    let query = real_callback.split_once('?').unwrap().1.to_string();
    let state = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "state").unwrap().1.into_owned();
    let code = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "code").unwrap().1.into_owned();
    let state_cookie = browser
        .cookie_names(&stack.url("/"))
        .into_iter()
        .find(|name| name.starts_with("herokuoauthsess-state-"))
        .unwrap();
    let state_value = browser.cookie(&stack.url("/"), &state_cookie).unwrap();

    let mut cases: Vec<(String, String, Vec<(String, String)>)> = vec![
        ("no state".into(), format!("{callback}?code={code}"), vec![(state_cookie.clone(), state_value.clone())]),
        ("empty state".into(), format!("{callback}?code={code}&state="), vec![(state_cookie.clone(), state_value.clone())]),
        ("short state".into(), format!("{callback}?code={code}&state={}", &state[..20]), vec![(state_cookie.clone(), state_value.clone())]),
        ("state without its cookie".into(), format!("{callback}?code={code}&state={state}"), vec![]),
        (
            "state cookie of another login".into(),
            format!("{callback}?code={code}&state={state}"),
            vec![(state_cookie.clone(), forged_login_state(now_s()).2)],
        ),
        (
            "state cookie altered".into(),
            format!("{callback}?code={code}&state={state}"),
            vec![(state_cookie.clone(), state_value.replacen("v1.", "v1.A", 1))],
        ),
        (
            "state cookie under another name".into(),
            format!("{callback}?code={code}&state={state}"),
            vec![("herokuoauthsess-state-AAAAAAAA".into(), state_value.clone())],
        ),
        (
            "session cookie as state".into(),
            format!("{callback}?code={code}&state={state}"),
            vec![(state_cookie.clone(), "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into())],
        ),
    ];
    // Login states sealed with the right key but too old, or from too far in the future.
    for (label, issued_at) in [("state older than 10 minutes", now_s() - 601), ("state from the future", now_s() + 300)] {
        let (state, name, value) = forged_login_state(issued_at);
        cases.push((label.into(), format!("{callback}?code={code}&state={state}"), vec![(name, value)]));
    }

    for (label, url, cookies) in cases {
        let mut visitor = Browser::default();
        for (name, value) in &cookies {
            visitor.set_cookie(&stack.url("/"), name, value);
        }
        assert_not_verified(&visitor.get(&url), &label);
    }
    assert_eq!(stack.standin.calls(Endpoint::Token), 0, "no callback above reached Heroku");

    // The rightful browser completes once; a replay of the same callback is rejected
    // without calling Heroku, because the state cookie was cleared.
    let done = browser.get(&real_callback);
    assert_eq!(done.status, 302, "{}", done.body);
    assert!(done.all("set-cookie").iter().any(|cookie| cookie.starts_with(&format!("{state_cookie}=;"))));
    assert_not_verified(&browser.get(&real_callback), "replay after login");
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);

    // A client that keeps the state cookie against the filter's wish cannot replay either:
    // the filter remembers used states in Envoy's shared data, across workers.
    let mut keeper = Browser::default();
    keeper.set_cookie(&stack.url("/"), &state_cookie, &state_value);
    assert_not_verified(&keeper.get(&real_callback), "replay with a kept state cookie");
    assert_eq!(stack.standin.calls(Endpoint::Token), 1, "a replay with a kept cookie never reaches Heroku");
    assert_eq!(stack.standin.calls(Endpoint::Account), 1);
}

#[test]
fn callback_rejects_unusable_codes() {
    let stack = Stack::start(Setup::default());
    for (label, code) in [
        ("empty code", String::new()),
        ("code with a space", "a%20b".to_string()),
        ("code with a newline", "a%0Ab".to_string()),
        ("code with non-ASCII", "caf%C3%A9".to_string()),
        ("code over 512 bytes", "c".repeat(513)),
    ] {
        let mut browser = Browser::default();
        let authorize = browser.get(&stack.url("/")).header("location").unwrap().to_string();
        let callback = browser.get(&authorize).header("location").unwrap().to_string();
        let query = callback.split_once('?').unwrap().1;
        let state = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "state").unwrap().1.into_owned();
        let response = browser.get(&stack.url(&format!("/auth/heroku/callback/?state={state}&code={code}")));
        assert_not_verified(&response, label);
    }
    assert_eq!(stack.standin.calls(Endpoint::Token), 0);
}

/// Returns the session cookie value with the byte at `index` changed to another base64url
/// character.
fn with_changed_char(value: &str, index: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn broken_session_cookies_mean_no_login() {
    let stack = Stack::start(Setup::default());
    let good = session_for(&stack, ADA);

    let mut bad: Vec<(String, String)> = Vec::new();
    for index in (3..good.len()).step_by(good.len() / 12) {
        bad.push((format!("changed at {index}"), with_changed_char(&good, index)));
    }
    for cut in [0, 1, 3, 4, 20, good.len() / 2, good.len() - 1] {
        bad.push((format!("cut to {cut}"), good[..cut].to_string()));
    }
    for prefix in ["v0.", "v2.", "V1.", "", "v1.v1."] {
        bad.push((format!("prefix {prefix:?}"), format!("{prefix}{}", &good[3..])));
    }
    bad.push(("padded".into(), format!("{good}==")));
    bad.push(("long garbage".into(), format!("v1.{}", "A".repeat(8000))));
    bad.push(("quoted".into(), format!("\"{good}\"")));

    for (label, value) in &bad {
        let response = raw_get(&stack, b"/page", &[format!("Cookie: {SESSION_COOKIE}={value}").as_bytes()]);
        assert_eq!(response.status, 302, "{label}: {}", response.body);
        assert!(response.header("location").unwrap().contains("/oauth/authorize?"), "{label}");
        let cookie = format!("Cookie: {SESSION_COOKIE}={value}");
        let api = raw_get_accepting(&stack, b"/api", "application/json", &[cookie.as_bytes()]);
        assert_eq!(api.status, 401, "{label}: API clients get 401");
    }
    assert!(stack.app.requests().iter().all(|request| request.path == "/"), "only the login's own page reached the app");

    // A login state cookie's value is no session, even under the session cookie's name.
    let mut browser = Browser::default();
    let started = browser.get(&stack.url("/"));
    let state_value = started.all("set-cookie")[0].split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let response = raw_get(&stack, b"/page", &[format!("Cookie: {SESSION_COOKIE}={state_value}").as_bytes()]);
    assert_eq!(response.status, 302);

    // The valid session still works after all of that.
    let response = raw_get(&stack, b"/page", &[format!("Cookie: {SESSION_COOKIE}={good}").as_bytes()]);
    assert_eq!(response.status, 200);
}

#[test]
fn odd_cookie_headers_find_right_session() {
    let stack = Stack::start(Setup::default());
    let ada = session_for(&stack, ADA);
    let grace = session_for(&stack, "grace@heroku.com");
    let email_seen = |response: &RawResponse| {
        assert_eq!(response.status, 200, "{}", response.body);
        stack.app.requests().last().unwrap().header("x-heroku-user-email").map(str::to_string)
    };

    // An invalid copy before the valid one does not hide it.
    let line = format!("Cookie: {SESSION_COOKIE}=v1.garbage; {SESSION_COOKIE}={ada}");
    assert_eq!(email_seen(&raw_get(&stack, b"/a", &[line.as_bytes()])).as_deref(), Some(ADA));

    // Of two valid sessions, the first one sent counts.
    let line = format!("Cookie: {SESSION_COOKIE}={grace}; {SESSION_COOKIE}={ada}");
    assert_eq!(email_seen(&raw_get(&stack, b"/b", &[line.as_bytes()])).as_deref(), Some("grace@heroku.com"));

    // Several `Cookie` headers count as one, and the app keeps its own cookies only.
    let first = b"Cookie: app=1; theme=dark".as_slice();
    let second = format!("Cookie: {SESSION_COOKIE}={ada}; herokuoauthsess-logged-out=1");
    let third = b"Cookie: lang=en".as_slice();
    assert_eq!(email_seen(&raw_get(&stack, b"/c", &[first, second.as_bytes(), third])).as_deref(), Some(ADA));
    assert_eq!(stack.app.requests().last().unwrap().header("cookie"), Some("app=1; theme=dark; lang=en"));

    // Non-UTF-8 bytes in the filter's own cookies around a valid session. (The filter
    // forwards the app's cookies byte for byte, and the demo app cannot read non-UTF-8
    // headers, so only the filter's cookies carry such bytes here.)
    let mut line = b"Cookie: herokuoauthsess-state-\xff\xfe=\x80; herokuoauthsess=\xc3\x28v1.\xff; ".to_vec();
    line.extend_from_slice(format!("{SESSION_COOKIE}={ada}").as_bytes());
    assert_eq!(email_seen(&raw_get(&stack, b"/d", &[&line])).as_deref(), Some(ADA));
    assert_eq!(stack.app.requests().last().unwrap().header("cookie"), None);

    // Thousands of cookies before the session.
    let many: String = (0..3000).map(|index| format!("c{index}=v; ")).collect();
    let line = format!("Cookie: {many}{SESSION_COOKIE}={ada}");
    assert!(line.len() > 20_000);
    assert_eq!(email_seen(&raw_get(&stack, b"/e", &[line.as_bytes()])).as_deref(), Some(ADA));
    let forwarded = stack.app.requests().last().unwrap().header("cookie").unwrap().to_string();
    assert!(forwarded.starts_with("c0=v; c1=v"), "the app's cookies survive");
    assert!(forwarded.ends_with("c2999=v"), "the app's cookies survive");
    assert!(!forwarded.contains(SESSION_COOKIE));

    // Thousands of invalid session copies and nothing else: no login, no error.
    let junk: String = (0..2000).map(|index| format!("{SESSION_COOKIE}=v1.{index}AAAA; ")).collect();
    let response = raw_get(&stack, b"/f", &[format!("Cookie: {junk}").as_bytes()]);
    assert_eq!(response.status, 302);
}

#[test]
fn many_state_cookies_are_cleared() {
    let stack = Stack::start(Setup::default());
    // A browser that piled up login state cookies (or had them planted) still gets a login,
    // and the filter clears all but the newest few.
    let cookies: String = (0..1000).map(|index| format!("herokuoauthsess-state-{index:08}=v1.x; ")).collect();
    let response = raw_get(&stack, b"/page", &[format!("Cookie: {cookies}app=1").as_bytes()]);
    assert_eq!(response.status, 302, "{}", response.body);
    let set_cookies = response.set_cookies();
    let cleared = set_cookies.iter().filter(|cookie| cookie.contains("Max-Age=0")).count();
    assert_eq!(cleared, 1000 - 4, "all but four old state cookies are cleared");
    assert_eq!(set_cookies.len(), cleared + 1, "plus the new login's state cookie");

    // A non-UTF-8 state cookie name does not break the reply.
    let response = raw_get(&stack, b"/page", &[b"Cookie: herokuoauthsess-state-\xff\xfe=1; herokuoauthsess-state-a=1; herokuoauthsess-state-b=1; herokuoauthsess-state-c=1; herokuoauthsess-state-d=1"]);
    assert_eq!(response.status, 302);
}

#[test]
fn header_limits_are_envoys() {
    let stack = Stack::start(Setup::default());
    // Over Envoy's default 60 KiB of request headers, Envoy itself responds with 431.
    let huge = format!("Cookie: {}", "c=v; ".repeat(14_000));
    let response = raw_get(&stack, b"/page", &[huge.as_bytes()]);
    assert_eq!(response.status, 431);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200, "the filter keeps working");
}

/// Sends a GET over HTTP/2 with prior knowledge (h2c) through curl, which sends each
/// `cookie` header as its own field. Returns curl's status and verbose log.
fn http2_get(url: &str, headers: &[String]) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-sS", "-v", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"]);
    for header in headers {
        command.arg("-H").arg(header);
    }
    let output = command.arg(url).output().expect("run curl (install it, e.g. apt-get install curl)");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    let status = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or_else(|_| panic!("curl failed:\n{log}"));
    (status, log)
}

#[test]
fn http2_split_cookies_and_spoofing() {
    let stack = Stack::start(Setup::default());
    let ada = session_for(&stack, ADA);
    let headers = vec![
        "accept: text/html".to_string(),
        "cookie: app=1".to_string(),
        format!("cookie: {SESSION_COOKIE}={ada}"),
        "cookie: theme=dark".to_string(),
        "x-heroku-user-email: mallory@evil.example".to_string(),
        "x_heroku_user_id: mallory".to_string(),
    ];
    let (status, log) = http2_get(&stack.url("/h2?x=1"), &headers);
    assert!(log.contains("HTTP/2 200"), "the request went over HTTP/2:\n{log}");
    let split = log.lines().filter(|line| line.starts_with("> cookie:")).count();
    assert_eq!(split, 3, "curl sent three separate cookie fields:\n{log}");
    assert_eq!(status, 200);
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(seen.path, "/h2?x=1");
    assert_eq!(seen.header("x-heroku-user-email"), Some(ADA));
    assert_eq!(identity_headers(&seen).len(), 3, "{:?}", seen.headers);
    assert_eq!(seen.header("cookie"), Some("app=1; theme=dark"));

    // A broken session split the same way is no session.
    let broken = vec![
        "accept: text/html".to_string(),
        "cookie: app=1".to_string(),
        format!("cookie: {SESSION_COOKIE}={}", &ada[..ada.len() - 4]),
    ];
    assert_eq!(http2_get(&stack.url("/h2"), &broken).0, 302);
    let api = vec!["accept: application/json".to_string(), format!("cookie: {SESSION_COOKIE}=v1.AAAA")];
    assert_eq!(http2_get(&stack.url("/h2"), &api).0, 401);
}

/// Builds an `/account` response for Ada with her real id, so only the field under test is odd.
fn ada_account(fields: serde_json::Value) -> Fault {
    let mut body = json!({"id": User::id_for_email(ADA), "email": ADA, "name": "Ada Lovelace"});
    for (key, value) in fields.as_object().unwrap() {
        body[key] = value.clone();
    }
    Fault::Raw { status: 200, content_type: "application/json".into(), body: body.to_string().into_bytes() }
}

#[test]
fn account_text_never_reaches_headers_raw() {
    let stack = Stack::start(Setup::default());
    // Names are percent-encoded: control characters, `%` and non-ASCII never arrive raw.
    for (name, expected) in [
        ("Ada\r\nX-Evil: 1", "Ada%0D%0AX-Evil: 1"),
        ("Ada\nX-Evil: 1", "Ada%0AX-Evil: 1"),
        ("A\u{0}d\u{7f}a\t", "A%00d%7Fa%09"),
        ("Jos\u{e9} \u{1f600}", "Jos%C3%A9 %F0%9F%98%80"),
        ("100% %41", "100%25 %2541"),
        ("\u{202e}evil", "%E2%80%AEevil"),
        ("<script>", "<script>"),
    ] {
        stack.standin.set_fault(Endpoint::Account, Some(ada_account(json!({"name": name}))));
        let mut browser = Browser::default();
        let response = stack.log_in(&mut browser, "/");
        assert_eq!(response.status, 200, "{name:?}: {}", response.body);
        let seen = stack.app.requests().last().cloned().unwrap();
        assert_eq!(seen.header("x-heroku-user-name"), Some(expected), "{name:?}");
        assert!(seen.header("x-evil").is_none(), "{name:?}: no header injected");
        assert!(seen.headers.iter().all(|(_, value)| value.bytes().all(|byte| byte == b' ' || byte.is_ascii_graphic())));
    }

    // An email or id that is not plain text fails the login: 502, no session, nothing
    // reaches the app.
    let before = stack.app.requests().len();
    for (label, fields) in [
        ("email with CRLF", json!({"email": "ada@example.com\r\nX-Evil: 1"})),
        ("email with a tab", json!({"email": "ada@example.com\t"})),
        ("email with a leading space", json!({"email": " ada@example.com"})),
        ("email with NUL", json!({"email": "ada\u{0}@example.com"})),
        ("non-ASCII email", json!({"email": "ad\u{e0}@example.com"})),
        ("email as a number", json!({"email": 5})),
        ("null email", json!({"email": null})),
        ("id with CRLF", json!({"id": "x\r\nX-Evil: 1"})),
        ("empty id", json!({"id": ""})),
        ("id of another account", json!({"id": User::id_for_email("grace@heroku.com")})),
        ("name as an object", json!({"name": {"first": "Ada"}})),
        ("name over 256 characters", json!({"name": "n".repeat(257)})),
    ] {
        stack.standin.set_fault(Endpoint::Account, Some(ada_account(fields)));
        let mut browser = Browser::default();
        let response = stack.log_in(&mut browser, "/");
        assert_eq!(response.status, 502, "{label}: {}", response.body);
        assert_eq!(browser.cookie(&stack.url("/"), SESSION_COOKIE), None, "{label}");
    }
    assert_eq!(stack.app.requests().len(), before);
    stack.standin.set_fault(Endpoint::Account, None);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200);
}

/// Runs a login up to the callback's response.
fn callback_response(stack: &Stack, browser: &mut Browser, headers: &[(&str, &str)]) -> Response {
    let authorize = browser.get(&stack.url("/start")).header("location").unwrap().to_string();
    let callback = browser.get(&authorize).header("location").unwrap().to_string();
    browser.request("GET", &callback, headers)
}

fn raw_fault(status: u16, content_type: &str, body: &[u8]) -> Fault {
    Fault::Raw { status, content_type: content_type.into(), body: body.to_vec() }
}

#[test]
fn heroku_failures_give_502_page() {
    let stack = Stack::start(Setup::with_plugin(json!({"callout_timeout_ms": 300})));
    let token_body = |extra: &str| {
        format!(r#"{{"access_token":"HRKU-x","token_type":"Bearer","user_id":"{}"{extra}}}"#, User::id_for_email(ADA))
    };
    let cases: Vec<(&str, Endpoint, Fault)> = vec![
        ("token slower than the timeout", Endpoint::Token, Fault::Delay(Duration::from_secs(3))),
        ("token 504", Endpoint::Token, Fault::Status(504)),
        ("token redirect", Endpoint::Token, raw_fault(302, "text/html", b"")),
        ("token 204", Endpoint::Token, raw_fault(204, "", b"")),
        ("token null", Endpoint::Token, raw_fault(200, "application/json", b"null")),
        ("token JSON string", Endpoint::Token, raw_fault(200, "application/json", b"\"HRKU-x\"")),
        ("token without content type", Endpoint::Token, raw_fault(200, "", token_body("").as_bytes())),
        ("token form-encoded", Endpoint::Token, raw_fault(200, "application/x-www-form-urlencoded", b"access_token=HRKU-x")),
        ("token trailing garbage", Endpoint::Token, raw_fault(200, "application/json", format!("{}xx", token_body("")).as_bytes())),
        ("token duplicate field", Endpoint::Token, raw_fault(200, "application/json", token_body(r#","access_token":"HRKU-y""#).as_bytes())),
        ("token expires_in as float", Endpoint::Token, raw_fault(200, "application/json", token_body(r#","expires_in":1e3"#).as_bytes())),
        ("token non-UTF-8 body", Endpoint::Token, raw_fault(200, "application/json", b"{\"access_token\":\"\xff\xfe\"}")),
        ("account slower than the timeout", Endpoint::Account, Fault::Delay(Duration::from_secs(3))),
        ("account 403", Endpoint::Account, Fault::Status(403)),
        ("account 503", Endpoint::Account, Fault::Status(503)),
        ("account body over the size limit", Endpoint::Account, raw_fault(200, "application/json", oversized_account().as_bytes())),
        ("account duplicate email", Endpoint::Account, raw_fault(200, "application/json", format!(r#"{{"id":"{}","email":"ada@example.com","email":"mallory@evil.example"}}"#, User::id_for_email(ADA)).as_bytes())),
        ("account HTML error page", Endpoint::Account, raw_fault(503, "text/html", b"<h1>Application error</h1>")),
    ];
    for (index, (label, endpoint, fault)) in cases.iter().enumerate() {
        stack.standin.set_fault(*endpoint, Some(fault.clone()));
        let mut browser = Browser::default();
        let response = callback_response(&stack, &mut browser, &[]);
        assert_eq!(response.status, 502, "{label}: {}", response.body);
        assert!(response.body.contains("Heroku is unavailable"), "{label}");
        assert!(response.body.contains("href=\"/start\""), "{label}: the page offers a retry");
        assert_eq!(browser.cookie(&stack.url("/"), SESSION_COOKIE), None, "{label}: no session");
        let expected = index as u64 + 1;
        eventually(label, || stack.envoy.counter("heroku_bouncer.callout_failed") == expected);
        stack.standin.set_fault(*endpoint, None);
        let mut next = Browser::default();
        assert_eq!(stack.log_in(&mut next, "/").status, 200, "{label}: the next login works");
    }
    assert!(stack.app.requests().iter().all(|request| request.path == "/"), "only completed logins reached the app");
}

fn oversized_account() -> String {
    let padding = "p".repeat(heroku_bouncer::heroku::MAX_RESPONSE_BYTES + 1024);
    format!(r#"{{"id":"{}","email":"{ADA}","name":"Ada","padding":"{padding}"}}"#, User::id_for_email(ADA))
}

#[test]
fn heroku_failure_gives_api_clients_json() {
    let stack = Stack::start(Setup::default());
    stack.standin.set_fault(Endpoint::Token, Some(Fault::Status(503)));
    let mut browser = Browser::default();
    let response = callback_response(&stack, &mut browser, &[("accept", "application/json")]);
    assert_eq!(response.status, 502);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.json()["id"], "bad_gateway");
    assert_eq!(browser.cookie(&stack.url("/"), SESSION_COOKIE), None);
    eventually("callout_failed counter", || stack.envoy.counter("heroku_bouncer.callout_failed") == 1);
}

#[test]
fn refused_account_connection_fails_cleanly() {
    let setup = Setup { api_upstream: Upstream::Refused, ..Setup::default() };
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    let response = callback_response(&stack, &mut browser, &[]);
    assert_eq!(response.status, 502, "{}", response.body);
    assert!(response.body.contains("Heroku is unavailable"));
    assert_eq!(browser.cookie(&stack.url("/"), SESSION_COOKIE), None);
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);
    eventually("callout_failed counter", || stack.envoy.counter("heroku_bouncer.callout_failed") == 1);
    assert_eq!(browser.get(&stack.url("/again")).status, 302, "the next request gets a fresh login");
}
