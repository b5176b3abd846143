//! Helpers shared by the integration tests: an HTTP client that does not
//! follow redirects, and shortcuts for the OAuth flow.

#![allow(dead_code)]

use std::time::Duration;

use base64::Engine;
use heroku_standin::{Config, Standin};

pub const CLIENT_ID: &str = "standin-client-id";
pub const SECRET: &str = "standin-client-secret";
pub const HEROKU_ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// A response with its status, headers and body, whatever the status.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.body))
    }

    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header in {self:?}"))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build()
}

fn into_answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("request failed: {error}"),
    };
    let status = response.status();
    let mut headers = Vec::new();
    for name in response.headers_names() {
        for value in response.all(&name) {
            headers.push((name.clone(), value.to_string()));
        }
    }
    let body = response.into_string().unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn with_headers(mut request: ureq::Request, headers: &[(&str, &str)]) -> ureq::Request {
    for (name, value) in headers {
        request = request.set(name, value);
    }
    request
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    into_answer(with_headers(agent().get(url), headers).call())
}

pub fn post_form(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Answer {
    into_answer(with_headers(agent().post(url), headers).send_form(form))
}

pub fn post_raw(url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    into_answer(with_headers(agent().post(url), headers).send_string(body))
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    into_answer(with_headers(agent().request(method, url), headers).call())
}

pub fn start(config: Config) -> Standin {
    Standin::start(config).unwrap()
}

/// Returns the authorize URL with `client_id` and `response_type=code`, plus `extra` (`&a=b...`).
pub fn authorize_url(standin: &Standin, extra: &str) -> String {
    format!(
        "{}/oauth/authorize?client_id={CLIENT_ID}&response_type=code{extra}",
        standin.base_url()
    )
}

/// Returns the decoded value of a query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or("");
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Runs the authorize step in auto-approve mode and returns the code.
pub fn obtain_code(standin: &Standin, scope: Option<&str>) -> String {
    let extra = match scope {
        Some(scope) => format!(
            "&scope={}",
            form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    };
    let answer = get(&authorize_url(standin, &extra), &[]);
    assert_eq!(answer.status, 302, "authorize failed: {answer:?}");
    query_param(answer.location(), "code")
        .unwrap_or_else(|| panic!("no code in {}", answer.location()))
}

pub fn token_url(standin: &Standin) -> String {
    format!("{}/oauth/token", standin.base_url())
}

/// Exchanges a code with a form body and returns the token response.
pub fn exchange(standin: &Standin, code: &str) -> serde_json::Value {
    let answer = post_form(
        &token_url(standin),
        &[],
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(answer.status, 200, "token exchange failed: {answer:?}");
    answer.json()
}

/// Runs authorize and token exchange; returns the access token.
pub fn access_token(standin: &Standin, scope: Option<&str>) -> String {
    let code = obtain_code(standin, scope);
    exchange(standin, &code)["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Calls an API path with the version 3 Accept header and a bearer token.
pub fn api_get(standin: &Standin, path: &str, token: &str) -> Answer {
    let authorization = format!("Bearer {token}");
    get(
        &format!("{}{path}", standin.base_url()),
        &[("Accept", HEROKU_ACCEPT), ("Authorization", &authorization)],
    )
}

pub fn basic_auth(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Returns the byte offsets of `keys` (as `"key":`) in a JSON text, to check field order.
pub fn key_positions(json: &str, keys: &[&str]) -> Vec<usize> {
    keys.iter()
        .map(|key| {
            json.find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("no {key:?} in {json}"))
        })
        .collect()
}

pub fn is_sorted(positions: &[usize]) -> bool {
    positions.windows(2).all(|pair| pair[0] < pair[1])
}
