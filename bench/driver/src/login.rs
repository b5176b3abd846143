//! Logins through Envoy against the Heroku stand-in, made the way a browser makes them. They
//! supply the session cookies that the load sends, and the timing of the login's callback.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use heroku_standin::Standin;

use crate::envoy::{CLIENT_ID, CLIENT_SECRET};

/// An app cookie sent next to the session cookies, so every filter has a `cookie` header with
/// something to keep.
pub const APP_COOKIE: &str = "app_pref=dark";

/// Redirects a login may take, from the first page to the page after the callback.
const MAX_REDIRECTS: usize = 6;

/// A cookie-keeping client that follows redirects one at a time.
pub struct Browser {
    agent: ureq::Agent,
    /// Cookies by origin (`http://host:port`), then by name.
    cookies: BTreeMap<String, BTreeMap<String, String>>,
}

/// One response, with what the benchmark needs from it.
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub url: String,
}

impl Browser {
    pub fn new() -> Browser {
        let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(20)).build();
        Browser { agent, cookies: BTreeMap::new() }
    }

    /// Sends a GET with this browser's cookies for the URL's origin and keeps the cookies
    /// that the response sets.
    pub fn get(&mut self, url: &str) -> Result<Response, String> {
        let origin = origin_of(url);
        let mut request = self.agent.get(url).set("accept", "text/html,application/xhtml+xml");
        if let Some(cookie) = self.cookie_header(&origin) {
            request = request.set("cookie", &cookie);
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return Err(format!("GET {url} failed: {error}")),
        };
        let status = response.status();
        let location = response.header("location").map(|location| absolute(&origin, location));
        let jar = self.cookies.entry(origin).or_default();
        for set_cookie in response.all("set-cookie") {
            store_cookie(jar, set_cookie);
        }
        // Reads the body so the connection can be reused.
        let _ = response.into_string();
        Ok(Response { status, location, url: url.to_string() })
    }

    /// Returns the `cookie` header this browser sends to `origin`, or `None` without cookies.
    pub fn cookie_header(&self, origin: &str) -> Option<String> {
        let jar = self.cookies.get(origin).filter(|jar| !jar.is_empty())?;
        let pairs: Vec<String> = jar.iter().map(|(name, value)| format!("{name}={value}")).collect();
        Some(pairs.join("; "))
    }
}

/// A finished login: the `cookie` header for the load, and how long the callback took.
pub struct Login {
    pub cookie_header: String,
    /// From sending the callback request to its response: the token exchange and the account
    /// lookup at the stand-in, and the filter's work around them.
    pub callback: Duration,
}

/// Logs in through Envoy at `base_url` and checks that the session then reaches the app.
/// `callback_path` identifies the callback request among the redirects.
pub fn log_in(base_url: &str, callback_path: &str) -> Result<Login, String> {
    let mut browser = Browser::new();
    if let Some((name, value)) = APP_COOKIE.split_once('=') {
        browser.cookies.entry(base_url.to_string()).or_default().insert(name.into(), value.into());
    }

    let mut url = format!("{base_url}/");
    let mut callback = None;
    for _ in 0..MAX_REDIRECTS {
        let is_callback = url.starts_with(&format!("{base_url}{callback_path}"));
        let started = Instant::now();
        let response = browser.get(&url)?;
        if is_callback {
            callback = Some(started.elapsed());
        }
        match (response.status, response.location) {
            (200, _) => {
                let callback = callback.ok_or_else(|| format!("{} answered 200 before any login", response.url))?;
                let cookie_header = browser
                    .cookie_header(base_url)
                    .ok_or_else(|| "the login set no cookie".to_string())?;
                return Ok(Login { cookie_header, callback });
            }
            (300..=399, Some(location)) => url = location,
            (status, _) => return Err(format!("GET {} answered {status} during the login", response.url)),
        }
    }
    Err(format!("the login took more than {MAX_REDIRECTS} redirects"))
}

/// Returns true when `base_url` returns any HTTP response, whatever the status.
pub fn any_response(base_url: &str) -> bool {
    let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(2)).build();
    match agent.get(&format!("{base_url}/")).call() {
        Ok(_) | Err(ureq::Error::Status(..)) => true,
        Err(ureq::Error::Transport(_)) => false,
    }
}

/// Times the stand-in's part of one login, as Envoy's callouts see it: `POST /oauth/token`
/// with a fresh code, then `GET /account` with the new token, each on a new connection like
/// the callout clusters' (one request per connection). Returns both round trips.
pub fn time_standin_exchange(standin: &Standin) -> Result<(Duration, Duration), String> {
    let base = standin.base_url();
    let fresh = || ureq::AgentBuilder::new().redirects(0).max_idle_connections(0).timeout(Duration::from_secs(20)).build();

    let authorize = format!("{base}/oauth/authorize?client_id={CLIENT_ID}&response_type=code&scope=identity");
    let redirect = match fresh().get(&authorize).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(format!("GET {authorize} failed: {error}")),
    };
    let location = redirect.header("location").unwrap_or_default().to_string();
    let code = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("code="))
        .ok_or_else(|| format!("no code in the stand-in's redirect {location:?}"))?
        .to_string();

    let started = Instant::now();
    let token_response = fresh()
        .post(&format!("{base}/oauth/token"))
        .set("accept", "application/json")
        .send_form(&[("grant_type", "authorization_code"), ("code", &code), ("client_secret", CLIENT_SECRET)])
        .map_err(|error| format!("POST /oauth/token failed: {error}"))?;
    let body = token_response.into_string().map_err(|error| format!("cannot read the token response: {error}"))?;
    let token_time = started.elapsed();
    let access_token = json_string_field(&body, "access_token")
        .ok_or_else(|| format!("no access_token in the token response: {body}"))?;

    let started = Instant::now();
    let account = fresh()
        .get(&format!("{base}/account"))
        .set("accept", "application/vnd.heroku+json; version=3")
        .set("authorization", &format!("Bearer {access_token}"))
        .call()
        .map_err(|error| format!("GET /account failed: {error}"))?;
    let _ = account.into_string();
    Ok((token_time, started.elapsed()))
}

/// Reads a plain string field from a flat JSON object, enough for the stand-in's token
/// response, whose values have no escapes.
fn json_string_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    let rest = &json[json.find(&key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn store_cookie(jar: &mut BTreeMap<String, String>, set_cookie: &str) {
    let pair = set_cookie.split(';').next().unwrap_or("");
    let Some((name, value)) = pair.split_once('=') else { return };
    let attributes: Vec<String> = set_cookie.split(';').skip(1).map(|part| part.trim().to_ascii_lowercase()).collect();
    let expired = attributes.iter().any(|attribute| {
        attribute == "max-age=0" || attribute.starts_with("expires=thu, 01 jan 1970")
    });
    if expired || value.trim() == "deleted" {
        jar.remove(name.trim());
    } else {
        jar.insert(name.trim().to_string(), value.trim().to_string());
    }
}

fn origin_of(url: &str) -> String {
    url.split('/').take(3).collect::<Vec<_>>().join("/")
}

fn absolute(origin: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        location.to_string()
    }
}
