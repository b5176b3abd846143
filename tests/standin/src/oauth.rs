//! The id.heroku.com OAuth endpoints: `/oauth/authorize` and `/oauth/token`.
//!
//! Behaviour follows heroku/identity, the open-source code once behind
//! id.heroku.com: only five authorize parameters count, `redirect_uri` is
//! ignored in favour of the registered one, and the token endpoint ignores
//! `client_id`.

use std::time::Instant;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::config::{is_usable_email, Approval};
use crate::http::{error_reply, HttpRequest, Params, Reply};
use crate::pages::{self, ConsentForm};
use crate::server::not_found;
use crate::state::State;

/// Message of the `401` for a bad, used or expired code, a bad refresh token or a wrong secret.
pub(crate) const INVALID_GRANT_MESSAGE: &str = "OAuth authorization invalid.";

/// Message of the `422` for a token request without a client secret.
/// NOTE: Heroku's wording for this case is not known; the status is.
pub(crate) const MISSING_SECRET_MESSAGE: &str =
    "Missing client_secret. Send it as a form or query parameter, or as the password of HTTP Basic authentication.";

/// Scopes that Heroku defines, with the consent page's description of each.
pub(crate) const KNOWN_SCOPES: &[(&str, &str)] = &[
    ("global", "Read and write access to all of your account, apps and resources."),
    ("identity", "Read-only access to your account information."),
    ("read", "Read-only access to all of your apps and resources, excluding account information and config vars."),
    ("write", "Read and write access to all of your apps and resources, excluding account information and config vars."),
    ("read-protected", "Read-only access to all of your apps and resources, including config vars."),
    ("write-protected", "Read and write access to all of your apps and resources, including config vars."),
    ("create-apps", "Create apps, and control only the apps it creates."),
];

/// The authorize parameters that count; heroku/identity drops all others.
pub(crate) struct AuthorizeRequest {
    pub client_id: String,
    pub response_type: String,
    /// The `scope` parameter as sent, for the consent form's hidden field.
    pub scope_param: Option<String>,
    /// Parsed scope: split on commas and spaces, sorted, de-duplicated.
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub prompt: Option<String>,
}

impl AuthorizeRequest {
    pub fn unknown_scopes(&self) -> Vec<&str> {
        self.scope
            .iter()
            .map(String::as_str)
            .filter(|scope| !KNOWN_SCOPES.iter().any(|(known, _)| known == scope))
            .collect()
    }
}

/// Handles `GET` and `POST /oauth/authorize`.
pub(crate) fn authorize(state: &mut State, request: &HttpRequest, now: Instant) -> Reply {
    match request.method.as_str() {
        "GET" => authorize_get(state, request, now),
        "POST" => authorize_post(state, request, now),
        _ => not_found(),
    }
}

/// Acts on a valid request according to the approval mode. A confirmation
/// sent by GET (`authorize=Allow`) is ignored, as CSRF protection.
fn authorize_get(state: &mut State, request: &HttpRequest, now: Instant) -> Reply {
    let params = request.query_params();
    let authorize_request = match read_authorize_request(state, &params) {
        Ok(authorize_request) => authorize_request,
        Err(reply) => return reply,
    };

    match state.approval {
        // Deny carries no state, like the Deny link on Heroku's consent page.
        Approval::Deny => Reply::redirect(302, &deny_uri(&state.client.redirect_uri)),
        Approval::AutoApprove => match state.current_user {
            Some(user_index) => {
                issue_code_and_redirect(state, &authorize_request, user_index, 302, now)
            }
            None => pages::redirect_to_login("Log in to authorize this client."),
        },
        Approval::Prompt => Reply::html(
            200,
            pages::consent_page(state, &ConsentForm::new(&authorize_request)),
        ),
    }
}

/// Handles the consent form: `authorize=Allow` plus the original parameters
/// and the chosen user. Any other submission shows the consent page again.
fn authorize_post(state: &mut State, request: &HttpRequest, now: Instant) -> Reply {
    let params = request.query_and_form_params();
    let authorize_request = match read_authorize_request(state, &params) {
        Ok(authorize_request) => authorize_request,
        Err(reply) => return reply,
    };
    if params.get("authorize") != Some("Allow") {
        return Reply::html(
            200,
            pages::consent_page(state, &ConsentForm::new(&authorize_request)),
        );
    }

    // A typed email wins over the radio choice; with neither, the current user allows.
    let typed = params
        .get("email")
        .map(str::trim)
        .filter(|email| !email.is_empty());
    let chosen = typed.or_else(|| params.get("user").filter(|email| !email.is_empty()));
    let user_index = match chosen {
        Some(email) if is_usable_email(email) => state.find_or_add_user(email),
        Some(email) => {
            let form = ConsentForm::new(&authorize_request).with_error(format!(
                "{email:?} is not a usable email; enter one like name@example.com."
            ));
            return Reply::html(422, pages::consent_page(state, &form));
        }
        None => match state.current_user {
            Some(index) => index,
            None => return pages::redirect_to_login("Log in to authorize this client."),
        },
    };
    state.current_user = Some(user_index);

    // Sinatra redirects a POST with 303 over HTTP/1.1 and with 302 over HTTP/1.0.
    let status = if request.is_http11_or_later() {
        303
    } else {
        302
    };
    issue_code_and_redirect(state, &authorize_request, user_index, status, now)
}

/// Checks `client_id` and `response_type` and parses `scope`, in
/// heroku/identity's order. Returns the reply for an invalid request.
fn read_authorize_request(state: &State, params: &Params) -> Result<AuthorizeRequest, Reply> {
    let client_id = params.get("client_id").unwrap_or("");
    if client_id.is_empty() {
        return Err(Reply::text(400, "Need client_id"));
    }
    // An unknown client never goes back to the client: Heroku shows a message at /login.
    if client_id != state.client.id {
        return Err(pages::redirect_to_login("Unknown OAuth client."));
    }
    // NOTE: Heroku's response to another response_type is not known. This
    // follows its path for other API rejections, a message at /login.
    let response_type = params.get("response_type").unwrap_or("");
    if response_type != "code" {
        return Err(pages::redirect_to_login(&format!(
            "Unsupported response_type {response_type:?}; only \"code\" is supported."
        )));
    }

    let scope_param = params.get("scope").map(str::to_string);
    Ok(AuthorizeRequest {
        client_id: client_id.to_string(),
        response_type: response_type.to_string(),
        scope: parse_scope(scope_param.as_deref()),
        scope_param,
        state: params.get("state").map(str::to_string),
        prompt: params.get("prompt").map(str::to_string),
    })
}

/// Splits a scope on `[, ]+`, sorts and de-duplicates it. An absent scope is
/// `global`.
///
/// NOTE: a present but blank scope is also taken as `global`. heroku/identity
/// would send an empty list on to the API, whose response is not known.
pub(crate) fn parse_scope(raw: Option<&str>) -> Vec<String> {
    let mut scope: Vec<String> = raw
        .unwrap_or("")
        .split([',', ' '])
        .filter(|piece| !piece.is_empty())
        .map(str::to_string)
        .collect();
    scope.sort();
    scope.dedup();
    if scope.is_empty() {
        scope.push("global".to_string());
    }
    scope
}

/// Issues a code and redirects to the registered URI with `code`, and
/// `state` when the request had one. An unknown scope sends the browser to
/// `/login` with a message instead, as Heroku does with its API's `422`.
fn issue_code_and_redirect(
    state: &mut State,
    authorize_request: &AuthorizeRequest,
    user_index: usize,
    status: u16,
    now: Instant,
) -> Reply {
    let unknown = authorize_request.unknown_scopes();
    if !unknown.is_empty() {
        return pages::redirect_to_login(&format!("Invalid scope: {}.", unknown.join(", ")));
    }

    let code = state.issue_code(user_index, authorize_request.scope.clone(), now);
    let mut params = vec![("code", code.as_str())];
    if let Some(client_state) = &authorize_request.state {
        params.push(("state", client_state.as_str()));
    }
    Reply::redirect(status, &merge_query(&state.client.redirect_uri, &params))
}

/// Returns the registered URI with `error=access_denied` merged into its query.
pub(crate) fn deny_uri(redirect_uri: &str) -> String {
    merge_query(redirect_uri, &[("error", "access_denied")])
}

/// Merges parameters into the query of `uri`, keeping its fragment. A
/// parameter already in the query keeps its place and takes the new value,
/// as a Ruby hash merge does in heroku/identity.
pub(crate) fn merge_query(uri: &str, params: &[(&str, &str)]) -> String {
    let (without_fragment, fragment) = match uri.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (uri, None),
    };
    let (base, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));

    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (name, value) in params {
        let mut replaced = false;
        pairs.retain_mut(|(key, existing)| {
            if key != name {
                return true;
            }
            if replaced {
                return false;
            }
            *existing = value.to_string();
            replaced = true;
            true
        });
        if !replaced {
            pairs.push((name.to_string(), value.to_string()));
        }
    }

    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    match fragment {
        Some(fragment) => format!("{base}?{query}#{fragment}"),
        None => format!("{base}?{query}"),
    }
}

/// Handles `POST /oauth/token` for the `authorization_code` and
/// `refresh_token` grants.
pub(crate) fn token(state: &mut State, request: &HttpRequest, now: Instant) -> Reply {
    if request.method != "POST" {
        return not_found();
    }

    // 1. Parameters come from the query string and the form body; client_id is ignored.
    let params = request.query_and_form_params();
    let Some(secret) = client_secret(request, &params) else {
        return error_reply(422, "invalid_params", MISSING_SECRET_MESSAGE);
    };

    // 2. Exchange the grant. Heroku keeps the reason for a 401 to itself.
    let grant_type = params.get("grant_type").unwrap_or("authorization_code");
    let result = match grant_type {
        "authorization_code" => match params.get("code") {
            Some(code) => state.exchange_code(code, &secret, now),
            None => return missing_parameter("code"),
        },
        "refresh_token" => match params.get("refresh_token") {
            Some(refresh_token) => state.refresh(refresh_token, &secret, now),
            None => return missing_parameter("refresh_token"),
        },
        other => {
            return error_reply(
                400,
                "bad_request",
                &format!(
                    "Unsupported grant_type {other:?}; use authorization_code or refresh_token."
                ),
            )
        }
    };

    match result {
        Ok(tokens) => Reply::json(200, &tokens),
        Err(_) => error_reply(401, "unauthorized", INVALID_GRANT_MESSAGE),
    }
}

/// NOTE: Heroku's status for a missing code or refresh token is not known;
/// 400 is its status for a malformed token request.
fn missing_parameter(name: &str) -> Reply {
    error_reply(400, "bad_request", &format!("Missing {name} parameter."))
}

/// Returns the client secret: the password of HTTP Basic authentication when
/// the request uses it (the user name is ignored), otherwise the
/// `client_secret` parameter. This is heroku/identity's order.
fn client_secret(request: &HttpRequest, params: &Params) -> Option<String> {
    if let Some(credentials) = request.header("authorization").and_then(basic_credentials) {
        return credentials
            .split_once(':')
            .map(|(_, password)| password.to_string());
    }
    params.get("client_secret").map(str::to_string)
}

/// Decodes the credentials of a `Basic` authorization value, or returns
/// `None` when the scheme is another one.
fn basic_credentials(authorization: &str) -> Option<String> {
    let (scheme, encoded) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    // Padding is optional here, as it is for Ruby's lenient base64 decoder.
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // Undecodable credentials carry no password, so the secret counts as missing.
    let decoded = engine.decode(encoded.trim()).unwrap_or_default();
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_splits_on_commas_and_spaces() {
        assert_eq!(
            parse_scope(Some("read, identity,read  global")),
            vec!["global", "identity", "read"]
        );
        assert_eq!(parse_scope(None), vec!["global"]);
        assert_eq!(parse_scope(Some(" ")), vec!["global"]);
    }

    #[test]
    fn merge_query_keeps_existing_query_and_fragment() {
        assert_eq!(
            merge_query(
                "http://app.test/cb?a=1&state=old#top",
                &[("code", "c"), ("state", "x y")]
            ),
            "http://app.test/cb?a=1&state=x+y&code=c#top"
        );
        assert_eq!(
            merge_query("http://app.test/cb", &[("error", "access_denied")]),
            "http://app.test/cb?error=access_denied"
        );
    }

    #[test]
    fn basic_credentials_decode_with_or_without_padding() {
        assert_eq!(
            basic_credentials("Basic aWQ6c2VjcmV0").as_deref(),
            Some("id:secret")
        );
        assert_eq!(
            basic_credentials("basic aWQ6c2VjcmV0").as_deref(),
            Some("id:secret")
        );
        assert_eq!(basic_credentials("Basic aWQ6cw").as_deref(), Some("id:s"));
        assert_eq!(basic_credentials("Bearer abc"), None);
    }
}
