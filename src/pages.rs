//! The pages and JSON errors that the filter sends as local replies.
//!
//! Pages are small self-contained HTML documents with inline CSS, so they work without
//! any asset server. They state what happened and what to do, and never show internals.

use crate::json::{self, Field};

/// The message of a local reply, rendered as a page or as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// No session on an API-style request.
    Unauthorized,
    /// The user is logged in but the allow rule does not include them.
    Forbidden,
    /// The user pressed Deny on Heroku's consent page.
    AccessDenied,
    /// The callback's state or code could not be verified, or the login took too long.
    LoginNotVerified,
    /// Heroku could not be reached or sent an unusable response.
    HerokuUnavailable,
    /// The browser logged out; shown in place of an immediate new login.
    LoggedOut,
}

impl Notice {
    pub fn status(self) -> u32 {
        match self {
            Notice::Unauthorized | Notice::LoggedOut => 401,
            Notice::Forbidden | Notice::AccessDenied | Notice::LoginNotVerified => 403,
            Notice::HerokuUnavailable => 502,
        }
    }

    fn json_id(self) -> &'static str {
        match self {
            Notice::Unauthorized | Notice::LoggedOut => "unauthorized",
            Notice::Forbidden | Notice::AccessDenied => "forbidden",
            Notice::LoginNotVerified => "login_not_verified",
            Notice::HerokuUnavailable => "bad_gateway",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Notice::Unauthorized => "Login required",
            Notice::Forbidden => "Access not allowed",
            Notice::AccessDenied => "Access denied",
            Notice::LoginNotVerified => "Login could not be verified",
            Notice::HerokuUnavailable => "Heroku is unavailable",
            Notice::LoggedOut => "Logged out",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Notice::Unauthorized => "This request needs a Heroku login. Log in with a browser, then try again.",
            Notice::Forbidden => {
                "You are logged in with Heroku, but this account is not allowed here. Ask the app's owners for access, or log out of Heroku and log in with another account."
            }
            Notice::AccessDenied => "Heroku did not grant access to your account. Log in again and choose Allow to continue.",
            Notice::LoginNotVerified => "The login expired or did not start in this browser. Log in again to continue.",
            Notice::HerokuUnavailable => "Heroku could not complete the login just now. Wait a moment, then try again.",
            Notice::LoggedOut => {
                "You are logged out of this app, but still logged in on Heroku. To switch accounts, log out of Heroku first."
            }
        }
    }

    fn action(self) -> &'static str {
        match self {
            Notice::Forbidden => "Log in with another account",
            Notice::HerokuUnavailable => "Try again",
            _ => "Log in again",
        }
    }

    /// Returns the key that names this page in the `pages` configuration, or `None` for
    /// notices that only API clients receive.
    pub fn config_key(self) -> Option<&'static str> {
        match self {
            Notice::Unauthorized => None,
            Notice::Forbidden => Some("forbidden"),
            Notice::AccessDenied => Some("access_denied"),
            Notice::LoginNotVerified => Some("login_not_verified"),
            Notice::HerokuUnavailable => Some("heroku_unavailable"),
            Notice::LoggedOut => Some("logged_out"),
        }
    }
}

/// Renders the JSON error body: `{"id": ..., "message": ...}`, in Heroku's own error shape.
pub fn json(notice: Notice) -> Vec<u8> {
    let body = [("id", Some(Field::Str(notice.json_id()))), ("message", Some(Field::Str(notice.message())))];
    json::write_object(&body).into_bytes()
}

/// Every notice, in the order the documentation lists them.
pub const ALL_NOTICES: [Notice; 6] = [
    Notice::Unauthorized,
    Notice::Forbidden,
    Notice::AccessDenied,
    Notice::LoginNotVerified,
    Notice::HerokuUnavailable,
    Notice::LoggedOut,
];

/// The placeholder that operator pages use for the page's action link.
pub const ACTION_URL_PLACEHOLDER: &str = "{{action_url}}";

/// The HTML pages in use: the built-in ones, or the operator's replacements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pages {
    custom: Vec<(Notice, String)>,
}

impl Pages {
    /// Replaces the built-in page for `notice` with `html`.
    pub fn replace(&mut self, notice: Notice, html: String) {
        self.custom.retain(|(existing, _)| *existing != notice);
        self.custom.push((notice, html));
    }

    /// Renders the page for `notice`. An operator's page gets `{{action_url}}` replaced by
    /// the HTML-escaped `action_href`.
    pub fn html(&self, notice: Notice, action_href: &str) -> Vec<u8> {
        match self.custom.iter().find(|(custom, _)| *custom == notice) {
            Some((_, page)) => page.replace(ACTION_URL_PLACEHOLDER, &escape_html(action_href)).into_bytes(),
            None => html(notice, action_href),
        }
    }
}

/// Renders the HTML page for `notice`, with its one action linking to `action_href`.
///
/// `action_href` must already be a safe same-origin path; it is HTML-escaped here.
pub fn html(notice: Notice, action_href: &str) -> Vec<u8> {
    let title = notice.title();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n<p>{message}</p>\n<a class=\"action\" href=\"{href}\">{action}</a>\n\
         </main>\n</body>\n</html>\n",
        message = notice.message(),
        href = escape_html(action_href),
        action = notice.action(),
    )
    .into_bytes()
}

/// Renders the short page sent with a redirect, for clients that do not follow it.
pub fn redirect_html(location: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Redirecting</title></head>\
         <body><p>Continue to <a href=\"{href}\">the next page</a>.</p></body></html>\n",
        href = escape_html(location)
    )
    .into_bytes()
}

/// The look shared by every built-in page: one centred card, Heroku's purple, system fonts,
/// and full width without margins on screens narrower than 480px.
const STYLE: &str = "body{margin:0;font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
background:#f6f5fb;color:#1f1b2e}main{max-width:32rem;margin:12vh auto;padding:2rem;\
background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(40,30,80,.12)}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem;color:#430098}p{margin:0 0 1.5rem}\
a.action{display:inline-block;padding:.75rem 1.25rem;border-radius:6px;background:#79589f;\
color:#fff;font-weight:600;text-decoration:none}a.action:hover{background:#430098}\
a.action:focus-visible{outline:3px solid #f4a261;outline-offset:2px}\
@media (max-width:480px){main{margin:0;border-radius:0;box-shadow:none;min-height:100vh;box-sizing:border-box;padding:1.5rem}}";

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Notice; 6] = ALL_NOTICES;

    #[test]
    fn json_has_id_and_message() {
        for notice in ALL {
            let value: serde_json::Value = serde_json::from_slice(&json(notice)).unwrap();
            assert_eq!(value["id"], notice.json_id());
            assert!(value["message"].as_str().unwrap().len() > 10);
        }
        let unauthorized: serde_json::Value = serde_json::from_slice(&json(Notice::Unauthorized)).unwrap();
        assert_eq!(unauthorized["id"], "unauthorized");
    }

    #[test]
    fn html_pages_are_complete() {
        for notice in ALL {
            let page = String::from_utf8(html(notice, "/start")).unwrap();
            assert!(page.contains("<html lang=\"en\">"));
            assert!(page.contains(&format!("<title>{}</title>", notice.title())));
            assert!(page.contains(&format!("<h1>{}</h1>", notice.title())));
            assert!(page.contains("href=\"/start\""));
            assert!(!page.contains("http://"), "no external assets");
            assert!(!page.contains("https://"), "no external assets");
        }
    }

    #[test]
    fn operator_page_replaces_builtin() {
        let mut pages = Pages::default();
        pages.replace(Notice::Forbidden, "<p>No entry. <a href=\"{{action_url}}\">Switch</a></p>".into());
        let page = String::from_utf8(pages.html(Notice::Forbidden, "/x?a=1&b=2")).unwrap();
        assert_eq!(page, "<p>No entry. <a href=\"/x?a=1&amp;b=2\">Switch</a></p>");
        let builtin = String::from_utf8(pages.html(Notice::AccessDenied, "/")).unwrap();
        assert!(builtin.contains("<h1>Access denied</h1>"));
    }

    #[test]
    fn action_link_is_escaped() {
        let page = String::from_utf8(html(Notice::Forbidden, "/a?b=\"><script>")).unwrap();
        assert!(page.contains("href=\"/a?b=&quot;&gt;&lt;script&gt;\""));
    }
}
