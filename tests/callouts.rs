//! Heroku failures during the callback: every one ends in the 502 page (or JSON), a
//! counter and no session, and the next login works.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Runs a login from the start and returns the callback's response.
fn callback_response(stack: &Stack, browser: &mut Browser) -> Response {
    let authorize = browser.get(&stack.url("/start")).header("location").unwrap().to_string();
    let callback = browser.get(&authorize).header("location").unwrap().to_string();
    browser.get(&callback)
}

fn assert_unavailable_page(response: &Response, label: &str) {
    assert_eq!(response.status, 502, "{label}: {}", response.body);
    assert!(response.body.contains("Heroku is unavailable"), "{label}: {}", response.body);
    assert!(response.body.contains("href=\"/start\""), "{label}: the page offers a retry");
    assert!(!response.body.contains("heroku_id"), "{label}: no cluster names on the page");
    assert!(!response.body.contains("heroku_api"), "{label}: no cluster names on the page");
    let cookies = response.all("set-cookie");
    assert!(!cookies.iter().any(|cookie| cookie.starts_with("herokuoauthsess=")), "{label}: no session");
}

#[test]
fn heroku_answers_that_fail_the_login() {
    let stack = Stack::start(Setup::default());
    let cases: Vec<(&str, Endpoint, Fault)> = vec![
        ("token 500", Endpoint::Token, Fault::Status(500)),
        ("token 503", Endpoint::Token, Fault::Status(503)),
        ("token 429", Endpoint::Token, Fault::Status(429)),
        ("token 422", Endpoint::Token, Fault::Status(422)),
        ("token malformed JSON", Endpoint::Token, raw(200, "application/json", "{\"access_token\":")),
        ("token HTML", Endpoint::Token, raw(200, "text/html", "<html>maintenance</html>")),
        ("token without access_token", Endpoint::Token, raw(200, "application/json", "{\"token_type\":\"Bearer\"}")),
        ("token array", Endpoint::Token, raw(200, "application/json", "[1,2]")),
        ("account 500", Endpoint::Account, Fault::Status(500)),
        ("account 429", Endpoint::Account, Fault::Status(429)),
        ("account 401", Endpoint::Account, Fault::Status(401)),
        ("account partial JSON", Endpoint::Account, raw(200, "application/json", "{\"email\":\"ada@exa")),
        ("account wrong content type", Endpoint::Account, raw(200, "text/plain", "{\"email\":\"ada@example.com\",\"id\":\"1\"}")),
        ("account without email", Endpoint::Account, raw(200, "application/json", "{\"id\":\"1\"}")),
        ("account email with CRLF", Endpoint::Account, raw(200, "application/json", "{\"id\":\"1\",\"email\":\"a@b.com\\r\\nx: y\"}")),
        ("account empty body", Endpoint::Account, raw(200, "application/json", "")),
    ];
    for (index, (label, endpoint, fault)) in cases.iter().enumerate() {
        stack.standin.set_fault(*endpoint, Some(fault.clone()));
        let mut browser = Browser::default();
        let response = callback_response(&stack, &mut browser);
        assert_unavailable_page(&response, label);
        assert_eq!(browser.cookie(&stack.url("/"), "herokuoauthsess"), None, "{label}");
        let expected = index as u64 + 1;
        eventually(label, || stack.envoy.counter("heroku_bouncer.callout_failed") == expected);
        stack.standin.set_fault(*endpoint, None);
    }

    let mut browser = Browser::default();
    assert_eq!(stack.log_in(&mut browser, "/").status, 200, "a login works once Heroku recovers");
    let log = stack.envoy.log();
    assert!(log.contains("Heroku token request failed: status 503"), "{log}");
    assert!(!log.contains("HRKU-"), "no token in the log");
}

fn raw(status: u16, content_type: &str, body: &str) -> Fault {
    Fault::Raw { status, content_type: content_type.into(), body: body.as_bytes().to_vec() }
}

#[test]
fn rejected_code_asks_for_a_new_login() {
    let stack = Stack::start(Setup::default());
    stack.standin.set_fault(Endpoint::Token, Some(Fault::Status(401)));
    let mut browser = Browser::default();
    let response = callback_response(&stack, &mut browser);
    assert_eq!(response.status, 403);
    assert!(response.body.contains("Login could not be verified"), "{}", response.body);
    assert_eq!(stack.standin.calls(Endpoint::Account), 0);
}

#[test]
fn expired_code_asks_for_a_new_login() {
    let mut setup = Setup::default();
    setup.standin.code_lifetime_s = 0;
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    let response = callback_response(&stack, &mut browser);
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);
}

#[test]
fn slow_heroku_times_out() {
    let stack = Stack::start(Setup::with_plugin(json!({"callout_timeout_ms": 300})));
    stack.standin.set_fault(Endpoint::Account, Some(Fault::Delay(Duration::from_secs(3))));
    let mut browser = Browser::default();
    let started = std::time::Instant::now();
    let response = callback_response(&stack, &mut browser);
    assert_unavailable_page(&response, "account timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "the callout timeout cut the wait");
    stack.standin.set_fault(Endpoint::Account, None);
    let mut next = Browser::default();
    assert_eq!(stack.log_in(&mut next, "/").status, 200);
}

#[test]
fn refused_connection_fails_cleanly() {
    let setup = Setup { id_upstream: Upstream::Refused, ..Setup::default() };
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    let response = callback_response(&stack, &mut browser);
    assert_unavailable_page(&response, "connection refused");
    eventually("callout_failed counter", || stack.envoy.counter("heroku_bouncer.callout_failed") == 1);
    assert_eq!(browser.get(&stack.url("/again")).status, 302, "the filter keeps answering");
}

#[test]
fn unknown_cluster_fails_cleanly() {
    let stack = Stack::start(Setup::with_plugin(json!({"api_cluster": "no_such_cluster"})));
    let mut browser = Browser::default();
    let response = callback_response(&stack, &mut browser);
    assert_unavailable_page(&response, "unknown cluster");
    assert_eq!(stack.standin.calls(Endpoint::Token), 1);
    let log = stack.envoy.log();
    assert!(log.contains("no_such_cluster"), "the log names the cluster: {log}");
    assert_eq!(browser.get(&stack.url("/again")).status, 302, "the filter keeps answering");
}
