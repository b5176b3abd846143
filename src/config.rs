//! Plugin configuration: the JSON that Envoy passes to `on_configure`, checked once.
//!
//! Every key has a default except the three credentials, which fall back to environment
//! variables. Anything unknown, mistyped or unsafe is an error, so a typo can never turn
//! the gate off.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::allow::AllowRule;
use crate::json::Json;
use crate::pages::{Pages, ALL_NOTICES};
use crate::secret::Secret;

mod decode;

/// Environment variables read when the matching key is absent from the JSON.
pub const ENV_CLIENT_ID: &str = "HEROKU_OAUTH_ID";
pub const ENV_CLIENT_SECRET: &str = "HEROKU_OAUTH_SECRET";
pub const ENV_SECRET_KEY: &str = "SECRET_KEY";
/// Previous secret keys, comma-separated, read when `previous_secret_keys` is absent.
pub const ENV_SECRET_KEY_PREVIOUS: &str = "SECRET_KEY_PREVIOUS";

/// The shortest `secret_key` accepted, in bytes. HKDF stretches it, but it cannot add
/// entropy that the key never had.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// The maximum callout timeout accepted. Envoy reads 0 as "no timeout", which would let a
/// hung Heroku connection hold requests forever, so 0 is rejected too.
const MAX_CALLOUT_TIMEOUT_MS: u64 = 60_000;

/// Names of the request headers that carry the user's identity to the upstream app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub email: String,
    pub id: String,
    pub name: String,
    pub token: String,
}

impl IdentityHeaders {
    /// Returns every configured identity header name.
    pub fn all(&self) -> [&str; 4] {
        [&self.email, &self.id, &self.name, &self.token]
    }
}

/// A `skip_paths` entry: an exact path, or a prefix when written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
}

impl PathPattern {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(exact) => path == exact,
            PathPattern::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }
}

/// The checked plugin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub client_id: String,
    pub client_secret: Secret,
    pub secret_key: Secret,
    /// Keys that cookies may still be sealed with. They are accepted and re-sealed with
    /// `secret_key`, so a fleet can roll a new key without logging anyone out.
    pub previous_secret_keys: Vec<Secret>,
    pub scope: String,
    pub callback_path: String,
    pub cookie_name: String,
    pub forbidden_path: String,
    pub forbidden_passthrough: bool,
    pub logout_path: String,
    pub allow: AllowRule,
    pub skip_paths: Vec<PathPattern>,
    pub headers: IdentityHeaders,
    pub expose_token: bool,
    pub authorize_url: String,
    pub id_cluster: String,
    pub id_authority: String,
    pub api_cluster: String,
    pub api_authority: String,
    pub callout_timeout: Duration,
    pub pages: Pages,
    /// Refresh the access token before it expires, while a refresh token is available.
    pub refresh: bool,
    /// How long before the access token expires a request triggers a refresh, in seconds.
    pub refresh_margin_s: u64,
    /// Seconds after login when the session ends, regardless of its token expiry.
    pub session_max_age_s: u64,
    /// Access token lifetime assumed when Heroku's token response has no `expires_in`.
    pub default_expires_in_s: u64,
}

/// A rejected configuration's key and reason. `Display` names the key, the offending value when it
/// is not secret, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid plugin configuration at \"{}\": {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The JSON as written by the operator, decoded by [`RawConfig::decode`]. Credentials are
/// plain `Json` values so that a wrongly typed secret produces an error message without the
/// value in it.
///
/// With the `schema` feature, this type also generates `docs/config.schema.json`: the doc
/// comments become descriptions, and the `schemars` attributes state defaults and limits
/// that `parse` enforces. The schema checks less than `parse` does (reserved header names,
/// distinct paths, key lengths in bytes), so a valid document can still be rejected.
#[derive(Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "heroku-bouncer plugin configuration", deny_unknown_fields))]
pub(crate) struct RawConfig {
    /// The Heroku OAuth client id. Without it, the HEROKU_OAUTH_ID environment variable.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    client_id: Option<Json>,
    /// The OAuth client secret. Without it, the HEROKU_OAUTH_SECRET environment variable.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    client_secret: Option<Json>,
    /// At least 32 bytes, from which the cookie keys are derived. Without it, the SECRET_KEY variable.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    secret_key: Option<Json>,
    /// Keys of at least 32 bytes that older cookies may be sealed with. Without it, SECRET_KEY_PREVIOUS.
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    previous_secret_keys: Option<Json>,
    /// Scopes requested at Heroku's authorize page, separated by spaces.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "identity")))]
    scope: Option<String>,
    /// The OAuth callback path, starting and ending with "/".
    #[cfg_attr(feature = "schema", schemars(extend("default" = "/auth/heroku/callback/"), pattern(ROUTE_PATH_PATTERN)))]
    path: Option<String>,
    /// Name of the session cookie; login state cookies are named "<cookie>-state-<id>".
    #[cfg_attr(feature = "schema", schemars(extend("default" = "herokuoauthsess"), pattern(r"^[A-Za-z0-9_-]{1,64}$")))]
    cookie: Option<String>,
    /// Path that users outside the allow rule are redirected to.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "/auth/heroku/forbidden/"), pattern(ROUTE_PATH_PATTERN)))]
    forbidden_path: Option<String>,
    /// Send requests for forbidden_path to the app instead of the filter's 403 page.
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    forbidden_passthrough: Option<bool>,
    /// Clears the session and redirects to "/".
    #[cfg_attr(feature = "schema", schemars(extend("default" = "/auth/heroku/logout/"), pattern(ROUTE_PATH_PATTERN)))]
    logout_path: Option<String>,
    /// Allow rule. Empty lets every Heroku user in; otherwise a user who matches any list.
    #[cfg_attr(feature = "schema", schemars(extend("default" = {})))]
    allow: Option<RawAllow>,
    /// Same as adding "heroku.com" to allow.email_domains.
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    herokai_only: Option<bool>,
    /// Paths that need no login: exact, or a prefix when the entry ends with "*".
    #[cfg_attr(feature = "schema", schemars(extend("default" = []), inner(pattern(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*\*?$"))))]
    skip_paths: Option<Vec<String>>,
    /// Names of the request headers that carry the identity to the app.
    #[cfg_attr(feature = "schema", schemars(extend("default" = {})))]
    headers: Option<RawHeaders>,
    /// Also send the user's Heroku access token to the app.
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    expose_token: Option<bool>,
    /// Heroku's authorize page; http:// only for 127.0.0.1, localhost or [::1].
    #[cfg_attr(
        feature = "schema",
        schemars(
            extend("default" = "https://id.heroku.com/oauth/authorize"),
            pattern(r"^(https://[^/#]|http://127\.0\.0\.1[:/]|http://localhost[:/]|http://\[::1\]:)[^#\s]*$")
        )
    )]
    authorize_url: Option<String>,
    /// Envoy cluster for the token exchange at id.heroku.com.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "heroku_id"), pattern(NAME_PATTERN)))]
    id_cluster: Option<String>,
    /// The :authority of requests to id_cluster.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "id.heroku.com"), pattern(NAME_PATTERN)))]
    id_authority: Option<String>,
    /// Envoy cluster for Heroku's platform API (account and teams).
    #[cfg_attr(feature = "schema", schemars(extend("default" = "heroku_api"), pattern(NAME_PATTERN)))]
    api_cluster: Option<String>,
    /// The :authority of requests to api_cluster.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "api.heroku.com"), pattern(NAME_PATTERN)))]
    api_authority: Option<String>,
    /// Timeout of each call to Heroku, in milliseconds.
    #[cfg_attr(feature = "schema", schemars(extend("default" = 5000), range(min = 1, max = MAX_CALLOUT_TIMEOUT_MS)))]
    callout_timeout_ms: Option<u64>,
    /// Replacement HTML for the filter's pages, by page name; "{{action_url}}" becomes the page's link.
    #[cfg_attr(feature = "schema", schemars(extend("default" = {})))]
    pages: Option<BTreeMap<String, String>>,
    /// Refresh the access token before it expires, while a refresh token is available.
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    refresh: Option<bool>,
    /// A request whose access token expires within this many seconds triggers a refresh.
    #[cfg_attr(feature = "schema", schemars(extend("default" = 600), range(min = 0, max = 86_400)))]
    refresh_margin_s: Option<u64>,
    /// Seconds after login when the session ends, regardless of its token expiry.
    #[cfg_attr(feature = "schema", schemars(extend("default" = 604_800), range(min = 1, max = 31_536_000)))]
    session_max_age_s: Option<u64>,
    /// Token lifetime in seconds, assumed when Heroku's token response has no expires_in.
    #[cfg_attr(feature = "schema", schemars(extend("default" = 28_800), range(min = 60, max = 31_536_000)))]
    default_expires_in_s: Option<u64>,
}

/// Schema patterns that mirror `route_path` and `non_empty`.
#[cfg(feature = "schema")]
const ROUTE_PATH_PATTERN: &str = r"^/[A-Za-z0-9._~!$&'()+,;=:@%-][A-Za-z0-9._~!$&'()+,;=:@%/-]*/$";
#[cfg(feature = "schema")]
const NAME_PATTERN: &str = r"^[!-~]+$";

#[derive(Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline, deny_unknown_fields))]
struct RawAllow {
    /// Email addresses, matched case-insensitively.
    #[cfg_attr(feature = "schema", schemars(default))]
    emails: Vec<String>,
    /// Email domains, matched exactly and case-insensitively ("heroku.com" does not admit "x.heroku.com").
    #[cfg_attr(feature = "schema", schemars(default))]
    email_domains: Vec<String>,
    /// Heroku team names or ids, read from Heroku at login and at every refresh.
    #[cfg_attr(feature = "schema", schemars(default))]
    teams: Vec<String>,
}

#[derive(Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline, deny_unknown_fields))]
struct RawHeaders {
    /// Header for the account email.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "x-heroku-user-email"), pattern(HEADER_PATTERN)))]
    email: Option<String>,
    /// Header for the Heroku account id.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "x-heroku-user-id"), pattern(HEADER_PATTERN)))]
    id: Option<String>,
    /// Header for the account name, percent-encoded where needed.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "x-heroku-user-name"), pattern(HEADER_PATTERN)))]
    name: Option<String>,
    /// Header for the access token, sent only with expose_token.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "x-heroku-oauth-token"), pattern(HEADER_PATTERN)))]
    token: Option<String>,
}

/// Mirrors `header_name`, before it lowercases the name.
#[cfg(feature = "schema")]
const HEADER_PATTERN: &str = r"^[A-Za-z0-9_-]+$";

/// Parses and checks the plugin configuration.
///
/// `json` is the configuration as Envoy delivers it, where empty means `{}`. `env` looks up
/// an environment variable: the filter passes `std::env::var`, and tests pass a map.
pub fn parse(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let raw = decode::parse_json(json)?;

    let client_id = credential(raw.client_id, "client_id", ENV_CLIENT_ID, env)?;
    let client_secret = credential(raw.client_secret, "client_secret", ENV_CLIENT_SECRET, env)?;
    let secret_key = credential(raw.secret_key, "secret_key", ENV_SECRET_KEY, env)?;
    if secret_key.len() < MIN_SECRET_KEY_BYTES {
        return Err(ConfigError::new(
            "secret_key",
            format!(
                "the key has {} bytes but at least {MIN_SECRET_KEY_BYTES} are required; \
                 generate one with `openssl rand -hex 32`",
                secret_key.len()
            ),
        ));
    }

    let previous_secret_keys = previous_keys(raw.previous_secret_keys, env)?;

    let scope = raw.scope.unwrap_or_else(|| "identity".to_string());
    if scope.trim().is_empty() || !scope.bytes().all(is_visible_ascii_or_space) {
        return Err(ConfigError::new(
            "scope",
            format!("{scope:?} is not a valid scope list; use names such as \"identity\""),
        ));
    }

    let callback_path = route_path(raw.path, "path", "/auth/heroku/callback/")?;
    let forbidden_path = route_path(raw.forbidden_path, "forbidden_path", "/auth/heroku/forbidden/")?;
    let logout_path = route_path(raw.logout_path, "logout_path", "/auth/heroku/logout/")?;
    distinct_paths(&callback_path, &forbidden_path, &logout_path)?;

    let cookie_name = raw.cookie.unwrap_or_else(|| "herokuoauthsess".to_string());
    if cookie_name.is_empty() || cookie_name.len() > 64 || !cookie_name.bytes().all(is_cookie_name_byte) {
        return Err(ConfigError::new(
            "cookie",
            format!("{cookie_name:?} is not a valid cookie name; use letters, digits, '-' or '_'"),
        ));
    }

    let allow = allow_rule(raw.allow.unwrap_or_default(), raw.herokai_only.unwrap_or(false))?;
    let skip_paths = skip_patterns(raw.skip_paths.unwrap_or_default())?;
    let headers = identity_headers(raw.headers.unwrap_or_default())?;

    let authorize_url = raw
        .authorize_url
        .unwrap_or_else(|| "https://id.heroku.com/oauth/authorize".to_string());
    check_authorize_url(&authorize_url)?;

    let id_cluster = non_empty(raw.id_cluster, "id_cluster", "heroku_id")?;
    let id_authority = non_empty(raw.id_authority, "id_authority", "id.heroku.com")?;
    let api_cluster = non_empty(raw.api_cluster, "api_cluster", "heroku_api")?;
    let api_authority = non_empty(raw.api_authority, "api_authority", "api.heroku.com")?;

    let timeout_ms = raw.callout_timeout_ms.unwrap_or(5000);
    if timeout_ms == 0 || timeout_ms > MAX_CALLOUT_TIMEOUT_MS {
        return Err(ConfigError::new(
            "callout_timeout_ms",
            format!("{timeout_ms} is out of range; use 1 to {MAX_CALLOUT_TIMEOUT_MS} milliseconds"),
        ));
    }

    let pages = custom_pages(raw.pages.unwrap_or_default())?;

    let session_max_age_s = in_range(raw.session_max_age_s, "session_max_age_s", 604_800, 1..=31_536_000)?;
    let refresh_margin_s = in_range(raw.refresh_margin_s, "refresh_margin_s", 600, 0..=86_400)?;
    let default_expires_in_s = in_range(raw.default_expires_in_s, "default_expires_in_s", 28_800, 60..=31_536_000)?;

    Ok(Config {
        client_id: client_id.expose().to_string(),
        client_secret,
        secret_key,
        scope,
        callback_path,
        cookie_name,
        forbidden_path,
        forbidden_passthrough: raw.forbidden_passthrough.unwrap_or(false),
        logout_path,
        allow,
        skip_paths,
        headers,
        expose_token: raw.expose_token.unwrap_or(false),
        authorize_url,
        id_cluster,
        id_authority,
        api_cluster,
        api_authority,
        callout_timeout: Duration::from_millis(timeout_ms),
        pages,
        previous_secret_keys,
        refresh: raw.refresh.unwrap_or(true),
        refresh_margin_s,
        session_max_age_s,
        default_expires_in_s,
    })
}

/// Reads `previous_secret_keys`, or else the comma-separated `SECRET_KEY_PREVIOUS`. No key
/// appears in an error message.
fn previous_keys(value: Option<Json>, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Secret>, ConfigError> {
    let keys: Vec<String> = match value {
        Some(Json::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Json::String(key) => Ok(key),
                _ => Err(ConfigError::new("previous_secret_keys", "every entry must be a JSON string")),
            })
            .collect::<Result<_, _>>()?,
        Some(Json::Null) | None => env(ENV_SECRET_KEY_PREVIOUS)
            .map(|list| list.split(',').map(|key| key.trim().to_string()).filter(|key| !key.is_empty()).collect())
            .unwrap_or_default(),
        Some(_) => return Err(ConfigError::new("previous_secret_keys", "the value must be a JSON array of strings")),
    };
    keys.into_iter()
        .enumerate()
        .map(|(index, key)| {
            if key.len() < MIN_SECRET_KEY_BYTES {
                return Err(ConfigError::new(
                    "previous_secret_keys",
                    format!(
                        "entry {index} has {} bytes but at least {MIN_SECRET_KEY_BYTES} are required",
                        key.len()
                    ),
                ));
            }
            Ok(Secret::new(key))
        })
        .collect()
}

fn in_range(
    value: Option<u64>,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let number = value.unwrap_or(default);
    if range.contains(&number) {
        Ok(number)
    } else {
        Err(ConfigError::new(
            key,
            format!("{number} is out of range; use {} to {} seconds", range.start(), range.end()),
        ))
    }
}

/// Reads the operator's replacement pages, keyed by page name.
fn custom_pages(entries: BTreeMap<String, String>) -> Result<Pages, ConfigError> {
    let mut pages = Pages::default();
    for (key, html) in entries {
        let notice = ALL_NOTICES.iter().copied().find(|notice| notice.config_key() == Some(key.as_str()));
        let Some(notice) = notice else {
            let known: Vec<&str> = ALL_NOTICES.iter().filter_map(|notice| notice.config_key()).collect();
            return Err(ConfigError::new(
                "pages",
                format!("{key:?} is not a page name; use one of {}", known.join(", ")),
            ));
        };
        if html.trim().is_empty() {
            return Err(ConfigError::new(&format!("pages.{key}"), "the page is empty; give the HTML to show"));
        }
        pages.replace(notice, html);
    }
    Ok(pages)
}

/// Takes a credential from the JSON, or else from the environment. The value never
/// appears in an error message.
fn credential(
    value: Option<Json>,
    key: &str,
    env_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let from_json = match value {
        None | Some(Json::Null) => None,
        Some(Json::String(text)) => Some(text),
        Some(_) => {
            return Err(ConfigError::new(key, "the value must be a JSON string"));
        }
    };
    let found = from_json.or_else(|| env(env_name)).filter(|text| !text.trim().is_empty());
    found.map(Secret::new).ok_or_else(|| {
        ConfigError::new(
            key,
            format!(
                "missing; set \"{key}\" in the plugin configuration or {env_name} in the VM's \
                 environment_variables"
            ),
        )
    })
}

fn route_path(value: Option<String>, key: &str, default: &str) -> Result<String, ConfigError> {
    let path = value.unwrap_or_else(|| default.to_string());
    let well_formed = path.len() >= 2
        && path.starts_with('/')
        && path.ends_with('/')
        && !path.starts_with("//")
        && path.bytes().all(is_path_byte);
    if well_formed {
        Ok(path)
    } else {
        Err(ConfigError::new(
            key,
            format!("{path:?} must start and end with \"/\" and contain only URL path characters, like {default:?}"),
        ))
    }
}

fn distinct_paths(callback: &str, forbidden: &str, logout: &str) -> Result<(), ConfigError> {
    let clash = if callback == forbidden {
        Some("forbidden_path")
    } else if logout == callback || logout == forbidden {
        Some("logout_path")
    } else {
        None
    };
    match clash {
        Some(key) => Err(ConfigError::new(
            key,
            "\"path\", \"forbidden_path\" and \"logout_path\" must all differ",
        )),
        None => Ok(()),
    }
}

fn allow_rule(raw: RawAllow, herokai_only: bool) -> Result<AllowRule, ConfigError> {
    let mut domains = raw.email_domains;
    if herokai_only {
        domains.push("heroku.com".to_string());
    }
    AllowRule::new(&raw.emails, &domains, &raw.teams).map_err(|(key, message)| ConfigError::new(key, message))
}

fn skip_patterns(entries: Vec<String>) -> Result<Vec<PathPattern>, ConfigError> {
    entries
        .into_iter()
        .map(|entry| {
            let body = entry.strip_suffix('*').unwrap_or(&entry);
            let valid = body.starts_with('/') && !body.contains('*') && body.bytes().all(is_path_byte);
            if !valid {
                return Err(ConfigError::new(
                    "skip_paths",
                    format!("{entry:?} must be a path starting with \"/\", with at most one \"*\" at the end"),
                ));
            }
            Ok(if entry.ends_with('*') {
                PathPattern::Prefix(body.to_string())
            } else {
                PathPattern::Exact(entry)
            })
        })
        .collect()
}

fn identity_headers(raw: RawHeaders) -> Result<IdentityHeaders, ConfigError> {
    let headers = IdentityHeaders {
        email: header_name(raw.email, "headers.email", "x-heroku-user-email")?,
        id: header_name(raw.id, "headers.id", "x-heroku-user-id")?,
        name: header_name(raw.name, "headers.name", "x-heroku-user-name")?,
        token: header_name(raw.token, "headers.token", "x-heroku-oauth-token")?,
    };
    let names = headers.all();
    for (index, name) in names.iter().enumerate() {
        let spelled = crate::headers::canonical_name(name.as_bytes());
        let repeated = names
            .iter()
            .skip(index + 1)
            .any(|other| crate::headers::canonical_name(other.as_bytes()) == spelled);
        if repeated {
            return Err(ConfigError::new(
                "headers",
                format!("{name:?} is used for two identity values; give each its own header"),
            ));
        }
    }
    Ok(headers)
}

fn header_name(value: Option<String>, key: &str, default: &str) -> Result<String, ConfigError> {
    let name = value.unwrap_or_else(|| default.to_string()).to_ascii_lowercase();
    let reserved = matches!(
        name.as_str(),
        "cookie" | "host" | "authorization" | "content-length" | "transfer-encoding" | "connection"
    );
    if name.is_empty() || reserved || !name.bytes().all(is_header_name_byte) {
        return Err(ConfigError::new(
            key,
            format!("{name:?} is not usable as an identity header name; use a name like {default:?}"),
        ));
    }
    Ok(name)
}

/// Accepts `https://` URLs, and `http://` only for loopback hosts used in development.
fn check_authorize_url(url: &str) -> Result<(), ConfigError> {
    let loopback = ["http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/", "http://[::1]:"];
    let scheme_ok = url.starts_with("https://") || loopback.iter().any(|prefix| url.starts_with(prefix));
    let host_present = url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if scheme_ok && host_present && !url.contains('#') && url.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "authorize_url",
            format!("{url:?} must be an https:// URL (http:// only for 127.0.0.1 or localhost) without a fragment"),
        ))
    }
}

fn non_empty(value: Option<String>, key: &str, default: &str) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_string());
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ConfigError::new(
            key,
            format!("{text:?} must be a non-empty name without spaces, like {default:?}"),
        ));
    }
    Ok(text)
}

fn is_visible_ascii_or_space(byte: u8) -> bool {
    byte == b' ' || byte.is_ascii_graphic()
}

fn is_cookie_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
}

/// Unreserved and sub-delimiter characters of RFC 3986, plus '/', ':', '@' and '%'.
fn is_path_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@/%".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    fn with_credentials(extra: &str) -> String {
        let separator = if extra.is_empty() { "" } else { "," };
        format!(r#"{{"client_id":"id","client_secret":"shh-secret","secret_key":"{KEY}"{separator}{extra}}}"#)
    }

    fn parse_ok(json: &str) -> Config {
        parse(json.as_bytes(), &env_from(&[])).unwrap()
    }

    fn parse_err(json: &str) -> ConfigError {
        parse(json.as_bytes(), &env_from(&[])).unwrap_err()
    }

    #[test]
    fn defaults_match_python_edition() {
        let config = parse_ok(&with_credentials(""));
        assert_eq!(config.scope, "identity");
        assert_eq!(config.callback_path, "/auth/heroku/callback/");
        assert_eq!(config.cookie_name, "herokuoauthsess");
        assert_eq!(config.forbidden_path, "/auth/heroku/forbidden/");
        assert!(!config.forbidden_passthrough);
        assert_eq!(config.logout_path, "/auth/heroku/logout/");
        assert!(config.allow.allows_everyone());
        assert!(config.skip_paths.is_empty());
        assert_eq!(config.headers.email, "x-heroku-user-email");
        assert_eq!(config.headers.id, "x-heroku-user-id");
        assert_eq!(config.headers.name, "x-heroku-user-name");
        assert_eq!(config.headers.token, "x-heroku-oauth-token");
        assert!(!config.expose_token);
        assert_eq!(config.authorize_url, "https://id.heroku.com/oauth/authorize");
        assert_eq!(config.id_cluster, "heroku_id");
        assert_eq!(config.id_authority, "id.heroku.com");
        assert_eq!(config.api_cluster, "heroku_api");
        assert_eq!(config.api_authority, "api.heroku.com");
        assert_eq!(config.callout_timeout, Duration::from_millis(5000));
    }

    #[test]
    fn credentials_come_from_environment() {
        let env = env_from(&[
            (ENV_CLIENT_ID, "env-id"),
            (ENV_CLIENT_SECRET, "env-secret"),
            (ENV_SECRET_KEY, KEY),
        ]);
        let config = parse(b"", &env).unwrap();
        assert_eq!(config.client_id, "env-id");
        assert_eq!(config.client_secret.expose(), "env-secret");
        assert_eq!(config.secret_key.expose(), KEY);
    }

    #[test]
    fn json_credentials_win_over_environment() {
        let env = env_from(&[(ENV_CLIENT_ID, "env-id")]);
        let config = parse(with_credentials("").as_bytes(), &env).unwrap();
        assert_eq!(config.client_id, "id");
    }

    #[test]
    fn missing_credentials_are_rejected() {
        for (key, env_name) in [
            ("client_id", ENV_CLIENT_ID),
            ("client_secret", ENV_CLIENT_SECRET),
            ("secret_key", ENV_SECRET_KEY),
        ] {
            let mut value: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&with_credentials("")).unwrap();
            value.remove(key);
            let error = parse_err(&serde_json::Value::Object(value).to_string());
            assert_eq!(error.key, key);
            assert!(error.to_string().contains(env_name), "{error}");
        }
    }

    #[test]
    fn empty_credential_counts_as_missing() {
        let json = format!(r#"{{"client_id":" ","client_secret":"s","secret_key":"{KEY}"}}"#);
        assert_eq!(parse_err(&json).key, "client_id");
    }

    #[test]
    fn short_secret_key_is_rejected_without_echo() {
        let json = r#"{"client_id":"id","client_secret":"s","secret_key":"short-key-value"}"#;
        let error = parse_err(json);
        assert_eq!(error.key, "secret_key");
        assert!(error.to_string().contains("15 bytes"), "{error}");
        assert!(!error.to_string().contains("short-key-value"));
    }

    #[test]
    fn mistyped_secret_is_rejected_without_echo() {
        let json = format!(r#"{{"client_id":"id","client_secret":123456789,"secret_key":"{KEY}"}}"#);
        let error = parse_err(&json);
        assert_eq!(error.key, "client_secret");
        assert!(!error.to_string().contains("123456789"), "{error}");
    }

    #[test]
    fn unknown_key_is_named() {
        let error = parse_err(&with_credentials(r#""forbiden_path":"/x/""#));
        assert!(error.to_string().contains("forbiden_path"), "{error}");
    }

    #[test]
    fn wrong_type_names_nested_key() {
        let error = parse_err(&with_credentials(r#""headers":{"email":5}"#));
        assert_eq!(error.key, "headers.email");
    }

    #[test]
    fn malformed_json_is_rejected() {
        assert_eq!(parse_err("{\"client_id\":").key, "client_id");
        assert_eq!(parse_err("[]").key, "(top level)");
        assert_eq!(parse_err(&format!("{} {{}}", with_credentials(""))).key, "(top level)");
        assert_eq!(parse_err(&with_credentials(r#""skip_paths":["/a","#)).key, "skip_paths[1]");
        assert_eq!(parse_err(&with_credentials(r#""callout_timeout_ms":1e999"#)).key, "callout_timeout_ms");
        assert_eq!(parse_err("\u{feff}{}").key, "(top level)");
    }

    #[test]
    fn repeated_key_is_rejected() {
        let error = parse_err(&with_credentials(r#""scope":"identity","scope":"global""#));
        assert_eq!(error.key, "scope");
        assert!(error.to_string().contains("more than once"), "{error}");
        assert_eq!(parse_err(&with_credentials(r#""client_secret":"other""#)).key, "client_secret");
        assert_eq!(parse_err(&with_credentials(r#""allow":{"emails":[],"emails":[]}"#)).key, "allow.emails");
    }

    #[test]
    fn wrong_type_names_the_entry() {
        for (extra, key) in [
            (r#""scope":5"#, "scope"),
            (r#""refresh":"yes""#, "refresh"),
            (r#""callout_timeout_ms":1.5"#, "callout_timeout_ms"),
            (r#""headers":5"#, "headers"),
            (r#""skip_paths":["/a",5]"#, "skip_paths[1]"),
            (r#""allow":{"teams":[1]}"#, "allow.teams[0]"),
            (r#""allow":{"teams":null}"#, "allow.teams"),
            (r#""pages":{"forbidden":5}"#, "pages.forbidden"),
        ] {
            let error = parse_err(&with_credentials(extra));
            assert_eq!(error.key, key, "{extra}");
            assert!(error.message.starts_with("expected "), "{error}");
        }
        assert_eq!(parse_err("null").key, "(top level)");
    }

    #[test]
    fn null_counts_as_absent() {
        let config = parse_ok(&with_credentials(r#""scope":null,"pages":null,"allow":null,"skip_paths":null"#));
        assert_eq!(config.scope, "identity");
        assert!(config.allow.allows_everyone());
    }

    #[test]
    fn unknown_nested_key_lists_known_keys() {
        let error = parse_err(&with_credentials(r#""headers":{"emial":"x-email"}"#));
        assert_eq!(error.key, "headers.emial");
        assert!(error.message.contains("email, id, name, token"), "{error}");
    }

    #[test]
    fn paths_need_both_slashes() {
        for (key, bad) in [
            ("path", "auth/callback/"),
            ("path", "/auth/callback"),
            ("forbidden_path", "/"),
            ("logout_path", "//evil/"),
            ("path", "/a b/"),
        ] {
            let error = parse_err(&with_credentials(&format!(r#""{key}":"{bad}""#)));
            assert_eq!(error.key, key, "{bad}");
        }
    }

    #[test]
    fn route_paths_must_differ() {
        let error = parse_err(&with_credentials(r#""logout_path":"/auth/heroku/callback/""#));
        assert_eq!(error.key, "logout_path");
    }

    #[test]
    fn herokai_only_adds_heroku_domain() {
        let config = parse_ok(&with_credentials(r#""herokai_only":true"#));
        assert!(config.allow.allows("someone@heroku.com"));
        assert!(!config.allow.allows("someone@example.com"));
    }

    #[test]
    fn skip_paths_parse_exact_and_prefix() {
        let config = parse_ok(&with_credentials(r#""skip_paths":["/healthz","/public/*"]"#));
        assert_eq!(
            config.skip_paths,
            vec![PathPattern::Exact("/healthz".into()), PathPattern::Prefix("/public/".into())]
        );
        assert!(config.skip_paths[1].matches("/public/logo.png"));
        assert!(!config.skip_paths[0].matches("/healthz/extra"));
    }

    #[test]
    fn bad_skip_paths_are_rejected() {
        for bad in ["healthz", "/a*/b", "*", "/x**"] {
            let error = parse_err(&with_credentials(&format!(r#""skip_paths":["{bad}"]"#)));
            assert_eq!(error.key, "skip_paths", "{bad}");
        }
    }

    #[test]
    fn header_names_are_lowercased_and_checked() {
        let config = parse_ok(&with_credentials(r#""headers":{"email":"X-Remote-User"}"#));
        assert_eq!(config.headers.email, "x-remote-user");
        for bad in ["cookie", "bad name", ""] {
            let error = parse_err(&with_credentials(&format!(r#""headers":{{"id":"{bad}"}}"#)));
            assert_eq!(error.key, "headers.id", "{bad}");
        }
    }

    #[test]
    fn header_names_must_differ_in_every_spelling() {
        let error = parse_err(&with_credentials(r#""headers":{"email":"x-user","id":"x_user"}"#));
        assert_eq!(error.key, "headers");
    }

    #[test]
    fn authorize_url_needs_https_or_loopback() {
        parse_ok(&with_credentials(r#""authorize_url":"http://127.0.0.1:9292/oauth/authorize""#));
        for bad in ["http://id.heroku.com/oauth/authorize", "ftp://x", "https://", "https://x/a#frag"] {
            let error = parse_err(&with_credentials(&format!(r#""authorize_url":"{bad}""#)));
            assert_eq!(error.key, "authorize_url", "{bad}");
        }
    }

    #[test]
    fn callout_timeout_range() {
        assert_eq!(parse_err(&with_credentials(r#""callout_timeout_ms":0"#)).key, "callout_timeout_ms");
        assert_eq!(parse_err(&with_credentials(r#""callout_timeout_ms":600000"#)).key, "callout_timeout_ms");
        assert_eq!(parse_err(&with_credentials(r#""callout_timeout_ms":-1"#)).key, "callout_timeout_ms");
        let config = parse_ok(&with_credentials(r#""callout_timeout_ms":250"#));
        assert_eq!(config.callout_timeout, Duration::from_millis(250));
    }

    #[test]
    fn session_lifetimes_have_defaults_and_ranges() {
        let config = parse_ok(&with_credentials(""));
        assert!(config.refresh);
        assert_eq!(config.refresh_margin_s, 600);
        assert_eq!(config.session_max_age_s, 604_800);
        assert_eq!(config.default_expires_in_s, 28_800);
        assert_eq!(parse_err(&with_credentials(r#""session_max_age_s":0"#)).key, "session_max_age_s");
        assert_eq!(parse_err(&with_credentials(r#""refresh_margin_s":100000"#)).key, "refresh_margin_s");
        assert_eq!(parse_err(&with_credentials(r#""default_expires_in_s":0"#)).key, "default_expires_in_s");
        assert!(!parse_ok(&with_credentials(r#""refresh":false"#)).refresh);
    }

    #[test]
    fn previous_keys_from_json_or_environment() {
        let other = "fedcba9876543210fedcba9876543210";
        let config = parse_ok(&with_credentials(&format!(r#""previous_secret_keys":["{other}"]"#)));
        assert_eq!(config.previous_secret_keys, vec![Secret::new(other)]);

        let env = env_from(&[(ENV_SECRET_KEY_PREVIOUS, &format!(" {other} ,{KEY},"))]);
        let config = parse(with_credentials("").as_bytes(), &env).unwrap();
        assert_eq!(config.previous_secret_keys, vec![Secret::new(other), Secret::new(KEY)]);

        let error = parse_err(&with_credentials(r#""previous_secret_keys":["short-previous"]"#));
        assert_eq!(error.key, "previous_secret_keys");
        assert!(!error.to_string().contains("short-previous"), "{error}");
        assert_eq!(parse_err(&with_credentials(r#""previous_secret_keys":"x""#)).key, "previous_secret_keys");
    }

    #[test]
    fn custom_pages_are_checked() {
        let config = parse_ok(&with_credentials(r#""pages":{"forbidden":"<h1>No</h1>"}"#));
        assert_eq!(config.pages.html(crate::pages::Notice::Forbidden, "/"), b"<h1>No</h1>".to_vec());
        assert_eq!(parse_err(&with_credentials(r#""pages":{"unauthorized":"x"}"#)).key, "pages");
        assert_eq!(parse_err(&with_credentials(r#""pages":{"forbiden":"x"}"#)).key, "pages");
        assert_eq!(parse_err(&with_credentials(r#""pages":{"forbidden":" "}"#)).key, "pages.forbidden");
    }

    #[test]
    fn invalid_cookie_name_is_rejected() {
        assert_eq!(parse_err(&with_credentials(r#""cookie":"a=b""#)).key, "cookie");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let printed = format!("{:?}", parse_ok(&with_credentials("")));
        assert!(!printed.contains("shh-secret"), "{printed}");
        assert!(!printed.contains(KEY), "{printed}");
    }
}
