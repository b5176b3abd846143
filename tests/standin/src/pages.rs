//! The browser-facing pages of the stand-in: the consent page, `/login`
//! and `/logout`.
//!
//! Heroku keeps the message shown at `/login` in its session cookie. The
//! stand-in keeps it in a cookie of its own, `heroku-standin-flash`, so that
//! the login page can show why a request was redirected there.

use crate::config::is_usable_email;
use crate::http::{escape_html, HttpRequest, Reply};
use crate::oauth::{deny_uri, AuthorizeRequest, KNOWN_SCOPES};
use crate::state::State;

const FLASH_COOKIE: &str = "heroku-standin-flash";

/// Hosts `/logout?url=` may redirect to, the list in heroku/identity. Any other URL goes to `/login`.
const SAFE_LOGOUT_HOSTS: &[&str] = &[
    "addons.heroku.com",
    "addons-staging.heroku.com",
    "api.heroku.com",
    "api.staging.herokudev.com",
    "devcenter.heroku.com",
    "devcenter-staging.heroku.com",
    "discussion.heroku.com",
    "discussion-staging.heroku.com",
];

/// Cookies id.heroku.com clears on logout.
const SESSION_COOKIES: &[&str] = &[
    "heroku_session",
    "heroku_session_nonce",
    "heroku_user_session",
];

/// What the consent page shows and sends back in hidden fields.
pub(crate) struct ConsentForm<'a> {
    request: &'a AuthorizeRequest,
    error: Option<String>,
}

impl<'a> ConsentForm<'a> {
    pub fn new(request: &'a AuthorizeRequest) -> ConsentForm<'a> {
        ConsentForm {
            request,
            error: None,
        }
    }

    pub fn with_error(mut self, error: String) -> ConsentForm<'a> {
        self.error = Some(error);
        self
    }
}

/// Renders "Authorize <client>?" with the requested scopes, a choice of user,
/// an Allow button that posts the form and a Deny link to the registered URI.
pub(crate) fn consent_page(state: &State, form: &ConsentForm<'_>) -> String {
    let request = form.request;
    let mut html = page_head(&format!("Authorize {}?", request.client_id));

    if let Some(error) = &form.error {
        html.push_str(&format!("<p class=\"error\">{}</p>\n", escape_html(error)));
    }
    html.push_str("<p>This application requests:</p>\n<ul>\n");
    for scope in &request.scope {
        let description = KNOWN_SCOPES
            .iter()
            .find(|(known, _)| known == scope)
            .map(|(_, description)| description.to_string())
            .unwrap_or_else(|| format!("Unknown scope: {scope}"));
        html.push_str(&format!(
            "<li><code>{}</code>: {}</li>\n",
            escape_html(scope),
            escape_html(&description)
        ));
    }
    html.push_str("</ul>\n");

    html.push_str("<form method=\"post\" action=\"/oauth/authorize\">\n<fieldset><legend>Sign in as</legend>\n");
    for (index, user) in state.users.iter().enumerate() {
        let checked = if state.current_user == Some(index) {
            " checked"
        } else {
            ""
        };
        let label = match &user.name {
            Some(name) => format!("{} &lt;{}&gt;", escape_html(name), escape_html(&user.email)),
            None => escape_html(&user.email),
        };
        html.push_str(&format!(
            "<label><input type=\"radio\" name=\"user\" value=\"{}\"{checked}> {label}</label><br>\n",
            escape_html(&user.email)
        ));
    }
    html.push_str(
        "<label>or any email: <input type=\"email\" name=\"email\" placeholder=\"name@example.com\"></label>\n</fieldset>\n",
    );

    let hidden = [
        ("client_id", Some(request.client_id.as_str())),
        ("response_type", Some(request.response_type.as_str())),
        ("scope", request.scope_param.as_deref()),
        ("state", request.state.as_deref()),
        ("prompt", request.prompt.as_deref()),
    ];
    for (name, value) in hidden {
        if let Some(value) = value {
            html.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                escape_html(value)
            ));
        }
    }
    html.push_str(&format!(
        "<p><button type=\"submit\" name=\"authorize\" value=\"Allow\">Allow</button>\n<a href=\"{}\">Deny</a></p>\n</form>\n",
        escape_html(&deny_uri(&state.client.redirect_uri))
    ));
    html.push_str(PAGE_FOOT);
    html
}

/// Redirects to `/login` with a message for the login page.
pub(crate) fn redirect_to_login(message: &str) -> Reply {
    let encoded: String = form_urlencoded::byte_serialize(message.as_bytes()).collect();
    Reply::redirect(302, "/login").header(
        "Set-Cookie",
        &format!("{FLASH_COOKIE}={encoded}; Path=/login; HttpOnly; SameSite=Lax"),
    )
}

/// Renders `/login`: who is logged in, the pending message, and a form to
/// log in as another user.
pub(crate) fn login_page(state: &State, request: &HttpRequest) -> Reply {
    let mut html = page_head("heroku-standin login");
    let flash = read_flash(request);
    if let Some(message) = &flash {
        html.push_str(&format!(
            "<p class=\"error\">{}</p>\n",
            escape_html(message)
        ));
    }

    match state.current_user.and_then(|index| state.users.get(index)) {
        Some(user) => html.push_str(&format!(
            "<p>Logged in as <strong>{}</strong>.</p>\n",
            escape_html(&user.email)
        )),
        None => html.push_str("<p>Nobody is logged in.</p>\n"),
    }
    html.push_str(
        "<form method=\"post\" action=\"/login\">\n<label>Log in as: <input type=\"email\" name=\"email\" required></label>\n\
         <button type=\"submit\">Log in</button>\n</form>\n\
         <p>This is a local stand-in for id.heroku.com; it asks for no password.</p>\n",
    );
    html.push_str(PAGE_FOOT);

    let reply = Reply::html(200, html);
    if flash.is_some() {
        reply.header(
            "Set-Cookie",
            &format!("{FLASH_COOKIE}=; Path=/login; Max-Age=0"),
        )
    } else {
        reply
    }
}

/// Handles the `/login` form: logs in as the email given, adding a user if needed.
pub(crate) fn login_submit(state: &mut State, request: &HttpRequest) -> Reply {
    let params = request.query_and_form_params();
    let email = params.get("email").map(str::trim).unwrap_or("");
    if !is_usable_email(email) {
        return redirect_to_login(&format!(
            "{email:?} is not a usable email; enter one like name@example.com."
        ));
    }
    let index = state.find_or_add_user(email);
    state.current_user = Some(index);
    let status = if request.is_http11_or_later() {
        303
    } else {
        302
    };
    Reply::redirect(status, "/login")
}

/// Handles `GET` and `DELETE /logout`: clears Heroku's session cookies and
/// redirects to `url` when its host is on Heroku's list, otherwise to `/login`.
/// The stand-in's current user stays logged in, so later authorizations
/// still succeed.
pub(crate) fn logout(request: &HttpRequest) -> Reply {
    let params = request.query_params();
    let location = params
        .get("url")
        .filter(|url| is_safe_logout_url(url))
        .unwrap_or("/login");
    let mut reply = Reply::redirect(302, location);
    for cookie in SESSION_COOKIES {
        reply = reply.header("Set-Cookie", &format!("{cookie}=; Path=/; Max-Age=0"));
    }
    reply
}

/// Returns true when `url` is an absolute http(s) URL whose host is on the
/// logout list and that has no whitespace or control characters, which a
/// URL parser would reject and which could split the `Location` header.
fn is_safe_logout_url(url: &str) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = authority.split(':').next().unwrap_or("");
    SAFE_LOGOUT_HOSTS
        .iter()
        .any(|safe| safe.eq_ignore_ascii_case(host))
}

fn read_flash(request: &HttpRequest) -> Option<String> {
    let prefix = format!("{FLASH_COOKIE}=");
    let value = request
        .header_values("cookie")
        .flat_map(|header| header.split(';'))
        .map(str::trim)
        .find_map(|cookie| cookie.strip_prefix(prefix.as_str()))?;
    if value.is_empty() {
        return None;
    }
    // The value was written by `byte_serialize`, so form decoding reverses it.
    let decoded = form_urlencoded::parse(format!("m={value}").as_bytes())
        .next()
        .map(|(_, message)| message.into_owned());
    decoded.filter(|message| !message.is_empty())
}

fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>body{{font-family:sans-serif;max-width:36em;margin:2em auto}}.error{{color:#b00}}</style>\n\
         </head>\n<body>\n<h1>{title}</h1>\n",
        title = escape_html(title)
    )
}

const PAGE_FOOT: &str = "</body>\n</html>\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request;

    #[test]
    fn logout_redirects_only_to_heroku_hosts() {
        let safe = logout(&test_request(
            "GET",
            "/logout?url=https%3A%2F%2Fdevcenter.heroku.com%2Fx",
            &[],
            b"",
        ));
        assert_eq!(
            safe.header_value("Location"),
            Some("https://devcenter.heroku.com/x")
        );

        let unsafe_urls = [
            "https://evil.test/",
            "https://devcenter.heroku.com@evil.test/",
            "javascript:alert(1)",
            "https://api.heroku.com/\r\nSet-Cookie: x=1",
        ];
        for url in unsafe_urls {
            let target = format!(
                "/logout?url={}",
                form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
            );
            let reply = logout(&test_request("GET", &target, &[], b""));
            assert_eq!(reply.header_value("Location"), Some("/login"), "{url}");
        }
    }

    #[test]
    fn flash_round_trips_through_cookie() {
        let reply = redirect_to_login("Unknown OAuth client.");
        let set_cookie = reply.header_value("Set-Cookie").unwrap();
        let cookie = set_cookie.split(';').next().unwrap();
        let request = test_request(
            "GET",
            "/login",
            &[("Cookie", &format!("other=1; {cookie}"))],
            b"",
        );
        assert_eq!(
            read_flash(&request).as_deref(),
            Some("Unknown OAuth client.")
        );
    }
}
