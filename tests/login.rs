//! End-to-end login gate tests: a real Envoy 1.40 runs the built filter in front of the
//! demo app, with the Heroku stand-in behind the callout clusters.

mod common;

use std::time::Duration;

use common::*;
use heroku_bouncer::seal::SEAL_RANDOM_BYTES;
use heroku_bouncer::seal::Sealer;
use heroku_bouncer::secret::Secret;
use heroku_bouncer::session::Session;
use serde_json::json;

const ADA_ID: &str = "ada@example.com";

fn identity_headers(request: &heroku_standin::RecordedRequest) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .filter(|(name, _)| {
            let spelled = name.to_ascii_lowercase().replace('_', "-");
            spelled.starts_with("x-heroku-")
        })
        .cloned()
        .collect()
}

#[test]
fn login_returns_to_deep_link_with_identity() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();

    let first = browser.get(&stack.url("/deep/link?x=1&y=two"));
    assert_eq!(first.status, 302);
    let location = first.header("location").unwrap();
    assert!(location.starts_with(&format!("{}/oauth/authorize?", stack.standin.base_url())), "{location}");

    let landed = stack.log_in(&mut browser, "/deep/link?x=1&y=two");
    assert_eq!(landed.status, 200, "{}", landed.body);
    assert_eq!(landed.url, stack.url("/deep/link?x=1&y=two"));
    assert!(landed.body.contains(ADA_ID), "the demo page shows the email: {}", landed.body);

    let seen = stack.app.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/deep/link?x=1&y=two");
    assert_eq!(last.header("x-heroku-user-email"), Some(ADA_ID));
    assert_eq!(last.header("x-heroku-user-id"), Some(heroku_standin::User::id_for_email(ADA_ID).as_str()));
    assert_eq!(last.header("x-heroku-user-name"), Some("Ada Lovelace"));
    assert_eq!(last.header("x-heroku-oauth-token"), None, "the token is not exposed by default");
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);
    assert_eq!(stack.standin.calls(Endpoint::Account), 1);
}

#[test]
fn session_cookie_is_sealed_and_scoped() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    let authorize = browser.get(&stack.url("/")).header("location").unwrap().to_string();
    let callback = browser.get(&authorize);
    assert!(callback.status == 302 || callback.status == 303);
    let done = browser.get(callback.header("location").unwrap());
    assert_eq!(done.status, 302);
    assert_eq!(done.header("location"), Some("/"));

    let session = done.all("set-cookie").into_iter().find(|cookie| cookie.starts_with("herokuoauthsess=")).unwrap();
    for attribute in ["HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=604800"] {
        assert!(session.contains(attribute), "{attribute} missing in {session}");
    }
    assert!(!session.contains("Secure"), "plain http must not set Secure: {session}");
    assert!(session.len() < 4096);
    let token = stack.standin.requests(Endpoint::Account)[0].header("authorization").unwrap().to_string();
    let token = token.trim_start_matches("Bearer ");
    assert!(!session.contains(token), "the access token must not be readable in the cookie");
    assert!(!session.contains(ADA_ID), "the email must not be readable in the cookie");
}

#[test]
fn https_requests_get_secure_cookies() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    // With its default settings Envoy takes `:scheme` from `x-forwarded-proto`, as it does
    // behind a TLS-terminating load balancer.
    let response = browser.request("GET", &stack.url("/"), &[("x-forwarded-proto", "https")]);
    assert_eq!(response.status, 302);
    let state_cookie = response.all("set-cookie")[0].to_string();
    assert!(state_cookie.ends_with("; Secure"), "{state_cookie}");
    let plain = browser.get(&stack.url("/"));
    assert!(!plain.all("set-cookie")[0].contains("Secure"));
}

#[test]
fn logged_in_requests_need_no_callout() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    for _ in 0..5 {
        assert_eq!(browser.get(&stack.url("/again")).status, 200);
    }
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);
    assert_eq!(stack.standin.calls(Endpoint::Account), 1);
}

#[test]
fn client_identity_headers_never_reach_app() {
    let stack = Stack::start(Setup::with_plugin(json!({"expose_token": false, "skip_paths": ["/public/*"]})));
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    let spoofed = [
        ("X-Heroku-User-Email", "mallory@evil.example"),
        ("x_heroku_user_email", "mallory@evil.example"),
        ("X-HEROKU-USER-ID", "mallory"),
        ("x-heroku-user_name", "Mallory"),
        ("X-Heroku-OAuth-Token", "stolen"),
    ];

    let response = browser.request("GET", &stack.url("/private"), &spoofed);
    assert_eq!(response.status, 200);
    let seen = stack.app.requests().last().cloned().unwrap();
    let identity = identity_headers(&seen);
    assert_eq!(
        identity,
        vec![
            ("x-heroku-user-email".to_string(), ADA_ID.to_string()),
            ("x-heroku-user-id".to_string(), heroku_standin::User::id_for_email(ADA_ID)),
            ("x-heroku-user-name".to_string(), "Ada Lovelace".to_string()),
        ],
        "only the filter's identity headers arrive"
    );

    let mut stranger = Browser::default();
    let response = stranger.request("GET", &stack.url("/public/logo.png"), &spoofed);
    assert_eq!(response.status, 200);
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(identity_headers(&seen), vec![], "a skipped path carries no identity");
}

#[test]
fn filter_cookies_are_not_forwarded() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    browser.set_cookie(&stack.url("/"), "app_pref", "dark");
    browser.get(&stack.url("/page"));
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(seen.header("cookie"), Some("app_pref=dark"));

    let mut only_session = Browser::default();
    stack.log_in(&mut only_session, "/");
    only_session.get(&stack.url("/page"));
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(seen.header("cookie"), None, "an emptied cookie header is removed");
}

#[test]
fn bad_session_cookies_mean_login() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    let good = browser.cookie(&stack.url("/"), "herokuoauthsess").unwrap();

    let mut flipped = good.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let truncated = good[..good.len() - 10].to_string();
    let foreign = foreign_session_cookie();
    let old_version = good.replacen("v1.", "v0.", 1);

    for (label, value) in [
        ("flipped", flipped.as_str()),
        ("truncated", truncated.as_str()),
        ("foreign key", foreign.as_str()),
        ("old version", old_version.as_str()),
        ("garbage", "%%%not-a-cookie"),
    ] {
        let mut visitor = Browser::default();
        visitor.set_cookie(&stack.url("/"), "herokuoauthsess", value);
        let response = visitor.get(&stack.url("/page"));
        assert_eq!(response.status, 302, "{label}: {}", response.body);
        assert!(response.header("location").unwrap().contains("/oauth/authorize?"), "{label}");
    }
    eventually("session_invalid counter", || stack.envoy.counter("heroku_bouncer.session_invalid") >= 5);
    assert_eq!(browser.get(&stack.url("/page")).status, 200, "the real session still works");
}

/// Seals a well-formed session with a key the stack does not use.
fn foreign_session_cookie() -> String {
    let sealer = Sealer::new(&Secret::new("some-other-deployment-key-0123456789"));
    let session = Session {
        email: ADA_ID.into(),
        user_id: "x".into(),
        name: None,
        access_token: Secret::new("HRKU-x"),
        refresh_token: None,
        expires_at: u64::MAX / 2,
        issued_at: 0,
    };
    session.seal(&sealer, "herokuoauthsess", &[1; SEAL_RANDOM_BYTES]).unwrap()
}

#[test]
fn expired_token_without_refresh_means_login() {
    let mut setup = Setup::with_plugin(json!({"refresh": false}));
    setup.standin.access_token_lifetime_s = 2;
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200);
    std::thread::sleep(Duration::from_millis(3100));
    let response = browser.get(&stack.url("/page"));
    assert_eq!(response.status, 302);
    assert!(response.header("location").unwrap().contains("/oauth/authorize?"));
}

#[test]
fn non_utf8_cookie_bytes_are_not_a_session() {
    let stack = Stack::start(Setup::default());
    let request = b"GET /page HTTP/1.1\r\nHost: app\r\nAccept: text/html\r\nCookie: a=\xff\xfe; herokuoauthsess=\xc3\x28v1.\xff\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_request(stack.envoy.listener(), request), 302);
    let api = b"GET /page HTTP/1.1\r\nHost: app\r\nAccept: application/json\r\nCookie: \xff\xff\xff\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_request(stack.envoy.listener(), api), 401);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200, "the filter keeps working");
}

#[test]
fn callback_with_foreign_state_is_rejected() {
    let stack = Stack::start(Setup::default());
    let mut victim = Browser::default();
    let mut attacker = Browser::default();

    let authorize = attacker.get(&stack.url("/")).header("location").unwrap().to_string();
    let callback = attacker.get(&authorize).header("location").unwrap().to_string();

    let response = victim.get(&callback);
    assert_eq!(response.status, 403);
    assert!(response.body.contains("Login could not be verified"), "{}", response.body);
    assert!(response.body.contains("href=\"/\""), "the page links to a fresh start");
    assert_eq!(stack.standin.calls(Endpoint::Token), 0, "no code exchange for a foreign state");
    assert_eq!(victim.cookie(&stack.url("/"), "herokuoauthsess"), None);

    let replay = attacker.get(&callback);
    assert_eq!(replay.status, 302, "the rightful browser completes its login");
    let again = attacker.get(&callback);
    assert_eq!(again.status, 403, "a replayed callback is rejected without calling Heroku");
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);
}

#[test]
fn deny_on_heroku_gets_access_denied_page() {
    let mut setup = Setup::default();
    setup.standin.approval = Approval::Deny;
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    let response = stack.log_in(&mut browser, "/");
    assert_eq!(response.status, 403);
    assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(response.body.contains("<h1>Access denied</h1>"), "{}", response.body);
    assert!(response.body.contains("href=\"/\""));
    assert_eq!(browser.cookie(&stack.url("/"), "herokuoauthsess"), None);
    assert_eq!(stack.standin.calls(Endpoint::Token), 0);
    eventually("login_failed counter", || stack.envoy.counter("heroku_bouncer.login_failed") == 1);
}

#[test]
fn user_outside_allow_rule_is_forbidden() {
    let stack = Stack::start(Setup::with_plugin(json!({"allow": {"email_domains": ["heroku.com"]}})));
    let mut browser = Browser::default();
    let response = stack.log_in(&mut browser, "/secret");
    assert_eq!(response.status, 403);
    assert_eq!(response.url, stack.url("/auth/heroku/forbidden/"));
    assert!(response.body.contains("Access not allowed"), "{}", response.body);
    assert_eq!(browser.cookie(&stack.url("/"), "herokuoauthsess"), None, "no session for a forbidden user");
    assert!(stack.app.requests().is_empty(), "the app never saw the forbidden user");
    eventually("login_forbidden counter", || stack.envoy.counter("heroku_bouncer.login_forbidden") == 1);

    stack.standin.set_current_user("grace@heroku.com");
    let mut herokai = Browser::default();
    let response = stack.log_in(&mut herokai, "/secret");
    assert_eq!(response.status, 200);
    assert_eq!(stack.app.requests().last().unwrap().header("x-heroku-user-email"), Some("grace@heroku.com"));
}

#[test]
fn herokai_only_admits_heroku_domain() {
    let stack = Stack::start(Setup::with_plugin(json!({"herokai_only": true})));
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 403);
    stack.standin.set_current_user("grace@heroku.com");
    let mut herokai = Browser::default();
    assert_eq!(stack.log_in(&mut herokai, "/").status, 200);
}

#[test]
fn forbidden_passthrough_reaches_app_without_identity() {
    let stack = Stack::start(Setup::with_plugin(json!({
        "allow": {"emails": ["grace@heroku.com"]},
        "forbidden_passthrough": true
    })));
    let mut browser = Browser::default();
    let response = stack.log_in(&mut browser, "/");
    assert_eq!(response.status, 200, "the app renders its own forbidden page");
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(seen.path, "/auth/heroku/forbidden/");
    assert_eq!(identity_headers(&seen), vec![]);

    let spoofed = browser.request("GET", &stack.url("/auth/heroku/forbidden/"), &[("x-heroku-user-email", "grace@heroku.com")]);
    assert_eq!(spoofed.status, 200);
    assert_eq!(identity_headers(&stack.app.requests().last().cloned().unwrap()), vec![]);
}

#[test]
fn api_clients_get_401_json() {
    let stack = Stack::start(Setup::default());
    let mut client = Browser::default();
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("GET", &[("accept", "application/json")]),
        ("GET", &[("x-requested-with", "XMLHttpRequest")]),
        ("POST", &[("content-type", "application/json")]),
        ("DELETE", &[]),
    ];
    for (method, headers) in cases {
        let response = client.request(method, &stack.url("/api/items"), headers);
        assert_eq!(response.status, 401, "{method} {headers:?}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.json()["id"], "unauthorized");
        assert!(response.all("set-cookie").is_empty(), "no state cookie for API clients");
    }
    assert!(stack.app.requests().is_empty());
    eventually("unauthorized counter", || stack.envoy.counter("heroku_bouncer.unauthorized") == 4);

    stack.log_in(&mut client, "/");
    let response = client.request("POST", &stack.url("/api/items"), &[("accept", "application/json")]);
    assert_eq!(response.status, 200, "a logged-in API call reaches the app");
}

#[test]
fn logout_requires_a_new_login() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    let response = browser.get(&stack.url("/auth/heroku/logout/"));
    assert_eq!(response.status, 302);
    assert_eq!(response.header("location"), Some("/"));
    assert!(response.all("set-cookie").iter().any(|cookie| cookie.starts_with("herokuoauthsess=;") && cookie.contains("Max-Age=0")));
    assert_eq!(browser.cookie(&stack.url("/"), "herokuoauthsess"), None);

    let next = browser.get(&stack.url("/page"));
    assert_eq!(next.status, 401, "the next page says the user logged out: {}", next.body);
    assert!(next.body.contains("<h1>Logged out</h1>"), "{}", next.body);
    assert!(next.body.contains("href=\"/page\""), "{}", next.body);
    let login = browser.get(&stack.url("/page"));
    assert_eq!(login.status, 302, "the page's link starts a new login");
    assert!(login.header("location").unwrap().contains("/oauth/authorize?"));
    assert!(stack.app.requests().iter().all(|request| request.path != "/page"), "no app page without a login");
    eventually("logout counter", || stack.envoy.counter("heroku_bouncer.logout") == 1);
}

#[test]
fn skip_paths_need_no_login() {
    let stack = Stack::start(Setup::with_plugin(json!({"skip_paths": ["/healthz", "/public/*"]})));
    let mut browser = Browser::default();
    for path in ["/healthz", "/healthz?verbose=1", "/public/", "/public/css/site.css"] {
        let response = browser.get(&stack.url(path));
        assert_eq!(response.status, 200, "{path}");
        assert!(response.all("set-cookie").is_empty(), "{path}: no login cookie on a skipped path");
    }
    for path in ["/healthz/", "/healthzx", "/publicity", "/x?/healthz"] {
        assert_eq!(browser.get(&stack.url(path)).status, 302, "{path}");
    }
}

#[test]
fn parallel_tabs_all_complete() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    let paths = ["/tab/one", "/tab/two?x=2", "/tab/three"];
    let authorizes: Vec<String> = paths
        .iter()
        .map(|path| browser.get(&stack.url(path)).header("location").unwrap().to_string())
        .collect();
    let state_cookies = browser.cookie_names(&stack.url("/")).into_iter().filter(|name| name.contains("-state-")).count();
    assert_eq!(state_cookies, 3, "each tab has its own login state");

    for (path, authorize) in paths.iter().zip(&authorizes) {
        let callback = browser.get(authorize).header("location").unwrap().to_string();
        let done = browser.get(&callback);
        assert_eq!(done.status, 302, "{path}: {}", done.body);
        assert_eq!(done.header("location"), Some(*path));
    }
    let left = browser.cookie_names(&stack.url("/")).into_iter().filter(|name| name.contains("-state-")).count();
    assert_eq!(left, 0, "every login state cookie is cleared");
}

#[test]
fn head_request_redirects_like_get() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    let response = browser.request("HEAD", &stack.url("/"), &[]);
    assert_eq!(response.status, 302);
    assert!(response.header("location").unwrap().contains("/oauth/authorize?"));
}

#[test]
fn counters_appear_in_stats() {
    let stack = Stack::start(Setup::default());
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    eventually("login counters", || {
        stack.envoy.counter("heroku_bouncer.login_started") == 1
            && stack.envoy.counter("heroku_bouncer.login_succeeded") == 1
    });
    let stats = stack.envoy.admin_get("/stats?filter=heroku_bouncer");
    for name in [
        "login_started",
        "login_succeeded",
        "login_failed",
        "login_forbidden",
        "session_invalid",
        "callout_failed",
        "unauthorized",
        "logout",
    ] {
        assert!(stats.contains(&format!("wasmcustom.heroku_bouncer.{name}: ")), "{name} missing in:\n{stats}");
    }
    let log = stack.envoy.log();
    assert!(log.contains("login succeeded for ada@example.com"), "{log}");
    assert!(!log.contains(CLIENT_SECRET), "the client secret never reaches the log");
}
