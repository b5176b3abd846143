//! The Istio manifests in `deploy/istio/`: the WasmPlugin's `pluginConfig` is a valid plugin
//! configuration, the manifests agree with each other, and callouts work through clusters
//! named the way Istio names them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use heroku_bouncer::config;
use serde::Deserialize;
use serde_json::Value;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/istio").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Parses every YAML document of a manifest file.
fn documents(name: &str) -> Vec<Value> {
    let text = read(name);
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|error| panic!("{name}: {error}")))
        .collect()
}

fn wasm_plugin() -> Value {
    let mut documents = documents("wasmplugin.yaml");
    assert_eq!(documents.len(), 1, "wasmplugin.yaml holds one resource");
    let plugin = documents.remove(0);
    assert_eq!(plugin["kind"], "WasmPlugin");
    plugin
}

/// Returns the names the WasmPlugin copies from the proxy's environment (`valueFrom: HOST`).
fn host_env_names(plugin: &Value) -> BTreeSet<String> {
    plugin["spec"]["vmConfig"]["env"]
        .as_array()
        .expect("vmConfig.env is a list")
        .iter()
        .filter(|entry| entry["valueFrom"] == "HOST")
        .map(|entry| entry["name"].as_str().expect("env name").to_string())
        .collect()
}

#[test]
fn plugin_config_parses() {
    let plugin = wasm_plugin();
    let json = serde_json::to_vec(&plugin["spec"]["pluginConfig"]).unwrap();
    let from_host = host_env_names(&plugin);
    let env = |name: &str| match name {
        _ if !from_host.contains(name) => None,
        "HEROKU_OAUTH_ID" => Some(CLIENT_ID.to_string()),
        "HEROKU_OAUTH_SECRET" => Some(CLIENT_SECRET.to_string()),
        "SECRET_KEY" => Some(SECRET_KEY.to_string()),
        _ => None,
    };

    let parsed = config::parse(&json, &env).unwrap_or_else(|error| panic!("pluginConfig is rejected: {error}"));
    assert_eq!(parsed.id_cluster, "outbound|443||id.heroku.com");
    assert_eq!(parsed.api_cluster, "outbound|443||api.heroku.com");
    assert_eq!(parsed.id_authority, "id.heroku.com");
    assert_eq!(parsed.api_authority, "api.heroku.com");
    assert_eq!(parsed.client_id, CLIENT_ID, "the client id comes from the environment");
    assert_eq!(parsed.client_secret.expose(), CLIENT_SECRET);
    assert_eq!(parsed.secret_key.expose(), SECRET_KEY);
    assert_eq!(parsed.authorize_url, "https://id.heroku.com/oauth/authorize");
}

#[test]
fn plugin_fails_closed_before_authn() {
    let spec = &wasm_plugin()["spec"];
    assert_eq!(spec["phase"], "AUTHN");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert!(spec["url"].as_str().unwrap().starts_with("oci://"), "{}", spec["url"]);
    for credential in ["client_id", "client_secret", "secret_key"] {
        assert!(spec["pluginConfig"].get(credential).is_none(), "{credential} must come from a Secret, not the manifest");
    }
    for entry in spec["vmConfig"]["env"].as_array().unwrap() {
        assert_eq!(entry["valueFrom"], "HOST", "{entry}");
        assert!(entry.get("value").is_none(), "a HOST variable has no inline value: {entry}");
    }
}

/// Every callout cluster in `pluginConfig` is the cluster Istio builds for a ServiceEntry
/// host and port, and a DestinationRule originates TLS to that host with its SNI.
#[test]
fn egress_covers_callout_clusters() {
    let plugin = wasm_plugin();
    let config = &plugin["spec"]["pluginConfig"];
    let resources = documents("heroku-egress.yaml");
    let namespace = &plugin["metadata"]["namespace"];

    for (cluster_key, authority_key) in [("id_cluster", "id_authority"), ("api_cluster", "api_authority")] {
        let cluster = config[cluster_key].as_str().unwrap();
        let host = config[authority_key].as_str().unwrap();
        let entry = resources
            .iter()
            .find(|resource| resource["kind"] == "ServiceEntry" && resource["spec"]["hosts"][0] == host)
            .unwrap_or_else(|| panic!("no ServiceEntry for {host}"));
        assert_eq!(&entry["metadata"]["namespace"], namespace, "{host}: the gateway's namespace");
        assert_eq!(entry["spec"]["location"], "MESH_EXTERNAL");
        assert_eq!(entry["spec"]["resolution"], "DNS");
        let port = &entry["spec"]["ports"][0];
        assert_eq!(cluster, format!("outbound|{}||{host}", port["number"]), "{cluster_key}");

        let rule = resources
            .iter()
            .find(|resource| resource["kind"] == "DestinationRule" && resource["spec"]["host"] == host)
            .unwrap_or_else(|| panic!("no DestinationRule for {host}"));
        assert_eq!(&rule["metadata"]["namespace"], namespace, "{host}: the gateway's namespace");
        let tls = &rule["spec"]["trafficPolicy"]["tls"];
        assert_eq!(tls["mode"], "SIMPLE", "{host}: Envoy originates TLS");
        assert_eq!(tls["sni"], host);
        assert_eq!(tls["subjectAltNames"][0], host);
    }
}

/// The variables the plugin reads from the proxy are the ones the Deployment patch sets,
/// each from a key of the example Secret.
#[test]
fn secret_reaches_proxy_environment() {
    let plugin = wasm_plugin();
    let expected = host_env_names(&plugin);
    assert_eq!(
        expected,
        ["HEROKU_OAUTH_ID", "HEROKU_OAUTH_SECRET", "SECRET_KEY"].map(String::from).into(),
        "the plugin takes the three credentials from the proxy's environment"
    );

    let secret = documents("secret.yaml").remove(0);
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["namespace"], plugin["metadata"]["namespace"]);
    let patch = documents("gateway-env-patch.yaml").remove(0);
    let container = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "istio-proxy", "Envoy runs in the istio-proxy container");

    let mut set = BTreeSet::new();
    for variable in container["env"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        let reference = &variable["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], secret["metadata"]["name"], "{name}");
        let key = reference["key"].as_str().unwrap();
        assert!(secret["stringData"].get(key).is_some(), "{name}: the Secret has no key {key}");
        set.insert(name.to_string());
    }
    assert_eq!(set, expected);
}

#[test]
fn dockerfile_puts_module_at_plugin_wasm() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
    assert_eq!(instructions, ["FROM scratch", "COPY heroku_bouncer.wasm ./plugin.wasm"]);
    assert!(dockerfile.contains("target/wasm32-wasip1/release"), "the build command names the module's folder");
}

/// Envoy accepts `|` in cluster names, so the filter's callouts reach clusters named like
/// Istio's. The clusters here point at the stand-in over plain HTTP.
#[test]
fn login_through_istio_cluster_names() {
    let plugin = wasm_plugin();
    let plugin_config = plugin["spec"]["pluginConfig"].clone();
    let id_cluster = plugin_config["id_cluster"].as_str().unwrap().to_string();
    let api_cluster = plugin_config["api_cluster"].as_str().unwrap().to_string();

    let setup = Setup { plugin: plugin_config, credentials_from_env: true, ..Setup::default() };
    let standin = Standin::start(setup.standin.clone()).unwrap();
    let app = DemoApp::start().unwrap();
    let mut config = render_envoy_config(&setup, &standin, &app);
    for (harness_name, istio_name) in [("heroku_id", &id_cluster), ("heroku_api", &api_cluster)] {
        let name_line = format!("- name: {harness_name}\n");
        let load_assignment_line = format!("cluster_name: {harness_name}\n");
        assert!(config.contains(&name_line), "{harness_name} in:\n{config}");
        assert!(config.contains(&load_assignment_line), "{harness_name} in:\n{config}");
        config = config
            .replace(&name_line, &format!("- name: \"{istio_name}\"\n"))
            .replace(&load_assignment_line, &format!("cluster_name: \"{istio_name}\"\n"));
    }
    assert!(!config.contains("heroku_id"), "{config}");
    assert!(!config.contains("heroku_api"), "{config}");

    let envoy = Envoy::start(&config, &setup).unwrap_or_else(|log| panic!("Envoy did not start:\n{log}"));
    standin.set_redirect_uri(&format!("{}/auth/heroku/callback/", envoy.base_url()));
    let clusters = envoy.admin_get("/clusters");
    assert!(clusters.contains(&format!("{id_cluster}::")), "{clusters}");

    let mut browser = Browser::default();
    let page = browser.follow(&format!("{}/hello", envoy.base_url()), 6);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(app.requests().last().unwrap().header("x-heroku-user-email"), Some("ada@example.com"));
    assert_eq!(standin.calls(Endpoint::Token), 1, "the code went through {id_cluster}");
    assert_eq!(standin.calls(Endpoint::Account), 1, "the account read went through {api_cluster}");
}

/// Without a ServiceEntry, the gateway has no cluster for the callout. The login then ends
/// on the 502 page, and the log names the missing cluster.
#[test]
fn missing_cluster_fails_login() {
    let missing = "outbound|443||id.heroku.com";
    let stack = Stack::start(Setup::with_plugin(serde_json::json!({"id_cluster": missing})));
    let mut browser = Browser::default();
    let page = stack.log_in(&mut browser, "/hello");
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("Heroku is unavailable"), "{}", page.body);
    assert_eq!(stack.standin.calls(Endpoint::Token), 0);
    eventually("the failed login in the log", || stack.envoy.log().contains(&format!("for cluster {missing}")));
    let log = stack.envoy.log();
    let line = log.lines().find(|line| line.contains("login failed")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&format!("not sent: BadArgument for cluster {missing}")), "{line}");
}
