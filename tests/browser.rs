//! Browser tests: a real headless Chromium goes through the login as a person would, with a
//! real Envoy running the built filter in front of the demo app and the Heroku stand-in
//! showing its consent page (`Approval::Prompt`).
//!
//! They need Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them).
//! Without chromedriver they fail with a message saying so. A failing test saves a
//! screenshot and the page source under `target/test-artifacts/<test name>/`.

mod common;
mod web;

use std::path::PathBuf;

use common::*;
use serde_json::json;
use web::{Web, DESKTOP, PHONE};

const CONSENT_TITLE: &str = "Authorize standin-client-id?";
const ADA: &str = "ada@example.com";
const GRACE: &str = "grace@heroku.com";

/// Starts a stack whose stand-in shows a consent page, as Heroku does the first time.
fn prompting(plugin: serde_json::Value) -> Stack {
    let mut setup = Setup::with_plugin(plugin);
    setup.standin.approval = Approval::Prompt;
    Stack::start(setup)
}

/// Waits for the stand-in's consent page, as Heroku's authorize page would show it.
async fn wait_for_consent(web: &Web, stack: &Stack) {
    web.wait_for_heading(CONSENT_TITLE).await;
    let url = web.url().await;
    assert!(url.starts_with(&format!("{}/oauth/authorize?", stack.standin.base_url())), "{url}");
}

async fn allow_as(web: &Web, email: &str) {
    web.click(&format!("input[name=user][value=\"{email}\"]")).await;
    web.click("button[name=authorize][value=Allow]").await;
}

fn has_session(cookies: &[String]) -> bool {
    cookies.iter().any(|name| name == "herokuoauthsess")
}

#[test]
fn deep_link_survives_consent() {
    let stack = prompting(json!({}));
    let deep_link = stack.url("/reports/2024?month=5&view=full");
    web::run("deep_link_survives_consent", async |web| {
        web.goto(&deep_link).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;

        web.wait_for_heading(&format!("Signed in as {ADA}")).await;
        assert_eq!(web.url().await, deep_link);
        let page = web.text_of("body").await.unwrap_or_default();
        assert!(page.contains("Ada Lovelace"), "the demo page shows the name: {page}");
        assert!(page.contains("GET /reports/2024?month=5&view=full"), "{page}");
        assert!(has_session(&web.cookie_names().await));
    });
    // Chromium also requests /favicon.ico, so look for the deep link among the requests.
    let seen = stack.app.requests();
    let deep = seen.iter().find(|request| request.path == "/reports/2024?month=5&view=full");
    let deep = deep.expect("the app received the deep link");
    assert_eq!(deep.header("x-heroku-user-email"), Some(ADA));
}

#[test]
fn deny_shows_access_denied_and_retry() {
    let stack = prompting(json!({}));
    web::run("deny_shows_access_denied_and_retry", async |web| {
        web.goto(&stack.url("/inbox")).await;
        wait_for_consent(web, &stack).await;
        web.click_link("Deny").await;

        web.wait_for_heading("Access denied").await;
        assert_eq!(web.title().await, "Access denied");
        let url = web.url().await;
        assert!(url.starts_with(&stack.url("/auth/heroku/callback/?error=access_denied")), "{url}");
        assert!(!has_session(&web.cookie_names().await), "Deny leaves no session");

        assert_eq!(web.link_href("Log in again").await, "/");
        web.click_link("Log in again").await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;
        web.wait_for_heading(&format!("Signed in as {ADA}")).await;
        assert_eq!(web.url().await, stack.url("/"));
    });
    assert_eq!(stack.standin.calls(Endpoint::Token), 1, "only the retried login exchanged a code");
}

#[test]
fn user_outside_allow_rule_sees_forbidden() {
    let stack = prompting(json!({"allow": {"email_domains": ["heroku.com"]}}));
    web::run("user_outside_allow_rule_sees_forbidden", async |web| {
        web.goto(&stack.url("/admin")).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;

        web.wait_for_heading("Access not allowed").await;
        assert_eq!(web.url().await, stack.url("/auth/heroku/forbidden/"));
        assert_eq!(web.title().await, "Access not allowed");
        assert!(!has_session(&web.cookie_names().await), "a forbidden user gets no session");

        // The page's action logs out, so that the next login can pick another account.
        web.click_link("Log in with another account").await;
        web.wait_for_heading("Logged out").await;
        web.click_link("Log in again").await;
        wait_for_consent(web, &stack).await;
        allow_as(web, GRACE).await;
        web.wait_for_heading(&format!("Signed in as {GRACE}")).await;
    });
    let emails: Vec<_> = stack.app.requests().iter().filter_map(|r| r.header("x-heroku-user-email").map(str::to_string)).collect();
    assert!(!emails.is_empty(), "grace reached the app");
    assert!(emails.iter().all(|email| email == GRACE), "ada never reached the app: {emails:?}");
}

#[test]
fn logout_shows_logged_out_then_login() {
    let stack = prompting(json!({}));
    web::run("logout_shows_logged_out_then_login", async |web| {
        web.goto(&stack.url("/")).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;
        web.wait_for_heading(&format!("Signed in as {ADA}")).await;

        web.click_link("Log out").await;
        web.wait_for_heading("Logged out").await;
        assert_eq!(web.url().await, stack.url("/"));
        assert_eq!(web.title().await, "Logged out");
        assert!(!has_session(&web.cookie_names().await), "logout removes the session cookie");

        // The page's link starts a new login, which asks Heroku again.
        assert_eq!(web.link_href("Log in again").await, "/");
        web.click_link("Log in again").await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;
        web.wait_for_heading(&format!("Signed in as {ADA}")).await;
    });
    assert_eq!(stack.standin.calls(Endpoint::Token), 2, "the second visit logged in again");
}

#[test]
fn two_windows_log_in_at_once() {
    let stack = prompting(json!({}));
    let first_link = stack.url("/tab/one?x=1");
    let second_link = stack.url("/tab/two?y=2");
    web::run("two_windows_log_in_at_once", async |web| {
        let first = web.current_window().await;
        web.goto(&first_link).await;
        wait_for_consent(web, &stack).await;

        let second = web.open_window().await;
        web.goto(&second_link).await;
        wait_for_consent(web, &stack).await;
        // Cookies are kept per host, not per port, so the stand-in's page on 127.0.0.1 also
        // sees the filter's cookies.
        let pending = web.cookie_names().await;
        let states = pending.iter().filter(|name| name.starts_with("herokuoauthsess-state-")).count();
        assert_eq!(states, 2, "each window has its own login state: {pending:?}");

        // The window that started last finishes first.
        allow_as(web, ADA).await;
        web.wait_for_heading(&format!("Signed in as {ADA}")).await;
        assert_eq!(web.url().await, second_link);

        web.switch_to(&first).await;
        assert_eq!(web.heading().await, CONSENT_TITLE, "the first window still waits on the consent page");
        allow_as(web, ADA).await;
        web.wait_for_heading(&format!("Signed in as {ADA}")).await;
        assert_eq!(web.url().await, first_link);

        let left = web.cookie_names().await;
        assert!(!left.iter().any(|name| name.contains("-state-")), "both logins cleared their state: {left:?}");
        web.switch_to(&second).await;
        assert_eq!(web.url().await, second_link);
    });
    assert_eq!(stack.standin.calls(Endpoint::Token), 2);
}

#[test]
fn fetch_gets_401_json_after_logout() {
    let stack = prompting(json!({}));
    web::run("fetch_gets_401_json_after_logout", async |web| {
        web.goto(&stack.url("/app")).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;
        web.wait_for_heading(&format!("Signed in as {ADA}")).await;

        let logged_in = web.fetch_json("/api/items?page=1").await;
        assert_eq!(logged_in.status, 200, "{logged_in:?}");
        assert!(!logged_in.redirected);
        let echo = logged_in.json();
        assert_eq!(echo["path"], "/api/items?page=1");
        assert_eq!(echo["headers"]["x-heroku-user-email"], json!([ADA]));

        web.click_link("Log out").await;
        web.wait_for_heading("Logged out").await;

        let logged_out = web.fetch_json("/api/items?page=1").await;
        assert_eq!(logged_out.status, 401, "{logged_out:?}");
        assert!(!logged_out.redirected, "an XHR is never sent to Heroku's login");
        assert_eq!(logged_out.content_type, "application/json");
        let error = logged_out.json();
        assert_eq!(error["id"], "unauthorized");
        assert!(error["message"].as_str().is_some_and(|message| !message.is_empty()), "{error}");
    });
    let api_calls = stack.app.requests().iter().filter(|request| request.path.starts_with("/api/")).count();
    assert_eq!(api_calls, 1, "only the logged-in fetch reached the app");
}

/// One page as a person meets it, checked at desktop and phone width.
struct PageCheck {
    /// File name stem of its screenshots.
    name: &'static str,
    heading: String,
    /// CSS selector of the page's action: the link or button that is the next step.
    action: &'static str,
}

/// Checks the page in the browser at both widths and saves a screenshot of each.
async fn check_page(web: &Web, page: &PageCheck) {
    web.wait_for_heading(&page.heading).await;
    for (size, label) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
        web.set_viewport(size).await;
        let layout = web.execute(&LAYOUT_SCRIPT.replace("ACTION", page.action)).await;
        let context = format!("{} at {label} width: {layout}", page.name);

        assert_eq!(layout["lang"], "en", "{context}");
        assert!(layout["title"].as_str().is_some_and(|title| !title.is_empty()), "{context}");
        assert_eq!(layout["viewportWidth"], size.0, "{context}");
        assert_eq!(layout["overflowsSideways"], false, "no sideways scrolling: {context}");
        assert!(layout["fontPx"].as_f64().is_some_and(|px| px >= 16.0), "body text is at least 16px: {context}");
        assert_eq!(layout["externalResources"], 0, "no external assets: {context}");
        assert_eq!(layout["actionInView"], true, "the action is visible without scrolling: {context}");
        // WCAG 2.2 asks for targets of at least 24 by 24 CSS pixels.
        assert!(layout["actionHeight"].as_f64().is_some_and(|px| px >= 24.0), "{context}");

        web.screenshot(&screenshot_dir().join(format!("{}-{label}.png", page.name))).await;
    }
    web.set_viewport(DESKTOP).await;
}

/// Measures the page; `ACTION` is replaced by the action's CSS selector.
const LAYOUT_SCRIPT: &str = r#"
    const root = document.documentElement;
    const action = document.querySelector("ACTION");
    const box = action ? action.getBoundingClientRect() : null;
    return {
        lang: root.lang,
        title: document.title,
        viewportWidth: window.innerWidth,
        overflowsSideways: root.scrollWidth > window.innerWidth,
        fontPx: parseFloat(getComputedStyle(document.body).fontSize),
        externalResources: document.querySelectorAll("link[href], script[src], img[src], iframe").length,
        actionInView: !!box && box.width > 0 && box.top >= 0 && box.bottom <= window.innerHeight
            && box.left >= 0 && box.right <= window.innerWidth,
        actionHeight: box ? box.height : 0,
    };
"#;

/// Returns the folder for page screenshots: `$SCREENSHOT_DIR` (which `make screenshots`
/// sets to docs/screenshots), or target/screenshots.
fn screenshot_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("SCREENSHOT_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target/screenshots"),
    }
}

#[test]
fn pages_fit_desktop_and_phone() {
    let stack = prompting(json!({"allow": {"email_domains": ["heroku.com"]}}));
    web::run("pages_fit_desktop_and_phone", async |web| {
        let page = |name, heading: &str, action| PageCheck { name, heading: heading.to_string(), action };

        web.goto(&stack.url("/")).await;
        check_page(web, &page("consent", CONSENT_TITLE, "button[value=Allow]")).await;

        web.click_link("Deny").await;
        check_page(web, &page("access-denied", "Access denied", "a.action")).await;

        web.goto(&stack.url("/")).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;
        check_page(web, &page("forbidden", "Access not allowed", "a.action")).await;

        web.click_link("Log in with another account").await;
        check_page(web, &page("logged-out", "Logged out", "a.action")).await;

        // Cookies cleared while the consent page is open: the callback finds no login state.
        web.click_link("Log in again").await;
        wait_for_consent(web, &stack).await;
        web.client.delete_all_cookies().await.expect("clear the browser's cookies");
        allow_as(web, GRACE).await;
        check_page(web, &page("login-not-verified", "Login could not be verified", "a.action")).await;

        stack.standin.set_fault(Endpoint::Token, Some(Fault::Status(503)));
        web.goto(&stack.url("/")).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, GRACE).await;
        check_page(web, &page("heroku-unavailable", "Heroku is unavailable", "a.action")).await;
        stack.standin.set_fault(Endpoint::Token, None);

        web.click_link("Try again").await;
        wait_for_consent(web, &stack).await;
        allow_as(web, GRACE).await;
        check_page(web, &page("demo-app", &format!("Signed in as {GRACE}"), "a[href='/auth/heroku/logout/']")).await;
    });
}

#[test]
fn operator_page_replaces_forbidden() {
    // The same page as the example in README.md.
    let page = "<!DOCTYPE html><html lang='en'><meta name='viewport' content='width=device-width'>\
                <title>No access</title><h1>No access</h1><p>Ask #platform for access, or \
                <a href='{{action_url}}'>use another account</a>.</p></html>";
    let stack = prompting(json!({
        "allow": {"email_domains": ["heroku.com"]},
        "pages": {"forbidden": page}
    }));
    web::run("operator_page_replaces_forbidden", async |web| {
        web.goto(&stack.url("/")).await;
        wait_for_consent(web, &stack).await;
        allow_as(web, ADA).await;

        web.wait_for_heading("No access").await;
        assert_eq!(web.title().await, "No access");
        assert_eq!(web.url().await, stack.url("/auth/heroku/forbidden/"));
        assert_eq!(web.link_href("use another account").await, "/auth/heroku/logout/");
        web.click_link("use another account").await;
        web.wait_for_heading("Logged out").await;
    });
}
