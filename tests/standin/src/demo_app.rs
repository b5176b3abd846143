//! A tiny upstream app for the proxy to forward to. It records every request
//! and responds `200` on every path: JSON describing the request when the
//! `Accept` header contains `application/json`, otherwise an HTML page that
//! shows the identity headers the login gate added.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::http::{escape_html, HttpRequest, HttpServer, Reply};
use crate::server::RecordedRequest;

/// Prefix of the identity headers the login gate sets by default.
const IDENTITY_HEADER_PREFIX: &str = "x-heroku-";
/// The identity header that carries the user's OAuth token; the page shows only its length.
const TOKEN_HEADER: &str = "x-heroku-oauth-token";

/// A running demo app. Dropping it stops the server.
pub struct DemoApp {
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    server: HttpServer,
}

impl DemoApp {
    /// Starts the app on a free port of 127.0.0.1.
    pub fn start() -> io::Result<DemoApp> {
        DemoApp::start_on("127.0.0.1:0")
    }

    pub fn start_on(addr: &str) -> io::Result<DemoApp> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&requests);
        let server = HttpServer::start(
            addr,
            "demo-app",
            Arc::new(move |request: &HttpRequest| {
                recorder
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(RecordedRequest::from_http(request));
                respond(request)
            }),
        )?;
        Ok(DemoApp { requests, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns `http://HOST:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Returns every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Turns on or off one stderr line per request: method, path without the
    /// query string, and status. Off by default.
    pub fn set_request_logging(&self, enabled: bool) {
        self.server.set_request_logging(enabled);
    }
}

/// The JSON response body: the method, the target and the headers by lower-cased name.
#[derive(Serialize)]
struct EchoBody<'a> {
    method: &'a str,
    path: &'a str,
    headers: BTreeMap<String, Vec<&'a str>>,
}

/// Path whose response also sets a cookie of the app's own, so tests can check that the
/// login gate adds its cookies without replacing the app's.
pub const SETS_COOKIE_PATH: &str = "/demo/sets-cookie";

/// The cookie the app sets on [`SETS_COOKIE_PATH`].
pub const APP_SET_COOKIE: &str = "demo_app_pref=dark; Path=/";

fn respond(request: &HttpRequest) -> Reply {
    let wants_json = request
        .header_values("accept")
        .any(|accept| accept.to_ascii_lowercase().contains("application/json"));
    let reply = if wants_json {
        Reply::json(200, &echo_body(request))
    } else {
        Reply::html(200, identity_page(request))
    };
    if request.path() == SETS_COOKIE_PATH {
        reply.header("Set-Cookie", APP_SET_COOKIE)
    } else {
        reply
    }
}

fn echo_body(request: &HttpRequest) -> EchoBody<'_> {
    let mut headers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in &request.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.as_str());
    }
    EchoBody {
        method: &request.method,
        path: &request.target,
        headers,
    }
}

/// Renders who is signed in according to the identity headers, with a table
/// of those headers and a link to the login gate's logout path.
fn identity_page(request: &HttpRequest) -> String {
    let email = request.header("x-heroku-user-email");
    let name = request.header("x-heroku-user-name");
    let id = request.header("x-heroku-user-id");

    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>demo-app</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n<main>\n\
         <p class=\"app\">demo-app</p>\n"
    );
    match email {
        Some(email) => html.push_str(&format!("<h1>Signed in as {}</h1>\n", escape_html(email))),
        None => html.push_str("<h1>Not signed in</h1>\n"),
    }
    if name.is_some() || id.is_some() {
        html.push_str("<dl>\n");
        if let Some(name) = name {
            html.push_str(&format!("<dt>Name</dt><dd>{}</dd>\n", escape_html(name)));
        }
        if let Some(id) = id {
            html.push_str(&format!(
                "<dt>Account id</dt><dd><code>{}</code></dd>\n",
                escape_html(id)
            ));
        }
        html.push_str("</dl>\n");
    }

    let identity_headers: Vec<&(String, String)> = request
        .headers
        .iter()
        .filter(|(field, _)| {
            field
                .to_ascii_lowercase()
                .starts_with(IDENTITY_HEADER_PREFIX)
        })
        .collect();
    if identity_headers.is_empty() {
        html.push_str("<p>This request carried no identity headers (<code>x-heroku-*</code>), so it did not pass through the login gate.</p>\n");
    } else {
        html.push_str("<h2>Identity headers the app received</h2>\n<table>\n<tr><th>Header</th><th>Value</th></tr>\n");
        for (field, value) in identity_headers {
            // Show that a token arrived without putting it on the page.
            let displayed_value = if field.eq_ignore_ascii_case(TOKEN_HEADER) {
                format!("({} characters, hidden)", value.chars().count())
            } else {
                value.clone()
            };
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td></tr>\n",
                escape_html(field),
                escape_html(&displayed_value)
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str(&format!(
        "<p class=\"request\">Request: <code>{} {}</code></p>\n\
         <a class=\"action\" href=\"/auth/heroku/logout/\">Log out</a>\n</main>\n</body>\n</html>\n",
        escape_html(&request.method),
        escape_html(&request.target)
    ));
    html
}

/// Inline CSS of the demo page: one card, with long ids and header values wrapped so that
/// the page never scrolls sideways on a phone.
const PAGE_STYLE: &str = "body{margin:0;font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
background:#eef5f1;color:#1b2e24}\
main{max-width:40rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border-radius:12px;\
box-shadow:0 2px 12px rgba(20,60,40,.12)}\
.app{margin:0 0 .5rem;color:#4d6b5c;font-size:.875rem}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem;color:#17633f;overflow-wrap:anywhere}\
h2{font-size:1rem;margin:1.5rem 0 .5rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}\
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}\
table{width:100%;border-collapse:collapse;table-layout:fixed}\
th,td{text-align:left;vertical-align:top;padding:.4rem .5rem;border-bottom:1px solid #d5e3db;overflow-wrap:anywhere}\
th:first-child,td:first-child{width:45%}\
code{font-size:.875rem}.request{color:#4d6b5c;overflow-wrap:anywhere}\
a.action{display:inline-block;padding:.75rem 1.25rem;border-radius:6px;background:#17633f;color:#fff;\
font-weight:600;text-decoration:none}a.action:hover{background:#0f4a2e}\
a.action:focus-visible{outline:3px solid #f4a261;outline-offset:2px}\
@media (max-width:480px){body{background:#fff}main{margin:0;border-radius:0;box-shadow:none;padding:1.25rem}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request;

    #[test]
    fn page_escapes_header_values_and_hides_token() {
        let request = test_request(
            "GET",
            "/",
            &[
                ("x-heroku-user-email", "<script>@example.com"),
                ("x-heroku-oauth-token", "HRKU-secret-value"),
            ],
            b"",
        );
        let html = identity_page(&request);
        assert!(html.contains("Signed in as &lt;script&gt;@example.com"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("HRKU-secret-value"));
        assert!(html.contains("(17 characters, hidden)"));
    }

    #[test]
    fn page_says_when_identity_headers_are_missing() {
        let html = identity_page(&test_request("GET", "/", &[("Accept", "text/html")], b""));
        assert!(html.contains("Not signed in"));
        assert!(html.contains("carried no identity headers"));
    }
}
