//! Plugin configuration through a real Envoy: bad configurations stop Envoy with one
//! critical line that names the key, and credentials can come from the environment.

mod common;

use common::*;
use serde_json::json;

fn rejected_log(plugin: serde_json::Value) -> String {
    let setup = Setup::with_plugin(plugin);
    let standin = Standin::start(setup.standin.clone()).unwrap();
    let app = DemoApp::start().unwrap();
    let config = render_envoy_config(&setup, &standin, &app);
    Envoy::expect_rejected(&config, &setup)
}

#[test]
fn bad_configurations_are_refused() {
    let cases = [
        (json!({"forbidden_pathh": "/x/"}), "forbidden_pathh"),
        (json!({"secret_key": "too-short-key-value"}), "secret_key"),
        (json!({"path": "/auth/heroku/callback"}), "path"),
        (json!({"scope": 5}), "scope"),
        (json!({"allow": {"email_domains": ["*.heroku.com"]}}), "allow.email_domains"),
        (json!({"client_secret": ""}), "client_secret"),
    ];
    for (plugin, key) in cases {
        let log = rejected_log(plugin.clone());
        let line = log
            .lines()
            .find(|line| line.contains("heroku-bouncer failed to start"))
            .unwrap_or_else(|| panic!("no refusal line for {plugin}:\n{log}"));
        assert!(line.contains("[critical]"), "{line}");
        assert!(line.contains(&format!("\"{key}\"")), "the line names {key}: {line}");
        assert!(!log.contains("too-short-key-value"), "the key is never logged");
        assert!(!log.contains(CLIENT_SECRET), "the client secret is never logged");
    }
}

#[test]
fn credentials_come_from_environment() {
    let setup = Setup { credentials_from_env: true, ..Setup::default() };
    let stack = Stack::start(setup);
    let mut browser = Browser::default();
    let response = stack.log_in(&mut browser, "/");
    assert_eq!(response.status, 200, "{}", response.body);
    let exchange = &stack.standin.requests(Endpoint::Token)[0];
    let body = String::from_utf8_lossy(&exchange.body).to_string();
    assert!(body.contains(&format!("client_secret={CLIENT_SECRET}")), "the secret came from HEROKU_OAUTH_SECRET");
    let authorize = &stack.standin.requests(Endpoint::Authorize)[0];
    assert!(authorize.path.contains(&format!("client_id={CLIENT_ID}")));
}

#[test]
fn missing_credentials_stop_envoy() {
    let setup = Setup { credentials_from_env: true, ..Setup::default() };
    let standin = Standin::start(setup.standin.clone()).unwrap();
    let app = DemoApp::start().unwrap();
    let config = render_envoy_config(&setup, &standin, &app);
    let without_env = Setup { credentials_from_env: false, ..setup };
    let log = Envoy::expect_rejected(&config, &without_env);
    assert!(log.contains("\"client_id\": missing; set \"client_id\" in the plugin configuration or HEROKU_OAUTH_ID"), "{log}");
}
