//! The demo upstream app over real HTTP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use heroku_standin::DemoApp;

/// Sends raw request bytes and returns the whole response text, so that a
/// test can repeat a header, which the HTTP client cannot.
fn raw_exchange(app: &DemoApp, request: &str) -> String {
    let mut stream = TcpStream::connect(app.addr()).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn json_echo_groups_headers_by_name() {
    let app = DemoApp::start().unwrap();
    let response = raw_exchange(
        &app,
        "GET /path?q=1 HTTP/1.1\r\nHost: app\r\nAccept: application/json\r\nX-Dup: one\r\nx-dup: two\r\nConnection: close\r\n\r\n",
    );

    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert!(
        body.find("\"method\"").unwrap() < body.find("\"path\"").unwrap(),
        "{body}"
    );
    assert!(
        body.find("\"path\"").unwrap() < body.find("\"headers\"").unwrap(),
        "{body}"
    );
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/path?q=1");
    assert_eq!(echo["headers"]["x-dup"], serde_json::json!(["one", "two"]));
}

#[test]
fn records_headers_in_order_with_duplicates_and_body() {
    let app = DemoApp::start().unwrap();
    raw_exchange(
        &app,
        "POST /submit HTTP/1.1\r\nHost: app\r\nX-Dup: one\r\nX-Other: o\r\nX-Dup: two\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );

    let requests = app.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/submit");
    assert_eq!(requests[0].body, b"hello");
    let custom: Vec<(&str, &str)> = requests[0]
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("X-"))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        custom,
        [("X-Dup", "one"), ("X-Other", "o"), ("X-Dup", "two")]
    );
}

#[test]
fn html_page_shows_signed_in_user() {
    let app = DemoApp::start().unwrap();
    let answer = get(
        &format!("{}/", app.base_url()),
        &[
            ("Accept", "text/html"),
            ("x-heroku-user-email", "ada@example.com"),
            ("x-heroku-user-name", "Ada <Lovelace>"),
            ("x-heroku-user-id", "01234567-89ab-cdef-0123-456789abcdef"),
        ],
    );

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        answer.body.contains("Signed in as ada@example.com"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("Ada &lt;Lovelace&gt;"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("01234567-89ab-cdef-0123-456789abcdef"));
    assert!(answer.body.contains("href=\"/auth/heroku/logout/\""));
}

#[test]
fn html_page_says_when_not_signed_in() {
    let app = DemoApp::start().unwrap();
    let answer = get(&format!("{}/anything", app.base_url()), &[]);
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("Not signed in"), "{}", answer.body);
    assert!(answer.body.contains("carried no identity headers"));
}
