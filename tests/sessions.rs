//! Sessions through a real Envoy: token refresh, session lifetime, key rotation and team
//! rules, with short token lifetimes at the Heroku stand-in.

mod common;

use std::time::Duration;

use common::*;
use heroku_standin::{User, APP_SET_COOKIE, SETS_COOKIE_PATH};
use serde_json::json;

/// Starts a stack whose sessions are due for a refresh from the start: tokens live 60 s and the
/// refresh margin is 120 s.
fn refreshing_stack(extra: serde_json::Value) -> Stack {
    let mut plugin = json!({"refresh_margin_s": 120});
    if let (Some(target), Some(source)) = (plugin.as_object_mut(), extra.as_object()) {
        target.extend(source.clone());
    }
    let mut setup = Setup::with_plugin(plugin);
    setup.standin.access_token_lifetime_s = 60;
    Stack::start(setup)
}

fn refresh_calls(stack: &Stack) -> usize {
    stack
        .standin
        .requests(Endpoint::Token)
        .iter()
        .filter(|request| String::from_utf8_lossy(&request.body).contains("grant_type=refresh_token"))
        .count()
}

#[test]
fn refresh_is_transparent() {
    let stack = refreshing_stack(json!({}));
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200);
    let old_cookie = browser.cookie(&stack.url("/"), "herokuoauthsess").unwrap();
    let refreshes_at_login = refresh_calls(&stack);

    let response = browser.get(&stack.url(SETS_COOKIE_PATH));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(refresh_calls(&stack), refreshes_at_login + 1);
    let seen = stack.app.requests().last().cloned().unwrap();
    assert_eq!(seen.path, SETS_COOKIE_PATH, "the app saw the request that waited for the refresh");
    assert_eq!(seen.header("x-heroku-user-email"), Some("ada@example.com"));

    let cookies = response.all("set-cookie");
    assert!(cookies.contains(&APP_SET_COOKIE), "the app's own cookie is kept: {cookies:?}");
    let renewed = cookies.iter().find(|cookie| cookie.starts_with("herokuoauthsess=v1.")).expect("renewed session");
    assert!(renewed.contains("HttpOnly"), "{renewed}");
    assert_ne!(browser.cookie(&stack.url("/"), "herokuoauthsess").unwrap(), old_cookie);

    let account_requests = stack.standin.requests(Endpoint::Account);
    let last_token = account_requests.last().unwrap().header("authorization").unwrap();
    let first_token = account_requests.first().unwrap().header("authorization").unwrap();
    assert_ne!(last_token, first_token, "the account was read again with the new token");
    let refreshes = refresh_calls(&stack) as u64;
    eventually("refresh_succeeded counter", || stack.envoy.counter("heroku_bouncer.refresh_succeeded") == refreshes);
}

#[test]
fn revoked_refresh_token_ends_session() {
    let stack = refreshing_stack(json!({}));
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    let mut api = Browser::default();
    api.set_cookie(&stack.url("/"), "herokuoauthsess", &browser.cookie(&stack.url("/"), "herokuoauthsess").unwrap());
    stack.standin.revoke_refresh_tokens();

    let page = browser.get(&stack.url("/page"));
    assert_eq!(page.status, 302);
    assert!(page.header("location").unwrap().contains("/oauth/authorize?"), "a browser goes to login");
    assert!(page.all("set-cookie").iter().any(|cookie| cookie.starts_with("herokuoauthsess=;")));
    assert_eq!(browser.cookie(&stack.url("/"), "herokuoauthsess"), None);

    let call = api.request("GET", &stack.url("/api"), &[("accept", "application/json")]);
    assert_eq!(call.status, 401);
    assert_eq!(call.json()["id"], "unauthorized");
    assert!(call.all("set-cookie").iter().any(|cookie| cookie.starts_with("herokuoauthsess=;")));
    eventually("refresh_rejected counter", || stack.envoy.counter("heroku_bouncer.refresh_rejected") == 2);
}

#[test]
fn outage_during_refresh_keeps_valid_session() {
    let stack = refreshing_stack(json!({}));
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    let before = refresh_calls(&stack);
    stack.standin.set_fault(Endpoint::Token, Some(Fault::Status(503)));

    let response = browser.get(&stack.url("/during-outage"));
    assert_eq!(response.status, 200, "the still valid token carries the request");
    assert!(response.all("set-cookie").is_empty(), "no new session without a refresh");
    assert_eq!(stack.app.requests().last().unwrap().header("x-heroku-user-email"), Some("ada@example.com"));
    assert_eq!(refresh_calls(&stack), before + 1);

    stack.standin.set_fault(Endpoint::Token, None);
    let response = browser.get(&stack.url("/after-outage"));
    assert_eq!(response.status, 200);
    assert_eq!(refresh_calls(&stack), before + 2, "the next request tries again");
    assert!(response.all("set-cookie").iter().any(|cookie| cookie.starts_with("herokuoauthsess=v1.")));
}

#[test]
fn outage_after_expiry_gets_502() {
    let mut setup = Setup::with_plugin(json!({"refresh_margin_s": 1}));
    setup.standin.access_token_lifetime_s = 2;
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    std::thread::sleep(Duration::from_millis(2500));
    stack.standin.set_fault(Endpoint::Token, Some(Fault::Status(500)));

    let page = browser.get(&stack.url("/page"));
    assert_eq!(page.status, 502);
    assert!(page.body.contains("Heroku is unavailable"), "{}", page.body);
    let call = browser.request("GET", &stack.url("/api"), &[("accept", "application/json")]);
    assert_eq!(call.status, 502);
    assert_eq!(call.json()["id"], "bad_gateway");

    stack.standin.set_fault(Endpoint::Token, None);
    assert_eq!(browser.get(&stack.url("/page")).status, 200, "the session recovers with Heroku");
}

#[test]
fn parallel_requests_coalesce_refreshes() {
    let stack = refreshing_stack(json!({}));
    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/");
    let cookie = browser.cookie(&stack.url("/"), "herokuoauthsess").unwrap();
    let before = refresh_calls(&stack);
    stack.standin.set_fault(Endpoint::Token, Some(Fault::Delay(Duration::from_millis(500))));

    let url = stack.url("/parallel");
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            let cookie = cookie.clone();
            std::thread::spawn(move || {
                let mut client = Browser::default();
                client.set_cookie(&url, "herokuoauthsess", &cookie);
                client.get(&url).status
            })
        })
        .collect();
    for worker in workers {
        assert_eq!(worker.join().unwrap(), 200);
    }
    let refreshes = refresh_calls(&stack) - before;
    assert!(refreshes >= 1, "the session was refreshed");
    assert!(refreshes <= 2, "at most one refresh per Envoy worker, got {refreshes}");
}

#[test]
fn session_ends_at_max_age() {
    let stack = Stack::start(Setup::with_plugin(json!({"session_max_age_s": 2})));
    let mut browser = Browser::default();
    let landed = stack.log_in(&mut browser, "/");
    assert_eq!(landed.status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let response = browser.get(&stack.url("/page"));
    assert_eq!(response.status, 302, "the session is over whatever its tokens say");
    assert!(response.header("location").unwrap().contains("/oauth/authorize?"));
}

#[test]
fn session_cookie_max_age_follows_config() {
    let stack = Stack::start(Setup::with_plugin(json!({"session_max_age_s": 3600})));
    let mut browser = Browser::default();
    let authorize = browser.get(&stack.url("/")).header("location").unwrap().to_string();
    let callback = browser.get(&authorize).header("location").unwrap().to_string();
    let done = browser.get(&callback);
    let session = done.all("set-cookie").into_iter().find(|cookie| cookie.starts_with("herokuoauthsess=v1.")).unwrap();
    assert!(session.contains("Max-Age=3600"), "{session}");
}

const OLD_KEY: &str = "old-fleet-key-0123456789abcdef0123456789";
const NEW_KEY: &str = "new-fleet-key-0123456789abcdef0123456789";

#[test]
fn rotated_key_accepts_old_cookies() {
    let old_fleet = Stack::start(Setup::with_plugin(json!({"secret_key": OLD_KEY})));
    let mut browser = Browser::default();
    old_fleet.log_in(&mut browser, "/");
    let old_cookie = browser.cookie(&old_fleet.url("/"), "herokuoauthsess").unwrap();

    let new_fleet = Stack::start(Setup::with_plugin(json!({"secret_key": NEW_KEY, "previous_secret_keys": [OLD_KEY]})));
    let mut rolled = Browser::default();
    rolled.set_cookie(&new_fleet.url("/"), "herokuoauthsess", &old_cookie);
    let response = rolled.get(&new_fleet.url("/page"));
    assert_eq!(response.status, 200, "an old cookie still logs in");
    assert!(response.all("set-cookie").iter().any(|cookie| cookie.starts_with("herokuoauthsess=v1.")), "and is sealed again");
    let resealed = rolled.cookie(&new_fleet.url("/"), "herokuoauthsess").unwrap();
    assert_ne!(resealed, old_cookie);
    let again = rolled.get(&new_fleet.url("/page"));
    assert_eq!(again.status, 200);
    assert!(again.all("set-cookie").is_empty(), "a current cookie needs no new seal");

    let other_fleet = Stack::start(Setup::with_plugin(json!({"secret_key": NEW_KEY})));
    let mut stranger = Browser::default();
    stranger.set_cookie(&other_fleet.url("/"), "herokuoauthsess", &old_cookie);
    assert_eq!(stranger.get(&other_fleet.url("/page")).status, 302, "an unknown key means not logged in");
}

/// Starts a stack whose allow rule admits members of `team` only, with a scope that reads teams.
fn team_stack(team: &str, users: Vec<User>) -> Stack {
    let mut setup = Setup::with_plugin(json!({"allow": {"teams": [team]}, "scope": "identity read"}));
    setup.standin.users = users;
    Stack::start(setup)
}

#[test]
fn team_member_is_allowed() {
    let stack = team_stack("navy-research", vec![User::new("grace@heroku.com", Some("Grace Hopper"), &["cobol", "navy-research"])]);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200);
    assert_eq!(stack.standin.calls(Endpoint::Teams), 1);
}

#[test]
fn non_member_is_forbidden() {
    let stack = team_stack("navy-research", vec![User::new("ada@example.com", Some("Ada Lovelace"), &["analytical-engine"])]);
    let mut browser = Browser::default();
    let response = stack.log_in(&mut browser, "/");
    assert_eq!(response.status, 403);
    assert_eq!(response.url, stack.url("/auth/heroku/forbidden/"));
    assert_eq!(browser.cookie(&stack.url("/"), "herokuoauthsess"), None);
}

#[test]
fn teams_are_read_across_pages() {
    let mut teams: Vec<String> = (0..1100).map(|index| format!("team-{index:04}")).collect();
    teams.push("zz-last-team".to_string());
    let team_refs: Vec<&str> = teams.iter().map(String::as_str).collect();
    let stack = team_stack("zz-last-team", vec![User::new("ada@example.com", None, &team_refs)]);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200);
    assert!(stack.standin.calls(Endpoint::Teams) >= 2, "a second page was read");
    let second = &stack.standin.requests(Endpoint::Teams)[1];
    assert!(second.header("range").is_some(), "the second page follows Next-Range");
}

#[test]
fn identity_scope_cannot_read_teams() {
    let mut setup = Setup::with_plugin(json!({"allow": {"teams": ["navy-research"]}}));
    setup.standin.users = vec![User::new("grace@heroku.com", None, &["navy-research"])];
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    let response = stack.log_in(&mut browser, "/");
    assert_eq!(response.status, 403, "the scope cannot prove membership");
    let log = stack.envoy.log();
    assert!(log.contains("cannot read teams"), "one warning names the scope: {log}");
    assert!(log.contains("add \\\"read\\\"") || log.contains("add \"read\""), "{log}");
}

#[test]
fn teams_rechecked_on_refresh() {
    let mut setup = Setup::with_plugin(json!({"allow": {"teams": ["navy-research"]}, "scope": "identity read", "refresh_margin_s": 120}));
    setup.standin.access_token_lifetime_s = 60;
    setup.standin.users = vec![User::new("grace@heroku.com", None, &["navy-research"])];
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200);
    let teams_at_login = stack.standin.calls(Endpoint::Teams);
    assert_eq!(browser.get(&stack.url("/page")).status, 200);
    assert_eq!(stack.standin.calls(Endpoint::Teams), teams_at_login + 1, "membership is read again");
}
