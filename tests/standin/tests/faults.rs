//! Faults, request counting and recording over real HTTP.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use heroku_standin::{Config, Endpoint, Fault};

#[test]
fn rate_limit_fault_on_account() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    standin.set_fault(Endpoint::Account, Some(Fault::Status(429)));

    let answer = api_get(&standin, "/account", &token);
    assert_eq!(answer.status, 429);
    assert_eq!(answer.json()["id"], "rate_limit");
    assert!(answer.json()["url"]
        .as_str()
        .unwrap()
        .starts_with("https://devcenter.heroku.com/"));
    assert_eq!(answer.header("ratelimit-remaining"), Some("0"));
}

#[test]
fn server_error_fault_is_plain_text() {
    let standin = start(Config::default());
    standin.set_fault(Endpoint::Token, Some(Fault::Status(500)));
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[("code", "x"), ("client_secret", SECRET)],
    );
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(answer.body, "500 Internal Server Error\n");
}

#[test]
fn unauthorized_fault_on_token_has_heroku_body() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    standin.set_fault(Endpoint::Token, Some(Fault::Status(401)));
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[("code", &code), ("client_secret", SECRET)],
    );
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        r#"{"id":"unauthorized","message":"OAuth authorization invalid."}"#
    );
}

#[test]
fn raw_fault_sends_exact_body() {
    let standin = start(Config::default());
    standin.set_fault(
        Endpoint::Token,
        Some(Fault::Raw {
            status: 200,
            content_type: "application/json".to_string(),
            body: b"{\"access_token\":".to_vec(),
        }),
    );
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[("code", "x"), ("client_secret", SECRET)],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.body, "{\"access_token\":");
}

#[test]
fn raw_fault_with_empty_content_type_sends_none() {
    let standin = start(Config::default());
    standin.set_fault(
        Endpoint::Teams,
        Some(Fault::Raw {
            status: 502,
            content_type: String::new(),
            body: Vec::new(),
        }),
    );
    let answer = get(
        &format!("{}/teams", standin.base_url()),
        &[("Accept", HEROKU_ACCEPT)],
    );
    assert_eq!(answer.status, 502);
    assert_eq!(answer.header("content-type"), None);
    assert_eq!(answer.body, "");
}

#[test]
fn cleared_fault_restores_normal_answers() {
    let standin = start(Config::default());
    standin.set_fault(Endpoint::Authorize, Some(Fault::Status(503)));
    assert_eq!(get(&authorize_url(&standin, ""), &[]).status, 503);

    standin.set_fault(Endpoint::Authorize, None);
    assert_eq!(get(&authorize_url(&standin, ""), &[]).status, 302);
}

#[test]
fn delay_fault_delays_without_blocking_others() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    let delay = Duration::from_secs(2);
    standin.set_fault(Endpoint::Account, Some(Fault::Delay(delay)));

    let started = Instant::now();
    let slow_calls: Vec<_> = (0..2)
        .map(|_| {
            let url = format!("{}/account", standin.base_url());
            let authorization = format!("Bearer {token}");
            thread::spawn(move || {
                get(
                    &url,
                    &[("Accept", HEROKU_ACCEPT), ("Authorization", &authorization)],
                )
            })
        })
        .collect();

    // While both delayed calls wait, another endpoint responds at once.
    thread::sleep(Duration::from_millis(100));
    let quick_started = Instant::now();
    assert_eq!(get(&authorize_url(&standin, ""), &[]).status, 302);
    assert!(
        slow_calls.iter().all(|call| !call.is_finished()),
        "authorize answered only after the delayed calls ({:?})",
        quick_started.elapsed()
    );

    for call in slow_calls {
        assert_eq!(call.join().unwrap().status, 200);
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= delay, "delayed calls took only {elapsed:?}");
    assert!(
        elapsed < delay * 2,
        "delayed calls ran one after the other: {elapsed:?}"
    );
}

#[test]
fn calls_count_per_endpoint_including_faulted() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    standin.set_fault(Endpoint::Account, Some(Fault::Status(503)));
    api_get(&standin, "/account", &token);
    api_get(&standin, "/users/~", &token);
    api_get(&standin, "/teams", &token);
    get(&format!("{}/login", standin.base_url()), &[]);

    assert_eq!(standin.calls(Endpoint::Authorize), 1);
    assert_eq!(standin.calls(Endpoint::Token), 1);
    assert_eq!(standin.calls(Endpoint::Account), 2);
    assert_eq!(standin.calls(Endpoint::Teams), 1);
}

#[test]
fn requests_record_method_path_headers_and_body() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    exchange(&standin, &code);

    let authorize = standin.requests(Endpoint::Authorize);
    assert_eq!(authorize.len(), 1);
    assert_eq!(authorize[0].method, "GET");
    assert_eq!(
        authorize[0].path,
        format!("/oauth/authorize?client_id={CLIENT_ID}&response_type=code")
    );

    let token = standin.requests(Endpoint::Token);
    assert_eq!(token[0].method, "POST");
    assert_eq!(token[0].path, "/oauth/token");
    assert_eq!(
        token[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let body = String::from_utf8(token[0].body.clone()).unwrap();
    assert_eq!(
        body,
        format!("grant_type=authorization_code&code={code}&client_secret={SECRET}")
    );
}

#[test]
fn dropped_standin_stops_listening() {
    let standin = start(Config::default());
    let addr = standin.addr();
    drop(standin);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} still accepts connections"
    );
}

#[test]
fn dropped_standin_frees_its_port() {
    let standin = start(Config::default());
    let addr = standin.addr().to_string();
    drop(standin);
    let again = heroku_standin::Standin::start_on(&addr, Config::default()).unwrap();
    assert_eq!(again.addr().to_string(), addr);
}
