//! HTTP plumbing shared by the stand-in and the demo app: a request and reply
//! model that handlers use instead of tiny_http types, form and query
//! parameters, and a server that handles each request on its own thread.

use std::io::{self, Cursor, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Maximum request body the servers read; a larger body gets `413`.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A request read in full from the connection.
#[derive(Clone, Debug)]
pub(crate) struct HttpRequest {
    pub method: String,
    /// The request target as sent: the path with its query string.
    pub target: String,
    /// Major and minor HTTP version, such as `(1, 1)`.
    pub http_version: (u8, u8),
    /// Every header in the order received, duplicates included.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// Returns the path without the query string.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// Returns the first value of a header, matching its name case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn query_params(&self) -> Params {
        Params::parse(self.query().as_bytes())
    }

    /// Returns the query parameters followed by the form body parameters, so
    /// that a body value wins over a query value of the same name, as in Rack.
    ///
    /// The body is read as a form when its content type is
    /// `application/x-www-form-urlencoded` or absent; any other body (JSON
    /// included) contributes nothing, as on id.heroku.com.
    pub fn query_and_form_params(&self) -> Params {
        let mut params = self.query_params();
        let content_type = self.header("content-type").map(media_type);
        let is_form = match content_type {
            None => true,
            Some(media) => media == "application/x-www-form-urlencoded",
        };
        if is_form {
            params.0.extend(Params::parse(&self.body).0);
        }
        params
    }

    /// Returns true when the client speaks HTTP/1.1 or later.
    pub fn is_http11_or_later(&self) -> bool {
        self.http_version >= (1, 1)
    }
}

/// Returns the lower-cased media type of a `Content-Type` value, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// URL-encoded parameters in their original order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(bytes: &[u8]) -> Params {
        Params(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// Returns the last value given for `name`, as Rack does for repeated keys.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A complete response, written by the server glue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Creates a reply with a body of the given content type; an empty
    /// content type sends no `Content-Type` header.
    pub fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        let reply = Reply {
            status,
            headers: Vec::new(),
            body,
        };
        if content_type.is_empty() {
            reply
        } else {
            reply.header("Content-Type", content_type)
        }
    }

    /// Creates a JSON reply. A value that fails to serialize (only maps with
    /// non-string keys can) becomes `500` with a plain-text body.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::with_body(status, "application/json; charset=utf-8", body),
            Err(error) => Reply::text(500, &format!("failed to encode JSON: {error}")),
        }
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply::with_body(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    pub fn html(status: u16, html: String) -> Reply {
        Reply::with_body(status, "text/html; charset=utf-8", html.into_bytes())
    }

    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::new(status).header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Returns the first value of a header, matching its name case-insensitively.
    #[cfg(test)]
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Builds a Heroku-style error body: `{"id","message"}`, plus `url` when given.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub id: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
}

pub(crate) fn error_reply(status: u16, id: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &ErrorBody {
            id,
            message,
            url: None,
        },
    )
}

/// Escapes text for use in HTML element content and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Request handler shared by all request threads of a server.
pub(crate) type Handler = dyn Fn(&HttpRequest) -> Reply + Send + Sync;

/// Maximum time `Drop` waits for the listening socket to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A tiny_http server whose acceptor thread starts one thread per request, so
/// that a slow reply does not hold up others. Dropping it stops accepting,
/// joins the acceptor and waits for the port to close. Request threads still
/// running finish on their own.
pub(crate) struct HttpServer {
    /// Always `Some` until `Drop` takes it.
    server: Option<Arc<tiny_http::Server>>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    log_requests: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and starts serving with `handler`. `name` prefixes the
    /// thread names and the request log lines.
    pub fn start(addr: &str, name: &'static str, handler: Arc<Handler>) -> io::Result<HttpServer> {
        let server = tiny_http::Server::http(addr).map_err(|error| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("failed to listen on {addr}: {error}"),
            )
        })?;
        let server = Arc::new(server);
        let bound = server.server_addr().to_ip().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} is not an IP socket address"),
            )
        })?;

        let stopping = Arc::new(AtomicBool::new(false));
        let log_requests = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let server = Arc::clone(&server);
            let stopping = Arc::clone(&stopping);
            let log_requests = Arc::clone(&log_requests);
            thread::Builder::new()
                .name(format!("{name}-acceptor"))
                .spawn(move || accept_loop(&server, &stopping, &log_requests, name, handler))?
        };

        Ok(HttpServer {
            server: Some(server),
            addr: bound,
            stopping,
            log_requests,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_request_logging(&self, enabled: bool) {
        self.log_requests.store(enabled, Ordering::Relaxed);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(server) = &self.server {
            server.unblock();
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }

        // The acceptor held the only other reference, so this drops the tiny_http server.
        self.server = None;
        wait_until_closed(self.addr);
    }
}

/// Waits until `addr` refuses connections, at most [`CLOSE_TIMEOUT`].
/// tiny_http closes its listening socket on its own thread shortly after the
/// server is dropped, and a caller may want to bind the same port again.
fn wait_until_closed(addr: SocketAddr) {
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Err(_) => return,
            Ok(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    eprintln!(
        "{addr}: the listening socket is still open {CLOSE_TIMEOUT:?} after the server was dropped"
    );
}

fn accept_loop(
    server: &tiny_http::Server,
    stopping: &AtomicBool,
    log_requests: &Arc<AtomicBool>,
    name: &'static str,
    handler: Arc<Handler>,
) {
    while !stopping.load(Ordering::SeqCst) {
        let request = match server.recv() {
            Ok(request) => request,
            // `unblock` from `Drop` also lands here; the loop condition ends it.
            Err(_) => continue,
        };

        let handler = Arc::clone(&handler);
        let log_requests = Arc::clone(log_requests);
        let spawned = thread::Builder::new()
            .name(format!("{name}-request"))
            .spawn(move || serve_one(request, handler.as_ref(), &log_requests, name));
        if let Err(error) = spawned {
            // The request moved into the closure is dropped with it, which
            // closes its connection; log so that the reset has a reason.
            eprintln!("{name}: failed to start a request thread: {error}");
        }
    }
}

fn serve_one(
    mut request: tiny_http::Request,
    handler: &Handler,
    log_requests: &AtomicBool,
    name: &str,
) {
    let reply = match read_request(&mut request) {
        Ok(http_request) => handler(&http_request),
        Err(reply) => reply,
    };

    if log_requests.load(Ordering::Relaxed) {
        // Only the path: query strings carry codes, tokens and state.
        let path = request.url().split('?').next().unwrap_or("");
        eprintln!("{name}: {} {} {}", request.method(), path, reply.status);
    }

    let mut headers = Vec::with_capacity(reply.headers.len());
    for (field, value) in &reply.headers {
        // tiny_http accepts CR and LF, which would split the header.
        if value.contains(['\r', '\n']) {
            eprintln!("{name}: dropped response header {field:?}: its value contains CR or LF");
            continue;
        }
        match tiny_http::Header::from_bytes(field.as_bytes(), value.as_bytes()) {
            Ok(header) => headers.push(header),
            Err(()) => {
                eprintln!("{name}: dropped response header {field:?}: not valid ASCII header text")
            }
        }
    }
    let length = reply.body.len();
    let response = tiny_http::Response::new(
        tiny_http::StatusCode(reply.status),
        headers,
        Cursor::new(reply.body),
        Some(length),
        None,
    );
    // A write error means the client closed the connection, so it is ignored.
    let _ = request.respond(response);
}

/// Copies a tiny_http request into an [`HttpRequest`], or returns the error
/// reply when the body is too large or unreadable.
fn read_request(request: &mut tiny_http::Request) -> Result<HttpRequest, Reply> {
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body);
    if let Err(error) = read {
        return Err(Reply::text(
            400,
            &format!("failed to read the request body: {error}"),
        ));
    }
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(Reply::text(
            413,
            &format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        ));
    }

    let version = request.http_version();
    Ok(HttpRequest {
        method: request.method().as_str().to_string(),
        target: request.url().to_string(),
        http_version: (version.0, version.1),
        headers: request
            .headers()
            .iter()
            .map(|header| {
                (
                    header.field.as_str().as_str().to_string(),
                    header.value.as_str().to_string(),
                )
            })
            .collect(),
        body,
    })
}

#[cfg(test)]
pub(crate) fn test_request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpRequest {
    HttpRequest {
        method: method.to_string(),
        target: target.to_string(),
        http_version: (1, 1),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_params_win_over_query_params() {
        let request = test_request(
            "POST",
            "/oauth/token?code=from-query&grant_type=authorization_code",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            b"code=from-body",
        );
        let params = request.query_and_form_params();
        assert_eq!(params.get("code"), Some("from-body"));
        assert_eq!(params.get("grant_type"), Some("authorization_code"));
    }

    #[test]
    fn json_body_is_not_read_as_form() {
        let request = test_request(
            "POST",
            "/oauth/token?code=q",
            &[("Content-Type", "application/json")],
            b"code=b",
        );
        assert_eq!(request.query_and_form_params().get("code"), Some("q"));
    }

    #[test]
    fn body_without_content_type_is_read_as_form() {
        let request = test_request("POST", "/oauth/token", &[], b"code=b");
        assert_eq!(request.query_and_form_params().get("code"), Some("b"));
    }

    #[test]
    fn escape_html_escapes_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
