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
        html.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            escape_html(error)
        ));
    }
    html.push_str("<p>This application requests:</p>\n<ul class=\"scopes\">\n");
    for scope in &request.scope {
        let description = KNOWN_SCOPES
            .iter()
            .find(|(known, _)| known == scope)
            .map(|(_, description)| description.to_string())
            .unwrap_or_else(|| format!("Unknown scope: {scope}"));
        html.push_str(&format!(
            "<li><code>{}</code> {}</li>\n",
            escape_html(scope),
            escape_html(&description)
        ));
    }
    html.push_str("</ul>\n");

    html.push_str("<form method=\"post\" action=\"/oauth/authorize\">\n<fieldset><legend>Log in as</legend>\n");
    for (index, user) in state.users.iter().enumerate() {
        let checked = if state.current_user == Some(index) {
            " checked"
        } else {
            ""
        };
        let label = match &user.name {
            Some(name) => format!(
                "<span>{}<small>{}</small></span>",
                escape_html(name),
                escape_html(&user.email)
            ),
            None => format!("<span>{}</span>", escape_html(&user.email)),
        };
        html.push_str(&format!(
            "<label class=\"user\"><input type=\"radio\" name=\"user\" value=\"{}\"{checked}> {label}</label>\n",
            escape_html(&user.email)
        ));
    }
    html.push_str(
        "<label class=\"other\">Or type any email instead\n\
         <input type=\"email\" name=\"email\" placeholder=\"name@example.com\" autocomplete=\"off\"></label>\n</fieldset>\n",
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
        "<div class=\"actions\"><button type=\"submit\" name=\"authorize\" value=\"Allow\">Allow</button>\n\
         <a class=\"deny\" href=\"{}\">Deny</a></div>\n</form>\n",
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
        "<form method=\"post\" action=\"/login\">\n<label class=\"other\">Log in as\n\
         <input type=\"email\" name=\"email\" placeholder=\"name@example.com\" required></label>\n\
         <div class=\"actions\"><button type=\"submit\">Log in</button></div>\n</form>\n",
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

/// Renders the start of a stand-in page: a banner noting that this is not
/// Heroku, then a card with `title` as its heading.
fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n\
         <style>{PAGE_STYLE}</style>\n</head>\n<body>\n\
         <p class=\"banner\">heroku-standin: a local stand-in for id.heroku.com. No password, no real accounts.</p>\n\
         <main>\n<h1>{title}</h1>\n",
        title = escape_html(title)
    )
}

const PAGE_FOOT: &str = "</main>\n</body>\n</html>\n";

/// Inline CSS of the stand-in's pages: a card that fills a phone's width, and choices and
/// buttons at least 44px tall so that they are easy to tap.
const PAGE_STYLE: &str = "body{margin:0;font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
background:#f3f1f7;color:#1f1b2e}\
.banner{margin:0;padding:.5rem 1rem;background:#3f3a4d;color:#fff;font-size:.875rem;text-align:center}\
main{max-width:34rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border-radius:12px;\
box-shadow:0 2px 12px rgba(40,30,80,.12)}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem;color:#430098;overflow-wrap:anywhere}\
.error{padding:.75rem 1rem;border-radius:6px;background:#fdecec;color:#8a1c1c}\
.scopes{padding-left:1.25rem}.scopes code{font-weight:600;margin-right:.25rem}\
fieldset{border:1px solid #d9d4e4;border-radius:8px;margin:1rem 0;padding:.5rem 1rem 1rem}\
legend{font-weight:600;padding:0 .25rem}\
label.user{display:flex;align-items:center;gap:.75rem;min-height:44px;padding:.25rem .5rem;\
border-radius:6px;cursor:pointer}label.user:hover{background:#f3f1f7}\
label.user small{display:block;color:#5a5368;overflow-wrap:anywhere}\
input[type=radio]{width:1.25rem;height:1.25rem;margin:0;flex:none;accent-color:#79589f}\
label.other{display:block;margin-top:.75rem}\
input[type=email]{display:block;width:100%;box-sizing:border-box;margin-top:.25rem;\
padding:.6rem .75rem;font:inherit;border:1px solid #a79fba;border-radius:6px}\
.actions{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;margin-top:1.5rem}\
button{min-height:44px;padding:.6rem 1.5rem;font:inherit;font-weight:600;color:#fff;background:#79589f;\
border:0;border-radius:6px;cursor:pointer}button:hover{background:#430098}\
.deny{display:inline-block;padding:.625rem .5rem;color:#430098}\
button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #f4a261;outline-offset:2px}\
@media (max-width:480px){body{background:#fff}main{margin:0;border-radius:0;box-shadow:none;padding:1.25rem}}";

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
