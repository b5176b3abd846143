//! The checked-in Envoy configurations: `envoy.yaml` loads the filter for real Heroku, and
//! `envoy-local.yaml` serves a complete login against the stand-in.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Envoy's validate mode builds every filter, so `on_configure` runs on the plugin JSON.
fn validate(config: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("validate-{}-{run}.yaml", std::process::id()));
    let config = config.replace(
        "target/wasm32-wasip1/release/heroku_bouncer.wasm",
        &wasm_path().display().to_string(),
    );
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(envoy_binary());
    command.args(["--mode", "validate", "--use-dynamic-base-id", "-l", "info", "-c"]).arg(&path);
    for name in ["HEROKU_OAUTH_ID", "HEROKU_OAUTH_SECRET", "SECRET_KEY"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run envoy --mode validate");
    let _ = std::fs::remove_file(&path);
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), log)
}

#[test]
fn production_config_loads_with_credentials() {
    let env = [
        ("HEROKU_OAUTH_ID", "01234567-89ab-cdef-0123-456789abcdef"),
        ("HEROKU_OAUTH_SECRET", "a-client-secret"),
        ("SECRET_KEY", "0123456789abcdef0123456789abcdef"),
    ];
    let (ok, log) = validate(&repo_file("envoy.yaml"), &env);
    assert!(ok, "{log}");
    assert!(log.contains("heroku-bouncer configured"), "{log}");
    assert!(!log.contains("a-client-secret"));
}

#[test]
fn production_config_reads_previous_keys() {
    let mut env = vec![
        ("HEROKU_OAUTH_ID", "01234567-89ab-cdef-0123-456789abcdef"),
        ("HEROKU_OAUTH_SECRET", "a-client-secret"),
        ("SECRET_KEY", "0123456789abcdef0123456789abcdef"),
        ("SECRET_KEY_PREVIOUS", "fedcba9876543210fedcba9876543210,too-short"),
    ];
    let (ok, log) = validate(&repo_file("envoy.yaml"), &env);
    assert!(!ok, "a short previous key must stop Envoy, which proves the variable is read:\n{log}");
    assert!(log.contains("previous_secret_keys"), "{log}");
    assert!(!log.contains("too-short"), "no key in the log");

    env[3].1 = "fedcba9876543210fedcba9876543210";
    let (ok, log) = validate(&repo_file("envoy.yaml"), &env);
    assert!(ok, "{log}");
}

#[test]
fn production_config_refuses_without_credentials() {
    let (ok, log) = validate(&repo_file("envoy.yaml"), &[]);
    assert!(!ok, "Envoy must not start without credentials:\n{log}");
    assert!(log.contains("heroku-bouncer failed to start"), "{log}");
}

#[test]
fn local_config_serves_a_login() {
    let standin = Standin::start(StandinConfig::default()).unwrap();
    let app = DemoApp::start().unwrap();
    let config = repo_file("envoy-local.yaml")
        .replace("port_value: 9901", "port_value: 0")
        .replace("port_value: 10000", "port_value: 0")
        .replace("port_value: 9292", &format!("port_value: {}", standin.addr().port()))
        .replace("http://127.0.0.1:9292", &standin.base_url())
        .replace("port_value: 8080", &format!("port_value: {}", app.addr().port()))
        .replace(
            "target/wasm32-wasip1/release/heroku_bouncer.wasm",
            &wasm_path().display().to_string(),
        );
    let setup = Setup { credentials_from_env: true, ..Setup::default() };
    let envoy = Envoy::start(&config, &setup).unwrap_or_else(|log| panic!("{log}"));
    standin.set_redirect_uri(&format!("{}/auth/heroku/callback/", envoy.base_url()));

    let mut browser = Browser::default();
    let page = browser.follow(&format!("{}/hello", envoy.base_url()), 6);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("ada@example.com"), "{}", page.body);
    let health = browser.get(&format!("{}/healthz", envoy.base_url()));
    assert_eq!(health.status, 200, "the health check skips the login");
}
