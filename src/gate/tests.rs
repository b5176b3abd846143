use super::login::MAX_PENDING_LOGINS;
use super::*;
use crate::session::{LoginState, LOGIN_STATE_TTL_S};
use crate::config;
use crate::heroku::CalloutResponse;

const NOW: u64 = 1_800_000_000;
const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Deterministic random bytes. Each test call seeds a new generator from a shared counter,
/// so two logins in one test never get the same state.
struct CountingRandom(u64);

static NEXT_SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl CountingRandom {
    fn fresh() -> Self {
        CountingRandom(NEXT_SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32)
    }
}

impl Random for CountingRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        for byte in buf.iter_mut() {
            // SplitMix64: cheap, and spreads consecutive seeds over all bytes.
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut mixed = self.0;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *byte = (mixed ^ (mixed >> 31)) as u8;
        }
        Ok(())
    }
}

struct NoRandom;

impl Random for NoRandom {
    fn fill(&mut self, _buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        Err(RandomUnavailable)
    }
}

fn gate_with(extra: &str) -> Gate {
    let separator = if extra.is_empty() { "" } else { "," };
    let json = format!(
        r#"{{"client_id":"the-client","client_secret":"the-secret","secret_key":"{KEY}",
            "authorize_url":"https://id.example/oauth/authorize"{separator}{extra}}}"#
    );
    Gate::new(config::parse(json.as_bytes(), &|_| None).unwrap())
}

fn gate() -> Gate {
    gate_with("")
}

fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        (":authority".to_string(), b"app.example".to_vec()),
    ];
    headers.extend(extra.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())));
    headers
}

fn run(gate: &Gate, method: &str, path: &str, extra: &[(&str, &str)]) -> Outcome {
    let headers = headers(method, path, extra);
    gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::fresh())
}

fn reply(outcome: &Outcome) -> &Reply {
    match &outcome.step {
        Step::Reply(reply) => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn forward(outcome: Outcome) -> Forward {
    match outcome.step {
        Step::Forward(forward) => forward,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn set_cookies(reply: &Reply) -> Vec<&str> {
    reply
        .headers
        .iter()
        .filter(|(key, _)| key == "set-cookie")
        .map(|(_, value)| value.as_str())
        .collect()
}

/// Returns the `name=value` part of a `Set-Cookie` value.
fn cookie_pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

fn query_param(location: &str, key: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// A request with no headers, for callouts whose flow does not read the request.
fn blank() -> Request<'static> {
    const NO_HEADERS: &Vec<(String, Vec<u8>)> = &Vec::new();
    Request { headers: NO_HEADERS }
}

fn json_response(status: u16, body: &str) -> CalloutResponse {
    CalloutResponse {
        status: Some(status),
        content_type: Some("application/json".into()),
        next_range: None,
        body: body.as_bytes().to_vec(),
    }
}

const TOKEN_BODY: &str = r#"{"access_token":"HRKU-access","expires_in":28799,"refresh_token":"HRKU-refresh",
    "token_type":"Bearer","user_id":"user-1","session_nonce":null}"#;
const ACCOUNT_BODY: &str = r#"{"email":"ada@example.com","id":"user-1","name":"Ada Lovelace"}"#;

/// A started login: the state sent to Heroku and the state cookie's `name=value`.
struct Started {
    state: String,
    cookie: String,
}

fn start_login(gate: &Gate, path: &str) -> Started {
    let outcome = run(gate, "GET", path, &[("accept", "text/html")]);
    let reply = reply(&outcome);
    let location = header(reply, "location").unwrap();
    Started {
        state: query_param(location, "state").unwrap(),
        cookie: cookie_pair(set_cookies(reply).last().unwrap()).to_string(),
    }
}

/// Runs a callback and both callouts with the given responses. Returns the final outcome.
fn finish_login(gate: &Gate, started: &Started, token: CalloutResponse, account: CalloutResponse) -> Outcome {
    let path = format!("/auth/heroku/callback/?code=the-code&state={}", started.state);
    let outcome = run(gate, "GET", &path, &[("cookie", &started.cookie)]);
    let Step::Callout(_, pending) = outcome.step else {
        panic!("expected the token callout, got {:?}", outcome.step);
    };
    let outcome = gate.on_callout_response(pending, &token, &blank(), NOW, &mut CountingRandom::fresh());
    let Step::Callout(_, pending) = outcome.step else {
        return outcome;
    };
    gate.on_callout_response(pending, &account, &blank(), NOW, &mut CountingRandom::fresh())
}

fn log_in(gate: &Gate) -> String {
    let started = start_login(gate, "/");
    let outcome = finish_login(gate, &started, json_response(200, TOKEN_BODY), json_response(200, ACCOUNT_BODY));
    cookie_pair(set_cookies(reply(&outcome))[0]).to_string()
}

#[test]
fn browser_without_session_goes_to_heroku() {
    let outcome = run(&gate(), "GET", "/deep/link?x=1&y=%2F", &[("accept", "text/html,*/*")]);
    assert_eq!(outcome.events, vec![Event::LoginStarted]);
    let reply = reply(&outcome);
    assert_eq!(reply.status, 302);

    let location = header(reply, "location").unwrap();
    assert!(location.starts_with("https://id.example/oauth/authorize?"), "{location}");
    assert_eq!(query_param(location, "client_id").as_deref(), Some("the-client"));
    assert_eq!(query_param(location, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(location, "scope").as_deref(), Some("identity"));
    assert!(query_param(location, "redirect_uri").is_none());
    let state = query_param(location, "state").unwrap();
    assert_eq!(state.len(), 32);

    let cookies = set_cookies(reply);
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].starts_with(&format!("herokuoauthsess-state-{}=v1.", &state[..8])));
    assert!(cookies[0].ends_with("; Max-Age=600; Path=/; HttpOnly; SameSite=Lax"), "{}", cookies[0]);
}

#[test]
fn state_cookie_carries_return_path() {
    let gate = gate();
    let started = start_login(&gate, "/deep/link?x=1");
    let (name, value) = started.cookie.split_once('=').unwrap();
    let login = LoginState::open(&gate.sealer, name, value.as_bytes(), &started.state, NOW).unwrap();
    assert_eq!(login.return_to, "/deep/link?x=1");
}

#[test]
fn head_request_is_redirected_too() {
    assert_eq!(reply(&run(&gate(), "HEAD", "/", &[])).status, 302);
}

#[test]
fn api_clients_get_401_json() {
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("POST", &[("accept", "text/html")]),
        ("DELETE", &[]),
        ("GET", &[("accept", "application/json")]),
        ("GET", &[("x-requested-with", "XMLHttpRequest")]),
        ("GET", &[("sec-fetch-mode", "cors")]),
        ("GET", &[("accept", "application/json, text/html;q=0")]),
    ];
    for (method, extra) in cases {
        let outcome = run(&gate(), method, "/api/things", extra);
        assert_eq!(outcome.events, vec![Event::Unauthorized], "{method} {extra:?}");
        let reply = reply(&outcome);
        assert_eq!(reply.status, 401);
        assert_eq!(header(reply, "content-type"), Some("application/json"));
        assert!(set_cookies(reply).is_empty(), "no state cookie for API clients");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["id"], "unauthorized");
    }
}

#[test]
fn browser_accept_headers_get_redirect() {
    for accept in ["text/html, application/json", "*/*", "application/json;q=0.5, text/html"] {
        let outcome = run(&gate(), "GET", "/", &[("accept", accept), ("sec-fetch-mode", "navigate")]);
        assert_eq!(reply(&outcome).status, 302, "{accept}");
    }
}

#[test]
fn full_login_sets_session_and_returns() {
    let gate = gate();
    let started = start_login(&gate, "/deep/link?x=1");
    let outcome = finish_login(&gate, &started, json_response(200, TOKEN_BODY), json_response(200, ACCOUNT_BODY));
    assert_eq!(outcome.events, vec![Event::LoginSucceeded { email: "ada@example.com".into() }]);

    let reply = reply(&outcome);
    assert_eq!(reply.status, 302);
    assert_eq!(header(reply, "location"), Some("/deep/link?x=1"));
    let cookies = set_cookies(reply);
    assert_eq!(cookies.len(), 2);
    assert!(cookies[0].starts_with("herokuoauthsess=v1."));
    assert!(cookies[0].ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"), "{}", cookies[0]);
    assert!(cookies[0].len() < MAX_SET_COOKIE_BYTES);
    let state_name = started.cookie.split('=').next().unwrap();
    assert_eq!(cookies[1], format!("{state_name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"));
}

#[test]
fn token_and_account_callouts_carry_code_and_token() {
    let gate = gate();
    let started = start_login(&gate, "/");
    let path = format!("/auth/heroku/callback/?code=the-code&state={}", started.state);
    let outcome = run(&gate, "GET", &path, &[("cookie", &started.cookie)]);
    let Step::Callout(callout, pending) = outcome.step else { panic!("no token callout") };
    assert_eq!(callout.cluster, "heroku_id");
    let body = String::from_utf8(callout.body.unwrap()).unwrap();
    assert_eq!(body, "grant_type=authorization_code&code=the-code&client_secret=the-secret");

    let outcome = gate.on_callout_response(pending, &json_response(200, TOKEN_BODY), &blank(), NOW, &mut CountingRandom::fresh());
    let Step::Callout(callout, _) = outcome.step else { panic!("no account callout") };
    assert_eq!(callout.cluster, "heroku_api");
    assert!(callout.headers.contains(&("authorization".into(), "Bearer HRKU-access".into())));
}

#[test]
fn callback_without_trailing_slash_is_accepted() {
    let gate = gate();
    let started = start_login(&gate, "/");
    let path = format!("/auth/heroku/callback?code=c&state={}", started.state);
    let outcome = run(&gate, "GET", &path, &[("cookie", &started.cookie)]);
    assert!(matches!(outcome.step, Step::Callout(..)));
}

#[test]
fn parallel_logins_all_complete() {
    let gate = gate();
    let tabs: Vec<Started> = (0..3).map(|tab| start_login(&gate, &format!("/tab/{tab}"))).collect();
    let all_cookies = tabs.iter().map(|tab| tab.cookie.as_str()).collect::<Vec<_>>().join("; ");
    for (index, tab) in tabs.iter().enumerate() {
        let path = format!("/auth/heroku/callback/?code=c{index}&state={}", tab.state);
        let outcome = run(&gate, "GET", &path, &[("cookie", &all_cookies)]);
        let Step::Callout(_, pending) = outcome.step else { panic!("tab {index} was rejected") };
        let outcome = gate.on_callout_response(pending, &json_response(200, TOKEN_BODY), &blank(), NOW, &mut CountingRandom::fresh());
        let Step::Callout(_, pending) = outcome.step else { panic!("no account callout") };
        let outcome = gate.on_callout_response(pending, &json_response(200, ACCOUNT_BODY), &blank(), NOW, &mut CountingRandom::fresh());
        assert_eq!(header(reply(&outcome), "location"), Some(format!("/tab/{index}").as_str()));
    }
}

#[test]
fn pending_logins_are_bounded() {
    let gate = gate();
    let tabs: Vec<Started> = (0..MAX_PENDING_LOGINS).map(|_| start_login(&gate, "/")).collect();
    let all_cookies = tabs.iter().map(|tab| tab.cookie.as_str()).collect::<Vec<_>>().join("; ");
    let outcome = run(&gate, "GET", "/", &[("cookie", &all_cookies)]);
    let cookies = set_cookies(reply(&outcome));
    let cleared = cookies.iter().filter(|cookie| cookie.contains("Max-Age=0")).count();
    assert_eq!(cleared, 1, "the oldest of {MAX_PENDING_LOGINS} is cleared: {cookies:?}");
    assert_eq!(cookies.len(), 2);

    let fewer = all_cookies.split_once("; ").unwrap().1;
    let outcome = run(&gate, "GET", "/", &[("cookie", fewer)]);
    assert_eq!(set_cookies(reply(&outcome)).len(), 1, "below the limit nothing is cleared");
}

#[test]
fn session_passes_with_identity() {
    let gate = gate();
    let session = log_in(&gate);
    let cookie = format!("app=1; {session}; other=2");
    let forward = forward(run(&gate, "GET", "/page", &[("cookie", &cookie)]));
    assert_eq!(
        forward.set.to_vec(),
        vec![
            ("x-heroku-user-email".into(), "ada@example.com".into()),
            ("x-heroku-user-id".into(), "user-1".into()),
            ("x-heroku-user-name".into(), "Ada Lovelace".into()),
        ]
    );
    assert_eq!(forward.cookie, Some(Some(Rc::from(&b"app=1; other=2"[..]))));
}

#[test]
fn session_passes_for_api_clients() {
    let gate = gate();
    let session = log_in(&gate);
    let outcome = run(&gate, "POST", "/api", &[("cookie", &session), ("accept", "application/json")]);
    assert!(forward(outcome).set.iter().any(|(name, _)| &**name == "x-heroku-user-email"));
}

#[test]
fn token_exposed_only_when_configured() {
    let gate = gate_with(r#""expose_token":true"#);
    let session = log_in(&gate);
    let exposed = forward(run(&gate, "GET", "/", &[("cookie", &session)]));
    assert!(exposed.set.contains(&("x-heroku-oauth-token".into(), "HRKU-access".into())));

    let gate = self::gate();
    let session = log_in(&gate);
    let hidden = forward(run(&gate, "GET", "/", &[("cookie", &session)]));
    assert!(!hidden.set.iter().any(|(name, _)| &**name == "x-heroku-oauth-token"));
}

#[test]
fn spoofed_identity_headers_are_removed() {
    let gate = gate();
    let session = log_in(&gate);
    let spoofed = [
        ("x-heroku-user-email", "evil@example.com"),
        ("x_heroku_user_email", "evil@example.com"),
        ("x-heroku_user-id", "evil"),
        ("x-heroku-oauth-token", "stolen"),
    ];
    let mut extra = spoofed.to_vec();
    extra.push(("cookie", &session));
    let forward = forward(run(&gate, "GET", "/", &extra));
    for (name, _) in spoofed {
        assert!(forward.remove.contains(&name.to_string()), "{name} not removed");
    }
    assert_eq!(forward.remove.len(), 4);
}

#[test]
fn skip_paths_pass_without_login_but_lose_identity() {
    let gate = gate_with(r#""skip_paths":["/healthz","/public/*"]"#);
    for path in ["/healthz", "/healthz?probe=1", "/public/app.css"] {
        let outcome = run(&gate, "GET", path, &[("x-heroku-user-email", "evil@example.com")]);
        let forward = forward(outcome);
        assert_eq!(forward.remove, vec!["x-heroku-user-email".to_string()], "{path}");
        assert!(forward.set.is_empty());
    }
    for path in ["/healthz/", "/healthzz", "/x?/healthz", "/public"] {
        assert_eq!(reply(&run(&gate, "GET", path, &[])).status, 302, "{path}");
    }
}

#[test]
fn forbidden_path_answers_403() {
    let outcome = run(&gate(), "GET", "/auth/heroku/forbidden/", &[]);
    let reply = reply(&outcome);
    assert_eq!(reply.status, 403);
    assert_eq!(header(reply, "content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn forbidden_passthrough_forwards_without_identity() {
    let gate = gate_with(r#""forbidden_passthrough":true"#);
    let session = log_in(&gate);
    let outcome = run(&gate, "GET", "/auth/heroku/forbidden/", &[("cookie", &session), ("x-heroku-user-id", "x")]);
    let forward = forward(outcome);
    assert!(forward.set.is_empty());
    assert_eq!(forward.remove, vec!["x-heroku-user-id".to_string()]);
    assert_eq!(forward.cookie, Some(None));
}

#[test]
fn logout_clears_session() {
    let gate = gate();
    let session = log_in(&gate);
    let outcome = run(&gate, "GET", "/auth/heroku/logout/", &[("cookie", &session)]);
    assert_eq!(outcome.events, vec![Event::LoggedOut]);
    let reply = reply(&outcome);
    assert_eq!(reply.status, 302);
    assert_eq!(header(reply, "location"), Some("/"));
    assert_eq!(
        set_cookies(reply),
        vec![
            "herokuoauthsess=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
            "herokuoauthsess-logged-out=1; Max-Age=600; Path=/; HttpOnly; SameSite=Lax",
        ]
    );
}

#[test]
fn logged_out_page_shows_once() {
    let gate = gate();
    let marker = "herokuoauthsess-logged-out=1";
    let outcome = run(&gate, "GET", "/page?x=1", &[("cookie", marker)]);
    assert!(outcome.events.is_empty());
    let page = reply(&outcome);
    assert_eq!(page.status, 401);
    let body = String::from_utf8_lossy(&page.body);
    assert!(body.contains("<h1>Logged out</h1>"), "{body}");
    assert!(body.contains("href=\"/page?x=1\""), "{body}");
    assert_eq!(set_cookies(page), vec!["herokuoauthsess-logged-out=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]);

    let api = run(&gate, "GET", "/page", &[("cookie", marker), ("accept", "application/json")]);
    assert_eq!(reply(&api).status, 401);
    assert_eq!(header(reply(&api), "content-type"), Some("application/json"));

    let session = log_in(&gate);
    let both = format!("{marker}; {session}; app=1");
    let forward = forward(run(&gate, "GET", "/", &[("cookie", &both)]));
    assert_eq!(forward.cookie, Some(Some(Rc::from(&b"app=1"[..]))), "the marker is not sent upstream");
}

#[test]
fn operator_pages_replace_builtin() {
    let gate = gate_with(r#""pages":{"access_denied":"<p>Ask #ops. <a href='{{action_url}}'>Retry</a></p>"}"#);
    let outcome = run(&gate, "GET", "/auth/heroku/callback/?error=access_denied", &[]);
    assert_eq!(reply(&outcome).status, 403);
    assert_eq!(String::from_utf8_lossy(&reply(&outcome).body), "<p>Ask #ops. <a href='/'>Retry</a></p>");
}

#[test]
fn https_cookies_are_secure() {
    let gate = gate();
    let mut request = headers("GET", "/", &[]);
    request[2].1 = b"https".to_vec();
    let outcome = gate.on_request(&Request { headers: &request }, NOW, &mut CountingRandom::fresh());
    assert!(set_cookies(reply(&outcome))[0].ends_with("; Secure"));
}

#[test]
fn expired_token_without_refresh_means_login() {
    let gate = gate_with(r#""refresh":false"#);
    let session = log_in(&gate);
    assert_eq!(session_reply_max_age(&gate), 28799, "the cookie lives as long as the token");
    let headers = headers("GET", "/", &[("cookie", &session)]);
    let last_valid = gate.on_request(&Request { headers: &headers }, NOW + 28798, &mut CountingRandom::fresh());
    assert!(matches!(last_valid.step, Step::Forward(_)), "no refresh when refresh is off");
    let outcome = gate.on_request(&Request { headers: &headers }, NOW + 28799, &mut CountingRandom::fresh());
    assert_eq!(reply(&outcome).status, 302);
    assert_eq!(
        outcome.events,
        vec![
            Event::SessionInvalid { reason: "access token expired and there is no refresh token to renew it".into() },
            Event::LoginStarted
        ]
    );
}

/// Logs in and returns the `Max-Age` of the session cookie the login set.
fn session_reply_max_age(gate: &Gate) -> u64 {
    let started = start_login(gate, "/");
    let outcome = finish_login(gate, &started, json_response(200, TOKEN_BODY), json_response(200, ACCOUNT_BODY));
    let cookie = set_cookies(reply(&outcome))[0].to_string();
    let max_age = cookie.split("; ").find_map(|part| part.strip_prefix("Max-Age=")).unwrap();
    max_age.parse().unwrap()
}

#[test]
fn tampered_or_foreign_sessions_mean_login() {
    let gate = gate();
    let session = log_in(&gate);
    let mut tampered = session.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = log_in(&Gate::new({
        let json = r#"{"client_id":"c","client_secret":"s","secret_key":"another-key-another-key-another-key"}"#;
        config::parse(json.as_bytes(), &|_| None).unwrap()
    }));
    for cookie in [tampered.as_str(), foreign.as_str(), "herokuoauthsess=garbage", "herokuoauthsess=v0.abc"] {
        let outcome = run(&gate, "GET", "/", &[("cookie", cookie)]);
        assert_eq!(reply(&outcome).status, 302, "{cookie}");
        assert!(matches!(outcome.events[0], Event::SessionInvalid { .. }), "{cookie}");
    }
}

#[test]
fn valid_session_found_among_duplicates() {
    let gate = gate();
    let session = log_in(&gate);
    let cookie = format!("herokuoauthsess=stale; {session}");
    assert!(matches!(run(&gate, "GET", "/", &[("cookie", &cookie)]).step, Step::Forward(_)));
}

#[test]
fn access_denied_callback_gets_403_without_callout() {
    let outcome = run(&gate(), "GET", "/auth/heroku/callback/?error=access_denied", &[]);
    let reply = reply(&outcome);
    assert_eq!(reply.status, 403);
    assert!(String::from_utf8_lossy(&reply.body).contains("Access denied"));
    assert!(matches!(&outcome.events[0], Event::LoginFailed { reason } if reason.contains("access_denied")));
}

#[test]
fn callback_state_problems_get_403() {
    let gate = gate();
    let first = start_login(&gate, "/");
    let second = start_login(&gate, "/");
    let foreign_state = start_login(&gate_with(r#""cookie":"other""#), "/");
    let cases = [
        format!("/auth/heroku/callback/?code=c&state={}", first.state),
        format!("/auth/heroku/callback/?code=c&state={}", second.state),
        "/auth/heroku/callback/?code=c".to_string(),
        "/auth/heroku/callback/?code=c&state=short".to_string(),
        format!("/auth/heroku/callback/?code=c&state={}", foreign_state.state),
    ];
    // Only the first tab's cookie is present, so every case but a matching one fails.
    for path in &cases[1..] {
        let outcome = run(&gate, "GET", path, &[("cookie", &first.cookie)]);
        assert_eq!(reply(&outcome).status, 403, "{path}");
        assert!(matches!(outcome.events[0], Event::LoginFailed { .. }));
    }
    let outcome = run(&gate, "GET", &cases[0], &[("cookie", &first.cookie)]);
    assert!(matches!(outcome.step, Step::Callout(..)));
}

#[test]
fn stale_login_state_gets_403() {
    let gate = gate();
    let started = start_login(&gate, "/");
    let path = format!("/auth/heroku/callback/?code=c&state={}", started.state);
    let headers = headers("GET", &path, &[("cookie", &started.cookie)]);
    let late = NOW + LOGIN_STATE_TTL_S;
    let outcome = gate.on_request(&Request { headers: &headers }, late, &mut CountingRandom::fresh());
    assert_eq!(reply(&outcome).status, 403);
    assert_eq!(outcome.events, vec![Event::LoginFailed { reason: "login state expired".into() }]);
}

#[test]
fn replayed_callback_gets_403() {
    let gate = gate();
    let started = start_login(&gate, "/deep");
    let path = format!("/auth/heroku/callback/?code=c&state={}", started.state);
    let Step::Callout(_, pending) = run(&gate, "GET", &path, &[("cookie", &started.cookie)]).step else {
        panic!("no token callout")
    };
    assert_eq!(pending.login_state_digest(), Some(&crate::used_states::digest(&started.state)));
    let outcome = gate.on_callback_replayed(pending);
    let reply = reply(&outcome);
    assert_eq!(reply.status, 403);
    assert!(set_cookies(reply)[0].contains("Max-Age=0"), "the state cookie is cleared");
    assert_eq!(outcome.events, vec![Event::LoginFailed { reason: "callback state was already used".into() }]);
}

#[test]
fn callback_without_code_gets_403() {
    let gate = gate();
    let started = start_login(&gate, "/");
    let path = format!("/auth/heroku/callback/?state={}", started.state);
    assert_eq!(reply(&run(&gate, "GET", &path, &[("cookie", &started.cookie)])).status, 403);
}

#[test]
fn rejected_code_gets_403_and_outage_gets_502() {
    let gate = gate();
    let unauthorized = r#"{"id":"unauthorized","message":"OAuth authorization invalid."}"#;
    let cases = [
        (json_response(401, unauthorized), json_response(200, ACCOUNT_BODY), 403),
        (json_response(500, "oops"), json_response(200, ACCOUNT_BODY), 502),
        (json_response(429, r#"{"id":"rate_limit"}"#), json_response(200, ACCOUNT_BODY), 502),
        (CalloutResponse::default(), json_response(200, ACCOUNT_BODY), 502),
        (json_response(200, "{\"access_token\":"), json_response(200, ACCOUNT_BODY), 502),
        (json_response(200, TOKEN_BODY), json_response(401, "{}"), 502),
        (json_response(200, TOKEN_BODY), json_response(503, "upstream connect error"), 502),
        (json_response(200, TOKEN_BODY), json_response(200, r#"{"id":"user-1"}"#), 502),
        (json_response(200, TOKEN_BODY), json_response(200, r#"{"email":"a@b.com","id":"user-2"}"#), 502),
    ];
    for (token, account, status) in cases {
        let started = start_login(&gate, "/");
        let outcome = finish_login(&gate, &started, token, account);
        let reply = reply(&outcome);
        assert_eq!(reply.status, status);
        let cookies = set_cookies(reply);
        assert_eq!(cookies.len(), 1, "only the state cookie is cleared");
        assert!(cookies[0].contains("-state-"), "{}", cookies[0]);
        assert!(cookies[0].contains("Max-Age=0"), "{}", cookies[0]);
    }
}

#[test]
fn callout_not_sent_gets_502() {
    let gate = gate();
    let started = start_login(&gate, "/");
    let path = format!("/auth/heroku/callback/?code=c&state={}", started.state);
    let Step::Callout(_, pending) = run(&gate, "GET", &path, &[("cookie", &started.cookie)]).step else {
        panic!("no callout")
    };
    let outcome = gate.on_callout_not_sent(pending, "BadArgument for cluster heroku_id", &blank(), NOW);
    assert_eq!(reply(&outcome).status, 502);
    assert!(matches!(&outcome.events[0], Event::CalloutFailed { endpoint: "token", .. }));
}

#[test]
fn user_outside_allow_rule_is_forbidden() {
    let gate = gate_with(r#""allow":{"email_domains":["heroku.com"]}"#);
    let started = start_login(&gate, "/");
    let outcome = finish_login(&gate, &started, json_response(200, TOKEN_BODY), json_response(200, ACCOUNT_BODY));
    assert_eq!(outcome.events, vec![Event::LoginForbidden { email: "ada@example.com".into() }]);
    let reply = reply(&outcome);
    assert_eq!(header(reply, "location"), Some("/auth/heroku/forbidden/"));
    let cookies = set_cookies(reply);
    assert_eq!(cookies.len(), 1);
    assert!(!cookies[0].starts_with("herokuoauthsess="), "no session for a forbidden user");
}

#[test]
fn unsafe_return_paths_become_root() {
    for (path, expected) in [
        ("/ok?q=1", "/ok?q=1"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("/a b", "/"),
        ("/caf\u{e9}", "/"),
        ("/a\\b", "/"),
        ("relative", "/"),
        ("", "/"),
    ] {
        assert_eq!(safe_return_path(path.as_bytes()), expected, "{path:?}");
    }
    let long = format!("/{}", "a".repeat(MAX_RETURN_PATH_BYTES));
    assert_eq!(safe_return_path(long.as_bytes()), "/");
    let fits = format!("/{}", "a".repeat(MAX_RETURN_PATH_BYTES - 1));
    assert_eq!(safe_return_path(fits.as_bytes()), fits);
}

#[test]
fn names_are_percent_encoded() {
    assert_eq!(encode_header_text("Ada Lovelace"), "Ada Lovelace");
    assert_eq!(encode_header_text("José 100%"), "Jos%C3%A9 100%25");
    assert_eq!(encode_header_text("a\r\nb"), "a%0D%0Ab");
}

#[test]
fn missing_randomness_gets_error_page() {
    let headers = headers("GET", "/", &[]);
    let outcome = gate().on_request(&Request { headers: &headers }, NOW, &mut NoRandom);
    assert_eq!(reply(&outcome).status, 502);
    assert!(set_cookies(reply(&outcome)).is_empty());
}

#[test]
fn opened_cookie_debug_hides_token() {
    let gate = gate_with(r#""expose_token":true"#);
    let session = log_in(&gate);
    let value = session.split_once('=').unwrap().1;
    let opened = gate.open_session(value.as_bytes(), NOW).unwrap();
    let printed = format!("{opened:?} {gate:?}");
    assert!(!printed.contains("HRKU"), "{printed}");
    assert!(printed.contains("x-heroku-oauth-token"), "{printed}");
}

#[test]
fn forward_debug_hides_values() {
    let gate = gate_with(r#""expose_token":true"#);
    let session = log_in(&gate);
    let forward = forward(run(&gate, "GET", "/", &[("cookie", &session)]));
    let printed = format!("{forward:?}");
    assert!(!printed.contains("HRKU"), "{printed}");
}

// Token refresh, session lifetime, key rotation and team rules. The access token from
// TOKEN_BODY expires at NOW + 28799; the default refresh margin is 600 s.

const TOKEN_EXPIRY: u64 = NOW + 28799;
const REFRESHED_BODY: &str = r#"{"access_token":"HRKU-access-2","expires_in":28800,"refresh_token":"HRKU-refresh",
    "token_type":"Bearer","user_id":"user-1","session_nonce":null}"#;

fn at(gate: &Gate, cookie: &str, extra: &[(&str, &str)], now: u64) -> Outcome {
    let mut all = vec![("cookie", cookie)];
    all.extend_from_slice(extra);
    let headers = headers("GET", "/page", &all);
    gate.on_request(&Request { headers: &headers }, now, &mut CountingRandom::fresh())
}

/// Drives a refresh that `outcome` started through the token and account callouts.
fn complete_refresh(gate: &Gate, outcome: Outcome, token: CalloutResponse, account: CalloutResponse, now: u64) -> Outcome {
    let Step::Callout(callout, pending) = outcome.step else { panic!("no refresh callout: {:?}", outcome.step) };
    let body = String::from_utf8(callout.body.unwrap()).unwrap();
    assert_eq!(body, "grant_type=refresh_token&refresh_token=HRKU-refresh&client_secret=the-secret");
    let headers = headers("GET", "/page", &[]);
    let request = Request { headers: &headers };
    let outcome = gate.on_callout_response(pending, &token, &request, now, &mut CountingRandom::fresh());
    let Step::Callout(_, pending) = outcome.step else { return outcome };
    gate.on_callout_response(pending, &account, &request, now, &mut CountingRandom::fresh())
}

#[test]
fn refresh_starts_at_margin_edge() {
    let gate = gate();
    let session = log_in(&gate);
    let before = at(&gate, &session, &[], TOKEN_EXPIRY - 601);
    assert!(matches!(before.step, Step::Forward(_)), "outside the margin: {:?}", before.step);
    let inside = at(&gate, &session, &[], TOKEN_EXPIRY - 600);
    assert!(matches!(inside.step, Step::Callout(..)), "inside the margin: {:?}", inside.step);
}

#[test]
fn refresh_keeps_login_time_and_sets_cookie() {
    let gate = gate();
    let session = log_in(&gate);
    let now = TOKEN_EXPIRY - 10;
    let started = at(&gate, &session, &[], now);
    let outcome = complete_refresh(&gate, started, json_response(200, REFRESHED_BODY), json_response(200, ACCOUNT_BODY), now);
    assert_eq!(outcome.events, vec![Event::RefreshSucceeded { email: "ada@example.com".into() }]);
    let forward = forward(outcome);
    assert!(forward.set.contains(&("x-heroku-user-email".into(), "ada@example.com".into())));
    assert_eq!(forward.response_cookies.len(), 1);
    let cookie = &forward.response_cookies[0];
    let remaining = 604_800 - (now - NOW);
    assert!(cookie.ends_with(&format!("; Max-Age={remaining}; Path=/; HttpOnly; SameSite=Lax")), "{cookie}");

    let renewed = cookie_pair(cookie).to_string();
    let later = at(&gate, &renewed, &[], TOKEN_EXPIRY + 3600);
    assert!(matches!(later.step, Step::Forward(_)), "the renewed session outlives the old token");
}

#[test]
fn parallel_requests_share_one_refresh() {
    let gate = gate();
    let session = log_in(&gate);
    let now = TOKEN_EXPIRY - 10;
    let first = at(&gate, &session, &[], now);
    assert!(matches!(first.step, Step::Callout(..)));

    let second = at(&gate, &session, &[], now);
    let waiting = forward(second);
    assert!(waiting.response_cookies.is_empty(), "goes on with the still valid token");

    complete_refresh(&gate, first, json_response(200, REFRESHED_BODY), json_response(200, ACCOUNT_BODY), now);
    let third = forward(at(&gate, &session, &[], now + 1));
    assert_eq!(third.response_cookies.len(), 1, "a late request with the old cookie gets the new one");
}

#[test]
fn expired_token_waits_for_own_refresh() {
    let gate = gate();
    let session = log_in(&gate);
    let first = at(&gate, &session, &[], TOKEN_EXPIRY + 5);
    assert!(matches!(first.step, Step::Callout(..)));
    let second = at(&gate, &session, &[], TOKEN_EXPIRY + 5);
    assert!(matches!(second.step, Step::Callout(..)), "an expired token cannot go on while the first refresh runs");
}

#[test]
fn revoked_refresh_ends_session() {
    let gate = gate();
    let session = log_in(&gate);
    let rejected = r#"{"id":"unauthorized","message":"OAuth authorization invalid."}"#;
    for (extra, status) in [(&[][..], 302), (&[("accept", "application/json")][..], 401)] {
        let started = at(&gate, &session, extra, TOKEN_EXPIRY - 10);
        let headers = headers("GET", "/page", extra);
        let Step::Callout(_, pending) = started.step else { panic!("no refresh") };
        let outcome = gate.on_callout_response(
            pending,
            &json_response(401, rejected),
            &Request { headers: &headers },
            TOKEN_EXPIRY - 10,
            &mut CountingRandom::fresh(),
        );
        assert!(matches!(&outcome.events[0], Event::RefreshRejected { email, .. } if email == "ada@example.com"));
        let reply = reply(&outcome);
        assert_eq!(reply.status, status);
        let cookies = set_cookies(reply);
        assert!(cookies.contains(&"herokuoauthsess=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"), "{cookies:?}");
    }
}

#[test]
fn outage_inside_margin_keeps_old_session() {
    let gate = gate();
    let session = log_in(&gate);
    let started = at(&gate, &session, &[], TOKEN_EXPIRY - 10);
    let outcome = complete_refresh(&gate, started, json_response(503, "down"), json_response(200, ACCOUNT_BODY), TOKEN_EXPIRY - 10);
    assert!(matches!(&outcome.events[0], Event::CalloutFailed { endpoint: "token", during_login: false, .. }));
    let forward = forward(outcome);
    assert!(forward.set.contains(&("x-heroku-user-email".into(), "ada@example.com".into())));
    assert!(forward.response_cookies.is_empty());

    let retry = at(&gate, &session, &[], TOKEN_EXPIRY - 9);
    assert!(matches!(retry.step, Step::Callout(..)), "a later request tries again");
}

#[test]
fn outage_after_expiry_gets_502() {
    let gate = gate();
    let session = log_in(&gate);
    for (extra, content_type) in [(&[][..], "text/html; charset=utf-8"), (&[("accept", "application/json")][..], "application/json")] {
        let started = at(&gate, &session, extra, TOKEN_EXPIRY + 1);
        let outcome = complete_refresh(&gate, started, CalloutResponse::default(), json_response(200, ACCOUNT_BODY), TOKEN_EXPIRY + 1);
        let reply = reply(&outcome);
        assert_eq!(reply.status, 502);
        assert_eq!(header(reply, "content-type"), Some(content_type));
    }
}

#[test]
fn user_no_longer_allowed_after_refresh() {
    let gate = gate_with(r#""allow":{"email_domains":["example.com"]}"#);
    let session = log_in(&gate);
    let moved = r#"{"email":"ada@elsewhere.org","id":"user-1","name":"Ada Lovelace"}"#;
    let started = at(&gate, &session, &[], TOKEN_EXPIRY - 10);
    let outcome = complete_refresh(&gate, started, json_response(200, REFRESHED_BODY), json_response(200, moved), TOKEN_EXPIRY - 10);
    assert_eq!(outcome.events, vec![Event::LoginForbidden { email: "ada@elsewhere.org".into() }]);
    let reply = reply(&outcome);
    assert_eq!(header(reply, "location"), Some("/auth/heroku/forbidden/"));
    assert_eq!(set_cookies(reply), vec!["herokuoauthsess=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]);
}

#[test]
fn session_ends_at_max_age() {
    let gate = gate_with(r#""session_max_age_s":3600"#);
    let session = log_in(&gate);
    assert_eq!(session_reply_max_age(&gate), 3600);
    assert!(matches!(at(&gate, &session, &[], NOW + 3599).step, Step::Forward(_)));
    let outcome = at(&gate, &session, &[], NOW + 3600);
    assert_eq!(reply(&outcome).status, 302);
    assert_eq!(outcome.events[0], Event::SessionInvalid { reason: "session reached its maximum age".into() });
}

#[test]
fn cached_session_keeps_time_checks() {
    // The first request caches the opened session; later requests with the same cookie must
    // still see the refresh margin and the maximum age.
    let gate = gate_with(r#""session_max_age_s":30000"#);
    let session = log_in(&gate);
    assert!(matches!(at(&gate, &session, &[], NOW + 1).step, Step::Forward(_)));
    assert!(matches!(at(&gate, &session, &[], TOKEN_EXPIRY - 600).step, Step::Callout(..)), "refresh due");
    let outcome = at(&gate, &session, &[], NOW + 30000);
    assert_eq!(reply(&outcome).status, 302);
    assert_eq!(outcome.events[0], Event::SessionInvalid { reason: "session reached its maximum age".into() });
}

#[test]
fn missing_expires_in_uses_default() {
    let gate = gate_with(r#""default_expires_in_s":7200,"refresh":false"#);
    let started = start_login(&gate, "/");
    let outcome = finish_login(&gate, &started, json_response(200, r#"{"access_token":"HRKU-x"}"#), json_response(200, ACCOUNT_BODY));
    let cookie = set_cookies(reply(&outcome))[0].to_string();
    assert!(cookie.contains("; Max-Age=7200;"), "{cookie}");
}

#[test]
fn rotated_key_accepts_and_reseals() {
    let old_key = "0123456789abcdef0123456789abcdef";
    let session = log_in(&gate());
    let rotated = Gate::new(config::parse(
        format!(r#"{{"client_id":"c","client_secret":"s","secret_key":"a-brand-new-key-for-this-fleet-0001","previous_secret_keys":["{old_key}"]}}"#).as_bytes(),
        &|_| None,
    ).unwrap());
    let accepted = forward(at(&rotated, &session, &[], NOW + 10));
    assert!(accepted.set.contains(&("x-heroku-user-email".into(), "ada@example.com".into())));
    assert_eq!(accepted.response_cookies.len(), 1, "the old cookie is sealed again");
    let again = forward(at(&rotated, &session, &[], NOW + 11));
    assert_eq!(again.response_cookies.len(), 1, "a cached old cookie is sealed again too");
    let resealed = cookie_pair(&accepted.response_cookies[0]).to_string();
    assert!(forward(at(&rotated, &resealed, &[], NOW + 11)).response_cookies.is_empty(), "the new cookie needs nothing");

    let forgotten = Gate::new(config::parse(
        br#"{"client_id":"c","client_secret":"s","secret_key":"a-brand-new-key-for-this-fleet-0001"}"#,
        &|_| None,
    ).unwrap());
    let outcome = at(&forgotten, &session, &[], NOW + 10);
    assert_eq!(reply(&outcome).status, 302, "a key that is not configured means not logged in");
}

/// Runs a login whose email the rule does not admit, up to the first teams callout.
fn login_to_teams(gate: &Gate) -> (Callout, Pending) {
    let started = start_login(gate, "/");
    let outcome = finish_login(gate, &started, json_response(200, TOKEN_BODY), json_response(200, ACCOUNT_BODY));
    match outcome.step {
        Step::Callout(callout, pending) => (callout, pending),
        other => panic!("expected the teams callout, got {other:?}"),
    }
}

fn teams_response(status: u16, body: &str, next_range: Option<&str>) -> CalloutResponse {
    let mut response = json_response(status, body);
    response.next_range = next_range.map(str::to_string);
    response
}

#[test]
fn team_member_is_admitted() {
    let gate = gate_with(r#""allow":{"teams":["platform"]}"#);
    let (callout, pending) = login_to_teams(&gate);
    assert!(callout.headers.contains(&(":path".into(), "/teams".into())));
    assert!(callout.headers.contains(&("range".into(), "id ..; max=200".into())));
    let body = r#"[{"id":"t-1","name":"design"},{"id":"t-2","name":"Platform"}]"#;
    let outcome = gate.on_callout_response(pending, &teams_response(200, body, None), &blank(), NOW, &mut CountingRandom::fresh());
    assert_eq!(outcome.events, vec![Event::LoginSucceeded { email: "ada@example.com".into() }]);
}

#[test]
fn teams_follow_next_range() {
    let gate = gate_with(r#""allow":{"teams":["t-9"]}"#);
    let (_, pending) = login_to_teams(&gate);
    let first = teams_response(206, r#"[{"id":"t-1","name":"design"}]"#, Some("id ]t-1..; max=1000"));
    let outcome = gate.on_callout_response(pending, &first, &blank(), NOW, &mut CountingRandom::fresh());
    let Step::Callout(callout, pending) = outcome.step else { panic!("no second page") };
    assert!(callout.headers.contains(&("range".into(), "id ]t-1..; max=1000".into())));
    let second = teams_response(200, r#"[{"id":"t-9","name":"ops"}]"#, None);
    let outcome = gate.on_callout_response(pending, &second, &blank(), NOW, &mut CountingRandom::fresh());
    assert_eq!(outcome.events, vec![Event::LoginSucceeded { email: "ada@example.com".into() }]);
}

#[test]
fn non_member_is_forbidden() {
    let gate = gate_with(r#""allow":{"teams":["platform"]}"#);
    let (_, pending) = login_to_teams(&gate);
    let outcome = gate.on_callout_response(pending, &teams_response(200, "[]", None), &blank(), NOW, &mut CountingRandom::fresh());
    assert_eq!(outcome.events, vec![Event::LoginForbidden { email: "ada@example.com".into() }]);
    assert_eq!(header(reply(&outcome), "location"), Some("/auth/heroku/forbidden/"));
}

#[test]
fn teams_scope_403_is_forbidden() {
    let gate = gate_with(r#""allow":{"teams":["platform"]}"#);
    let (_, pending) = login_to_teams(&gate);
    let refused = r#"{"id":"forbidden","message":"The scope of this OAuth authorization does not allow access to this resource."}"#;
    let outcome = gate.on_callout_response(pending, &teams_response(403, refused, None), &blank(), NOW, &mut CountingRandom::fresh());
    assert_eq!(
        outcome.events,
        vec![
            Event::LoginForbidden { email: "ada@example.com".into() },
            Event::TeamsScopeMissing { scope: "identity".into() }
        ]
    );
}

#[test]
fn email_rule_admits_without_teams_call() {
    let gate = gate_with(r#""allow":{"teams":["platform"],"emails":["ada@example.com"]}"#);
    let started = start_login(&gate, "/");
    let outcome = finish_login(&gate, &started, json_response(200, TOKEN_BODY), json_response(200, ACCOUNT_BODY));
    assert_eq!(outcome.events, vec![Event::LoginSucceeded { email: "ada@example.com".into() }]);
}

#[test]
fn odd_state_cookie_names_are_not_echoed() {
    // Clearing stale login states echoes cookie names the client sent, so only names of
    // the form the filter issues may come back in a `Set-Cookie`.
    let cookie = "herokuoauthsess-state-\u{0}x=1; herokuoauthsess-state-a b=1; herokuoauthsess-state-\u{1}=1; \
                  herokuoauthsess-state-AAAAAAAA=1; herokuoauthsess-state-BBBBBBBB=1; \
                  herokuoauthsess-state-CCCCCCCC=1; herokuoauthsess-state-DDDDDDDD=1; herokuoauthsess-state-EEEEEEEE=1";
    let outcome = run(&gate(), "GET", "/page", &[("accept", "text/html"), ("cookie", cookie)]);
    let cookies = set_cookies(reply(&outcome));
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies[0].starts_with("herokuoauthsess-state-AAAAAAAA=;"), "{cookies:?}");
    for set_cookie in cookies {
        let name = cookie_pair(set_cookie).split('=').next().unwrap();
        assert!(name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'), "{name:?}");
    }
}

#[test]
fn repeated_cookie_header_gives_same_edits() {
    let gate = gate();
    let session = log_in(&gate);
    let cookie = format!("app=1; {session}; other=2");
    let first = forward(at(&gate, &cookie, &[], NOW));
    let again = forward(at(&gate, &cookie, &[("x_heroku_user_email", "mallory@example.com")], NOW + 1));
    assert_eq!(again.set, first.set);
    assert_eq!(again.cookie, Some(Some(Rc::from(&b"app=1; other=2"[..]))));
    assert_eq!(again.remove, vec!["x_heroku_user_email".to_string()], "a spoofed header is still removed");
}

#[test]
fn repeated_cookie_header_checks_session_age() {
    let gate = gate();
    let session = log_in(&gate);
    assert!(matches!(at(&gate, &session, &[], NOW).step, Step::Forward(_)));
    let late = at(&gate, &session, &[], NOW + gate.config().session_max_age_s);
    assert!(matches!(late.step, Step::Reply(_)), "an aged session is not let through: {:?}", late.step);
    assert!(late.events.iter().any(|event| matches!(event, Event::SessionInvalid { .. })), "{:?}", late.events);
}

#[test]
fn repeated_cookie_header_still_logs_out() {
    let gate = gate();
    let session = log_in(&gate);
    forward(at(&gate, &session, &[], NOW));
    let logout = gate.config().logout_path.clone();
    let outcome = run(&gate, "GET", &logout, &[("cookie", &session)]);
    assert_eq!(outcome.events, vec![Event::LoggedOut]);
}
