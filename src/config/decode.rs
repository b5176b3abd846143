//! Decoding of the plugin configuration's JSON into [`RawConfig`], by hand from the tree
//! that [`crate::json::parse`] returns. An error names the key as the operator writes it,
//! such as `headers.email` or `skip_paths[1]`, and never contains a credential's value.

use std::collections::BTreeMap;

use super::{ConfigError, RawAllow, RawConfig, RawHeaders};
use crate::json::{self, Json, PathSegment};

/// Parses the plugin configuration into a [`RawConfig`], or `RawConfig::default()` when
/// `json` is empty or only whitespace.
pub(super) fn parse_json(json: &[u8]) -> Result<RawConfig, ConfigError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(RawConfig::default());
    }
    let tree = json::parse(json).map_err(|error| {
        ConfigError::new(
            &key_path(&error.path),
            "invalid JSON (a syntax error, an invalid escape, a number out of range, nesting deeper \
             than 128, or text after the top-level object); expected one JSON object with the documented keys",
        )
    })?;
    RawConfig::decode(tree)
}

/// Formats a path as the operator writes it: `headers.email`, `skip_paths[1]`, or
/// `(top level)` for the document itself.
fn key_path(path: &[PathSegment]) -> String {
    let mut text = String::new();
    for segment in path {
        match segment {
            PathSegment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            PathSegment::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    if text.is_empty() {
        text.push_str(TOP_LEVEL);
    }
    text
}

const TOP_LEVEL: &str = "(top level)";

impl RawConfig {
    /// Decodes the parsed document, rejecting unknown and repeated keys and wrongly typed
    /// values. JSON null counts as an absent key.
    fn decode(tree: Json) -> Result<RawConfig, ConfigError> {
        let mut fields = Fields::new(tree, "")?;
        let raw = RawConfig {
            client_id: fields.take("client_id"),
            client_secret: fields.take("client_secret"),
            secret_key: fields.take("secret_key"),
            previous_secret_keys: fields.take("previous_secret_keys"),
            scope: fields.string("scope"),
            path: fields.string("path"),
            cookie: fields.string("cookie"),
            forbidden_path: fields.string("forbidden_path"),
            forbidden_passthrough: fields.boolean("forbidden_passthrough"),
            logout_path: fields.string("logout_path"),
            allow: fields.object("allow", RawAllow::decode),
            herokai_only: fields.boolean("herokai_only"),
            skip_paths: fields.strings("skip_paths"),
            headers: fields.object("headers", RawHeaders::decode),
            expose_token: fields.boolean("expose_token"),
            authorize_url: fields.string("authorize_url"),
            id_cluster: fields.string("id_cluster"),
            id_authority: fields.string("id_authority"),
            api_cluster: fields.string("api_cluster"),
            api_authority: fields.string("api_authority"),
            callout_timeout_ms: fields.unsigned("callout_timeout_ms"),
            pages: fields.object("pages", Fields::into_string_map),
            refresh: fields.boolean("refresh"),
            refresh_margin_s: fields.unsigned("refresh_margin_s"),
            session_max_age_s: fields.unsigned("session_max_age_s"),
            default_expires_in_s: fields.unsigned("default_expires_in_s"),
        };
        fields.finish()?;
        Ok(raw)
    }
}

impl RawAllow {
    /// Decodes `allow`, where a list may be absent but not null, as the schema states.
    fn decode(mut fields: Fields) -> Result<RawAllow, ConfigError> {
        let raw = RawAllow {
            emails: fields.list("emails"),
            email_domains: fields.list("email_domains"),
            teams: fields.list("teams"),
        };
        fields.finish()?;
        Ok(raw)
    }
}

impl RawHeaders {
    fn decode(mut fields: Fields) -> Result<RawHeaders, ConfigError> {
        let raw = RawHeaders {
            email: fields.string("email"),
            id: fields.string("id"),
            name: fields.string("name"),
            token: fields.string("token"),
        };
        fields.finish()?;
        Ok(raw)
    }
}

/// The members of one configuration object that are not yet decoded, the keys it takes, and
/// the first error found.
///
/// The getters return `None` after an error and keep only the first one, which
/// [`Fields::finish`] returns. Decoding a whole object without an early return for every key
/// keeps the wasm code small.
struct Fields {
    /// The path of the object, such as `headers`, or empty for the top level.
    path: String,
    members: Vec<(String, Json)>,
    known: Vec<&'static str>,
    error: Option<ConfigError>,
}

impl Fields {
    fn new(value: Json, path: &str) -> Result<Fields, ConfigError> {
        match value {
            Json::Object(members) => Ok(Fields { path: path.to_string(), members, known: Vec::new(), error: None }),
            other => Err(ConfigError::new(
                if path.is_empty() { TOP_LEVEL } else { path },
                format!("expected a JSON object with the documented keys, found {}", other.kind()),
            )),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Keeps `message` about `key` if it is the first error, and returns `None`.
    fn fail<T>(&mut self, key: &str, message: String) -> Option<T> {
        if self.error.is_none() {
            self.error = Some(ConfigError::new(&self.key_path(key), message));
        }
        None
    }

    fn wrong_type<T>(&mut self, key: &str, expected: &str, found: &Json) -> Option<T> {
        self.fail(key, format!("expected {expected}, found {}", found.kind()))
    }

    /// Takes the value of `key`, null included.
    fn take(&mut self, key: &'static str) -> Option<Json> {
        self.known.push(key);
        match json::take_member(&mut self.members, key) {
            Ok(value) => value,
            Err(_) => self.fail(key, "the key appears more than once; keep one".to_string()),
        }
    }

    /// Takes the value of `key`, where null counts as absent.
    fn take_present(&mut self, key: &'static str) -> Option<Json> {
        self.take(key).filter(|value| *value != Json::Null)
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        match self.take_present(key)? {
            Json::String(text) => Some(text),
            other => self.wrong_type(key, "a string", &other),
        }
    }

    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        match self.take_present(key)? {
            Json::Bool(value) => Some(value),
            other => self.wrong_type(key, "true or false", &other),
        }
    }

    fn unsigned(&mut self, key: &'static str) -> Option<u64> {
        match self.take_present(key)? {
            Json::Unsigned(number) => Some(number),
            Json::OtherNumber => {
                self.fail(key, "expected a whole number of at least 0, without a fraction or exponent".to_string())
            }
            other => self.wrong_type(key, "a number", &other),
        }
    }

    /// Takes an optional array of strings, where null counts as absent.
    fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        let value = self.take_present(key)?;
        self.string_list(key, value)
    }

    /// Takes an array of strings that may be absent, meaning empty, but not null.
    fn list(&mut self, key: &'static str) -> Vec<String> {
        match self.take(key) {
            None => Vec::new(),
            Some(value) => self.string_list(key, value).unwrap_or_default(),
        }
    }

    fn string_list(&mut self, key: &str, value: Json) -> Option<Vec<String>> {
        let Json::Array(items) = value else {
            return self.wrong_type(key, "an array of strings", &value);
        };
        let mut texts = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Json::String(text) => texts.push(text),
                other => return self.wrong_type(&format!("{key}[{index}]"), "a string", &other),
            }
        }
        Some(texts)
    }

    /// Takes a nested object, where null counts as absent, and decodes it with `decode`.
    fn object<T>(&mut self, key: &'static str, decode: fn(Fields) -> Result<T, ConfigError>) -> Option<T> {
        let path = self.key_path(key);
        let value = self.take_present(key)?;
        match Fields::new(value, &path).and_then(decode) {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                self.error.get_or_insert(error);
                None
            }
        }
    }

    /// Reads an object whose keys are free, such as `pages`, into a map of strings. A
    /// repeated key keeps its last value.
    fn into_string_map(self) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut map = BTreeMap::new();
        for (key, value) in self.members {
            match value {
                Json::String(text) => {
                    map.insert(key, text);
                }
                other => {
                    let path = format!("{}.{key}", self.path);
                    return Err(ConfigError::new(&path, format!("expected a string, found {}", other.kind())));
                }
            }
        }
        Ok(map)
    }

    /// Returns the first error, or else rejects the first member that no getter took.
    fn finish(self) -> Result<(), ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.members.first() {
            None => Ok(()),
            Some((key, _)) => Err(ConfigError::new(
                &self.key_path(key),
                format!("unknown key; expected one of {}", self.known.join(", ")),
            )),
        }
    }
}
