//! Requests to Heroku and checks of its responses.
//!
//! The token exchange and refresh go to id.heroku.com's `/oauth/token`, the account and
//! team lookups to api.heroku.com's `/account` and `/teams`. Both responses are untrusted input: each field is checked for
//! type, size and characters before it can reach a cookie or a request header.

use std::fmt;
use std::time::Duration;

use crate::allow::split_email;
use crate::config::Config;
use crate::json::{self, InvalidMember, Json};
use crate::secret::Secret;

/// Maximum callout response body read, in bytes. Token and account responses are under
/// 4 KiB; a `/teams` page of 200 teams is about 100 KiB.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024;

const MAX_TOKEN_BYTES: usize = 1024;
const MAX_USER_ID_BYTES: usize = 128;
const MAX_NAME_CHARS: usize = 256;

/// The first `/teams` page requests Heroku's default page size of 200, which keeps each
/// response well under `MAX_RESPONSE_BYTES`; Heroku's `Next-Range` keeps that size.
const TEAMS_FIRST_RANGE: &str = "id ..; max=200";

const USER_AGENT: &str = concat!("heroku-bouncer-envoy/", env!("CARGO_PKG_VERSION"));

/// An HTTP request for `dispatch_http_call`.
#[derive(Clone)]
pub struct Callout {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl fmt::Debug for Callout {
    /// Shows where the callout goes but not its headers or body, which carry secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.headers.iter().find(|(name, _)| name == ":path").map(|(_, value)| value.as_str());
        f.debug_struct("Callout")
            .field("cluster", &self.cluster)
            .field("path", &path)
            .finish_non_exhaustive()
    }
}

/// A callout's response as Envoy delivered it. `status` is `None` when the call failed without a
/// response (a reset, or a response over Envoy's buffer limit).
#[derive(Debug, Clone, Default)]
pub struct CalloutResponse {
    pub status: Option<u16>,
    pub content_type: Option<String>,
    /// The `Next-Range` header of a partial (206) list response.
    pub next_range: Option<String>,
    pub body: Vec<u8>,
}

/// Builds the authorization code exchange: a form POST to `/oauth/token`.
pub fn token_request(config: &Config, code: &str) -> Callout {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("client_secret", config.client_secret.expose())
        .finish();
    Callout {
        cluster: config.id_cluster.clone(),
        headers: vec![
            (":method".into(), "POST".into()),
            (":path".into(), "/oauth/token".into()),
            (":authority".into(), config.id_authority.clone()),
            ("content-type".into(), "application/x-www-form-urlencoded".into()),
            ("accept".into(), "application/json".into()),
            ("user-agent".into(), USER_AGENT.into()),
        ],
        body: Some(body.into_bytes()),
        timeout: config.callout_timeout,
    }
}

/// Builds a token refresh: a form POST of the refresh token to `/oauth/token`.
pub fn refresh_request(config: &Config, refresh_token: &Secret) -> Callout {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token.expose())
        .append_pair("client_secret", config.client_secret.expose())
        .finish();
    let mut callout = token_request(config, "");
    callout.body = Some(body.into_bytes());
    callout
}

/// Builds the account lookup: `GET /account` with the access token.
pub fn account_request(config: &Config, access_token: &Secret) -> Callout {
    api_get(config, "/account", access_token, None)
}

/// Builds one page of the team lookup: `GET /teams`, from `range` when following a
/// `Next-Range`.
pub fn teams_request(config: &Config, access_token: &Secret, range: Option<&str>) -> Callout {
    api_get(config, "/teams", access_token, Some(range.unwrap_or(TEAMS_FIRST_RANGE)))
}

fn api_get(config: &Config, path: &str, access_token: &Secret, range: Option<&str>) -> Callout {
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), "GET".into()),
        (":path".into(), path.into()),
        (":authority".into(), config.api_authority.clone()),
        ("accept".into(), "application/vnd.heroku+json; version=3".into()),
        ("authorization".into(), format!("Bearer {}", access_token.expose())),
        ("user-agent".into(), USER_AGENT.into()),
    ];
    if let Some(range) = range {
        headers.push(("range".into(), range.into()));
    }
    Callout {
        cluster: config.api_cluster.clone(),
        headers,
        body: None,
        timeout: config.callout_timeout,
    }
}

/// Tokens from a successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in_s: u64,
    pub user_id: Option<String>,
}

/// The account fields the filter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
}

/// The reason a Heroku response was not usable. `Display` never includes the body, which may hold
/// tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// Envoy returned no response: reset, refused with no synthesised reply, or too large.
    NoResponse,
    /// Heroku (or Envoy on its behalf, for timeouts and refused connections) responded with
    /// this non-success status.
    Status(u16),
    /// The status was fine but the content type was not JSON.
    NotJson(String),
    /// The body was not the JSON object expected, or a field failed its check.
    Invalid(&'static str),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NoResponse => f.write_str("no response (reset, or larger than the buffer limit)"),
            AnswerError::Status(status) => write!(f, "status {status}"),
            AnswerError::NotJson(content_type) => write!(f, "content type {content_type:?} is not JSON"),
            AnswerError::Invalid(what) => write!(f, "invalid body: {what}"),
        }
    }
}

/// One page of `GET /teams`: the names and ids of the user's teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsPage {
    pub names_and_ids: Vec<String>,
    /// The start of the next page, when Heroku responded 206 with a `Next-Range`.
    pub next_range: Option<String>,
}

/// Checks a token endpoint response. Heroku responds 200 (not 201) with JSON. A response
/// without `expires_in` gets `default_expires_in_s`.
pub fn parse_tokens(response: &CalloutResponse, default_expires_in_s: u64) -> Result<Tokens, AnswerError> {
    let mut members = json_object(response, &[200])?;
    let access_token = json::take_string(&mut members, "access_token").map_err(unexpected)?;
    let refresh_token = json::take_string(&mut members, "refresh_token").map_err(unexpected)?;
    let expires_in = json::take_unsigned(&mut members, "expires_in").map_err(unexpected)?;
    let token_type = json::take_string(&mut members, "token_type").map_err(unexpected)?;
    let user_id = json::take_string(&mut members, "user_id").map_err(unexpected)?;

    let access_token = access_token.ok_or(AnswerError::Invalid("access_token missing"))?;
    check_token(&access_token, "access_token invalid")?;
    if let Some(refresh) = &refresh_token {
        check_token(refresh, "refresh_token invalid")?;
    }
    if let Some(kind) = &token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(AnswerError::Invalid("token_type is not Bearer"));
        }
    }
    let expires_in_s = expires_in.unwrap_or(default_expires_in_s);
    if expires_in_s == 0 {
        return Err(AnswerError::Invalid("expires_in is 0"));
    }
    if let Some(user_id) = &user_id {
        check_user_id(user_id)?;
    }
    Ok(Tokens {
        access_token: Secret::new(access_token),
        refresh_token: refresh_token.map(Secret::new),
        expires_in_s,
        user_id,
    })
}

/// Checks an `/account` response. The email must be a strict address, since allow rules
/// and the upstream app both rely on it.
pub fn parse_account(response: &CalloutResponse) -> Result<Account, AnswerError> {
    let mut members = json_object(response, &[200])?;
    let id = json::take_string(&mut members, "id").map_err(unexpected)?;
    let email = json::take_string(&mut members, "email").map_err(unexpected)?;
    let name = json::take_string(&mut members, "name").map_err(unexpected)?;

    let id = id.ok_or(AnswerError::Invalid("id missing"))?;
    check_user_id(&id)?;
    let email = email.ok_or(AnswerError::Invalid("email missing"))?;
    if split_email(&email).is_none() {
        return Err(AnswerError::Invalid("email is not a plain address"));
    }
    let name = name.filter(|name| !name.is_empty());
    if name.as_ref().is_some_and(|name| name.chars().count() > MAX_NAME_CHARS) {
        return Err(AnswerError::Invalid("name too long"));
    }
    Ok(Account { id, email, name })
}

/// Checks a `/teams` response: 200 for a whole list, 206 with `Next-Range` for a part.
pub fn parse_teams(response: &CalloutResponse) -> Result<TeamsPage, AnswerError> {
    let Json::Array(teams) = json_body(response, &[200, 206])? else {
        return Err(unexpected(InvalidMember));
    };
    let mut names_and_ids = Vec::new();
    for team in teams {
        let mut members = team.into_object().ok_or(unexpected(InvalidMember))?;
        let name = json::take_string(&mut members, "name").map_err(unexpected)?;
        let id = json::take_string(&mut members, "id").map_err(unexpected)?;
        names_and_ids.extend([name, id].into_iter().flatten().filter(|text| !text.is_empty()));
    }
    let next_range = match response.status {
        Some(206) => response.next_range.clone().filter(|range| !range.trim().is_empty()),
        _ => None,
    };
    Ok(TeamsPage { names_and_ids, next_range })
}

/// Checks the status and content type, then parses the body.
fn json_body(response: &CalloutResponse, expected: &[u16]) -> Result<Json, AnswerError> {
    let status = response.status.ok_or(AnswerError::NoResponse)?;
    if !expected.contains(&status) {
        return Err(AnswerError::Status(status));
    }
    let content_type = response.content_type.as_deref().unwrap_or("");
    if !is_json_content_type(content_type) {
        return Err(AnswerError::NotJson(content_type.chars().take(64).collect()));
    }
    json::parse(&response.body).map_err(|_| unexpected(InvalidMember))
}

/// Returns the members of a body that must be a JSON object.
fn json_object(response: &CalloutResponse, expected: &[u16]) -> Result<Vec<(String, Json)>, AnswerError> {
    json_body(response, expected)?.into_object().ok_or(unexpected(InvalidMember))
}

/// Maps a body that does not have the expected shape, or a member of the wrong type or
/// repeated, to one error, as its details do not help an operator.
fn unexpected(_: InvalidMember) -> AnswerError {
    AnswerError::Invalid("not the expected JSON object")
}

/// Accepts `application/json` and `application/*+json`, with any parameters.
fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn check_token(token: &str, problem: &'static str) -> Result<(), AnswerError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(AnswerError::Invalid(problem));
    }
    Ok(())
}

fn check_user_id(id: &str) -> Result<(), AnswerError> {
    if id.is_empty() || id.len() > MAX_USER_ID_BYTES || !id.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(AnswerError::Invalid("user id invalid"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let json = r#"{"client_id":"id","client_secret":"s3cr&t=x","secret_key":"0123456789abcdef0123456789abcdef",
                       "id_authority":"id.example","api_authority":"api.example","callout_timeout_ms":1234}"#;
        crate::config::parse(json.as_bytes(), &|_| None).unwrap()
    }

    const DEFAULT_EXPIRES_IN_S: u64 = 28_800;

    fn json(status: u16, body: &str) -> CalloutResponse {
        CalloutResponse {
            status: Some(status),
            content_type: Some("application/json; charset=utf-8".into()),
            next_range: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn parse_tokens(response: &CalloutResponse) -> Result<Tokens, AnswerError> {
        super::parse_tokens(response, DEFAULT_EXPIRES_IN_S)
    }

    #[test]
    fn refresh_request_posts_refresh_token() {
        let callout = refresh_request(&config(), &Secret::new("HRKU-refresh"));
        assert_eq!(header(&callout, ":path"), Some("/oauth/token"));
        let body = String::from_utf8(callout.body.unwrap()).unwrap();
        assert_eq!(body, "grant_type=refresh_token&refresh_token=HRKU-refresh&client_secret=s3cr%26t%3Dx");
    }

    #[test]
    fn teams_request_asks_for_large_pages() {
        let first = teams_request(&config(), &Secret::new("t"), None);
        assert_eq!(header(&first, ":path"), Some("/teams"));
        assert_eq!(header(&first, "range"), Some("id ..; max=200"));
        let next = teams_request(&config(), &Secret::new("t"), Some("id ]abc..; max=1000"));
        assert_eq!(header(&next, "range"), Some("id ]abc..; max=1000"));
    }

    #[test]
    fn teams_pages_parse() {
        let body = r#"[{"id":"t-1","name":"platform","role":"member"},{"id":"t-2","name":null}]"#;
        let page = parse_teams(&json(200, body)).unwrap();
        assert_eq!(page.names_and_ids, vec!["platform", "t-1", "t-2"]);
        assert_eq!(page.next_range, None);

        let mut partial = json(206, "[]");
        partial.next_range = Some("id ]t-2..; max=1000".into());
        assert_eq!(parse_teams(&partial).unwrap().next_range.as_deref(), Some("id ]t-2..; max=1000"));

        let forbidden = json(403, r#"{"id":"forbidden","message":"The scope of this OAuth authorization does not allow access to this resource."}"#);
        assert_eq!(parse_teams(&forbidden), Err(AnswerError::Status(403)));
        assert!(parse_teams(&json(200, "{}")).is_err());
        assert!(parse_teams(&json(200, "[5]")).is_err());
        assert!(parse_teams(&json(200, r#"[{"id":"t-1","name":7}]"#)).is_err());
    }

    fn header<'a>(callout: &'a Callout, name: &str) -> Option<&'a str> {
        callout.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    const TOKEN_BODY: &str = r#"{"access_token":"HRKU-01234567-89ab-cdef-0123-456789abcdef","expires_in":28799,
        "refresh_token":"01234567-89ab-cdef-0123-456789abcdef","token_type":"Bearer",
        "user_id":"01234567-89ab-cdef-0123-456789abcdef","session_nonce":null}"#;

    #[test]
    fn token_request_is_form_post() {
        let callout = token_request(&config(), "co de&=");
        assert_eq!(callout.cluster, "heroku_id");
        assert_eq!(header(&callout, ":method"), Some("POST"));
        assert_eq!(header(&callout, ":path"), Some("/oauth/token"));
        assert_eq!(header(&callout, ":authority"), Some("id.example"));
        assert_eq!(header(&callout, "content-type"), Some("application/x-www-form-urlencoded"));
        let body = String::from_utf8(callout.body.unwrap()).unwrap();
        assert_eq!(body, "grant_type=authorization_code&code=co+de%26%3D&client_secret=s3cr%26t%3Dx");
        assert_eq!(callout.timeout, Duration::from_millis(1234));
    }

    #[test]
    fn account_request_sends_bearer_and_version() {
        let callout = account_request(&config(), &Secret::new("HRKU-abc"));
        assert_eq!(callout.cluster, "heroku_api");
        assert_eq!(header(&callout, ":method"), Some("GET"));
        assert_eq!(header(&callout, ":path"), Some("/account"));
        assert_eq!(header(&callout, ":authority"), Some("api.example"));
        assert_eq!(header(&callout, "authorization"), Some("Bearer HRKU-abc"));
        assert_eq!(header(&callout, "accept"), Some("application/vnd.heroku+json; version=3"));
    }

    #[test]
    fn callout_debug_hides_secrets() {
        let printed = format!("{:?}", account_request(&config(), &Secret::new("HRKU-abc")));
        assert!(!printed.contains("HRKU"), "{printed}");
        let printed = format!("{:?}", token_request(&config(), "code"));
        assert!(!printed.contains("s3cr"), "{printed}");
    }

    #[test]
    fn token_response_parses() {
        let tokens = parse_tokens(&json(200, TOKEN_BODY)).unwrap();
        assert_eq!(tokens.access_token.expose(), "HRKU-01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(tokens.expires_in_s, 28799);
        assert!(tokens.refresh_token.is_some());
    }

    #[test]
    fn token_response_defaults_expiry() {
        let tokens = parse_tokens(&json(200, r#"{"access_token":"t"}"#)).unwrap();
        assert_eq!(tokens.expires_in_s, DEFAULT_EXPIRES_IN_S);
        assert_eq!(tokens.refresh_token, None);
    }

    #[test]
    fn token_response_failures() {
        let cases = [
            (json(401, r#"{"id":"unauthorized","message":"OAuth authorization invalid."}"#), AnswerError::Status(401)),
            (json(201, TOKEN_BODY), AnswerError::Status(201)),
            (CalloutResponse::default(), AnswerError::NoResponse),
            (json(200, r#"{"access_token":"#), AnswerError::Invalid("not the expected JSON object")),
            (json(200, r#"[]"#), AnswerError::Invalid("not the expected JSON object")),
            (json(200, r#"{}"#), AnswerError::Invalid("access_token missing")),
            (json(200, r#"{"access_token":""}"#), AnswerError::Invalid("access_token invalid")),
            (json(200, r#"{"access_token":"a\r\nb"}"#), AnswerError::Invalid("access_token invalid")),
            (json(200, r#"{"access_token":5}"#), AnswerError::Invalid("not the expected JSON object")),
            (json(200, r#"{"access_token":"t","expires_in":-5}"#), AnswerError::Invalid("not the expected JSON object")),
            (json(200, r#"{"access_token":"t","expires_in":0}"#), AnswerError::Invalid("expires_in is 0")),
            (json(200, r#"{"access_token":"t","token_type":"mac"}"#), AnswerError::Invalid("token_type is not Bearer")),
            (json(200, r#"{"access_token":"t","access_token":"u"}"#), AnswerError::Invalid("not the expected JSON object")),
            (json(200, r#"{"access_token":"t","user_id":5}"#), AnswerError::Invalid("not the expected JSON object")),
            (json(200, r#"{"access_token":"t","expires_in":1.5}"#), AnswerError::Invalid("not the expected JSON object")),
        ];
        for (response, expected) in cases {
            assert_eq!(parse_tokens(&response), Err(expected), "{:?}", String::from_utf8_lossy(&response.body));
        }
    }

    #[test]
    fn wrong_content_type_is_rejected() {
        let mut response = json(200, TOKEN_BODY);
        response.content_type = Some("text/html".into());
        assert_eq!(parse_tokens(&response), Err(AnswerError::NotJson("text/html".into())));
        response.content_type = None;
        assert!(matches!(parse_tokens(&response), Err(AnswerError::NotJson(_))));
        response.content_type = Some("application/vnd.heroku+json; version=3".into());
        assert!(parse_tokens(&response).is_ok());
    }

    #[test]
    fn account_response_parses() {
        let body = r#"{"allow_tracking":true,"email":"ada@example.com","id":"0123","name":"Ada Lovelace","default_team":null}"#;
        let account = parse_account(&json(200, body)).unwrap();
        assert_eq!(account, Account { id: "0123".into(), email: "ada@example.com".into(), name: Some("Ada Lovelace".into()) });
        let nameless = parse_account(&json(200, r#"{"email":"ada@example.com","id":"0123","name":null}"#)).unwrap();
        assert_eq!(nameless.name, None);
    }

    #[test]
    fn account_response_failures() {
        let cases = [
            (json(401, r#"{"id":"unauthorized","message":"Invalid credentials provided."}"#), AnswerError::Status(401)),
            (json(429, r#"{"id":"rate_limit","message":"Your account reached the API rate limit"}"#), AnswerError::Status(429)),
            (json(200, r#"{"id":"0123"}"#), AnswerError::Invalid("email missing")),
            (json(200, r#"{"email":"ada@example.com"}"#), AnswerError::Invalid("id missing")),
            (json(200, r#"{"email":"ada@x.com\r\nx-evil: 1","id":"0123"}"#), AnswerError::Invalid("email is not a plain address")),
            (json(200, r#"{"email":"a@b@c.com","id":"0123"}"#), AnswerError::Invalid("email is not a plain address")),
            (json(200, r#"{"email":"ada@example.com","id":"01 23"}"#), AnswerError::Invalid("user id invalid")),
        ];
        for (response, expected) in cases {
            assert_eq!(parse_account(&response), Err(expected), "{:?}", String::from_utf8_lossy(&response.body));
        }
    }
}
