//! What operators watch: every counter the filter defines appears in Envoy's `/stats` and
//! `/stats/prometheus` under its documented name with the right count, and each login
//! decision writes one log line without any token, code, secret or cookie value.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::*;
use heroku_bouncer::seal::Sealer;
use heroku_bouncer::secret::Secret;
use heroku_bouncer::session::Session;
use serde_json::json;

const ADA: &str = "ada@example.com";
const GRACE: &str = "grace@heroku.com";

fn read(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Returns the counter names in `COUNTER_NAMES` of src/filter.rs, without the
/// `heroku_bouncer.` prefix. Read from the source, so a new counter joins this test.
fn defined_counters() -> Vec<String> {
    let source = read("src/filter.rs");
    let start = source.find("const COUNTER_NAMES").expect("COUNTER_NAMES in src/filter.rs");
    let list = &source[start..];
    let list = &list[list.find('[').unwrap()..list.find("];").unwrap()];
    let names: Vec<String> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|name| name.strip_prefix("heroku_bouncer.").unwrap_or_else(|| panic!("{name} lacks the prefix")).to_string())
        .collect();
    assert!(names.len() >= 10, "only {names:?} found in COUNTER_NAMES");
    names
}

/// Returns the counter names that the README lists after "Counters, in `/stats`".
fn documented_counters() -> BTreeSet<String> {
    let readme = read("README.md");
    let start = readme.find("Counters, in `/stats`").expect("the counter paragraph in README.md");
    let paragraph = readme[start..].split("\n\n").next().unwrap();
    paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| !word.is_empty() && word.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_'))
        .map(str::to_string)
        .collect()
}

/// Reads `name: value` lines of the admin `/stats` page for the filter's counters.
fn stats_values(envoy: &Envoy) -> BTreeMap<String, u64> {
    envoy
        .admin_get("/stats?filter=^wasmcustom\\.heroku_bouncer\\.")
        .lines()
        .filter_map(|line| line.strip_prefix("wasmcustom.heroku_bouncer."))
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.trim().parse().expect("a counter value")))
        .collect()
}

/// Reads the filter's counters from `/stats/prometheus`: lines like
/// `heroku_bouncer_login_started{} 3`, each after a `# TYPE ... counter` line.
fn prometheus_values(envoy: &Envoy) -> BTreeMap<String, u64> {
    let text = envoy.admin_get("/stats/prometheus");
    let mut values = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE heroku_bouncer_") {
            assert!(rest.ends_with(" counter"), "{line}");
        }
        let Some(rest) = line.strip_prefix("heroku_bouncer_") else { continue };
        let (series, value) = rest.rsplit_once(' ').unwrap();
        let name = series.trim_end_matches("{}");
        values.insert(name.to_string(), value.parse().unwrap_or_else(|_| panic!("{line}")));
    }
    values
}

#[test]
fn counters_in_stats_and_prometheus() {
    let defined = defined_counters();
    assert_eq!(
        defined.iter().cloned().collect::<BTreeSet<_>>(),
        documented_counters(),
        "README.md lists exactly the counters in COUNTER_NAMES"
    );

    let stack = Stack::start(Setup::with_plugin(json!({"allow": {"emails": [ADA]}})));

    // A login, a user outside the allow rule, a bad cookie, an API call without a session,
    // and a logout.
    let mut ada = Browser::default();
    assert_eq!(stack.log_in(&mut ada, "/").status, 200);
    stack.standin.set_current_user(GRACE);
    let mut grace = Browser::default();
    assert_eq!(stack.log_in(&mut grace, "/").status, 403);
    let mut forger = Browser::default();
    forger.set_cookie(&stack.url("/"), "herokuoauthsess", "v1.not-a-sealed-session");
    assert_eq!(forger.get(&stack.url("/page")).status, 302);
    let mut script = Browser::default();
    assert_eq!(script.request("GET", &stack.url("/api"), &[("accept", "application/json")]).status, 401);
    assert_eq!(ada.get(&stack.url("/auth/heroku/logout/")).status, 302);

    let expected: BTreeMap<String, u64> = defined
        .iter()
        .map(|name| {
            let count = match name.as_str() {
                // ada, grace, and the forger, whom the bad cookie sends to a login
                "login_started" => 3,
                "login_succeeded" | "login_forbidden" | "session_invalid" | "unauthorized" | "logout" => 1,
                _ => 0,
            };
            (name.clone(), count)
        })
        .collect();

    eventually("the counters to reach their counts", || stats_values(&stack.envoy) == expected);
    assert_eq!(stats_values(&stack.envoy), expected, "/stats as wasmcustom.heroku_bouncer.<name>");
    assert_eq!(prometheus_values(&stack.envoy), expected, "/stats/prometheus as heroku_bouncer_<name>");
}

/// Returns the filter's log lines: those Envoy's `wasm` component writes for this plugin.
fn filter_log_lines(log: &str) -> Vec<String> {
    log.lines().filter(|line| line.contains("[wasm]") && line.contains("heroku_bouncer")).map(str::to_string).collect()
}

fn lines_with<'a>(lines: &'a [String], text: &str) -> Vec<&'a String> {
    lines.iter().filter(|line| line.contains(text)).collect()
}

/// Runs a login to the callback and returns the values a log must never contain: the login
/// state cookie and the `state` and `code` of the callback.
fn login_secrets(stack: &Stack, browser: &mut Browser) -> (Response, Vec<String>) {
    let start = browser.get(&stack.url("/start"));
    let mut secrets: Vec<String> = start
        .all("set-cookie")
        .iter()
        .filter_map(|cookie| cookie.split(';').next()?.split_once('=').map(|(_, value)| value.to_string()))
        .collect();
    let authorize = start.header("location").unwrap().to_string();
    let callback = browser.get(&authorize);
    let Some(location) = callback.header("location").map(str::to_string) else {
        return (callback, secrets);
    };
    for (key, value) in form_urlencoded_pairs(&location) {
        if key == "code" || key == "state" {
            secrets.push(value);
        }
    }
    (browser.get(&location), secrets)
}

fn form_urlencoded_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map(|(_, query)| query).unwrap_or("");
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn login_decisions_logged_once() {
    let stack = Stack::start(Setup::with_plugin(json!({"allow": {"emails": [ADA]}})));
    let mut never_logged: Vec<String> = vec![CLIENT_SECRET.to_string(), SECRET_KEY.to_string()];

    // Success: ada logs in, and her session contains an access and a refresh token.
    let mut ada = Browser::default();
    let (response, secrets) = login_secrets(&stack, &mut ada);
    assert_eq!(response.status, 302, "{}", response.body);
    never_logged.extend(secrets);
    let cookie = ada.cookie(&stack.url("/"), "herokuoauthsess").unwrap();
    let sealer = Sealer::new(&Secret::new(SECRET_KEY));
    let opened = Session::open(&sealer, "herokuoauthsess", cookie.as_bytes(), u64::MAX / 4, u64::MAX / 2)
        .unwrap_or_else(|error| panic!("open the session cookie: {error}"));
    never_logged.push(opened.session.access_token.expose().to_string());
    never_logged.push(opened.session.refresh_token.as_ref().expect("a refresh token").expose().to_string());
    never_logged.push(cookie);

    // Forbidden: grace is not in the allow rule.
    stack.standin.set_current_user(GRACE);
    let mut grace = Browser::default();
    let (response, secrets) = login_secrets(&stack, &mut grace);
    assert_eq!(response.header("location"), Some("/auth/heroku/forbidden/"));
    never_logged.extend(secrets);

    // Failures: the user denies access on Heroku's page, and Heroku's token endpoint fails.
    stack.standin.set_approval(Approval::Deny);
    let (response, secrets) = login_secrets(&stack, &mut Browser::default());
    assert_eq!(response.status, 403);
    never_logged.extend(secrets);
    stack.standin.set_approval(Approval::AutoApprove);
    stack.standin.set_fault(Endpoint::Token, Some(Fault::Status(500)));
    let (response, secrets) = login_secrets(&stack, &mut Browser::default());
    assert_eq!(response.status, 502);
    never_logged.extend(secrets);

    eventually("four login decisions in the log", || {
        let lines = filter_log_lines(&stack.envoy.log());
        lines_with(&lines, "login succeeded").len() + lines_with(&lines, "login forbidden").len()
            + lines_with(&lines, "login failed").len()
            >= 4
    });
    let lines = filter_log_lines(&stack.envoy.log());

    let succeeded = lines_with(&lines, "login succeeded");
    assert_eq!(succeeded.len(), 1, "{lines:#?}");
    assert!(succeeded[0].contains("[info]"), "{}", succeeded[0]);
    assert!(succeeded[0].ends_with(&format!("login succeeded for {ADA}")), "{}", succeeded[0]);

    let forbidden = lines_with(&lines, "login forbidden");
    assert_eq!(forbidden.len(), 1, "{lines:#?}");
    assert!(forbidden[0].contains("[info]"), "{}", forbidden[0]);
    assert!(forbidden[0].contains(&format!("login forbidden for {GRACE}")), "{}", forbidden[0]);

    let failed = lines_with(&lines, "login failed");
    assert_eq!(failed.len(), 2, "one line for each failed login: {lines:#?}");
    assert!(failed[0].contains("[warning]"), "{}", failed[0]);
    assert!(failed[0].contains("Heroku returned error \"access_denied\""), "{}", failed[0]);
    assert!(failed[1].contains("[warning]"), "{}", failed[1]);
    assert!(failed[1].contains("Heroku token request failed: status 500"), "{}", failed[1]);

    let log = stack.envoy.log();
    for secret in never_logged.iter().filter(|secret| secret.len() >= 8) {
        assert!(!log.contains(secret.as_str()), "the log contains a secret value ({} bytes):\n{log}", secret.len());
    }
    assert!(never_logged.len() >= 12, "collected {} secret values", never_logged.len());
}
