//! The JSON Schema of the plugin configuration: `docs/config.schema.json` matches what the
//! code generates, and every configuration example in the repository validates against it.

use std::path::{Path, PathBuf};

use heroku_bouncer::config;
use heroku_bouncer::schema::plugin_config_schema;
use serde_json::{json, Value};

const SCHEMA_FILE: &str = "docs/config.schema.json";
const REGENERATE: &str = "UPDATE_SCHEMA=1 cargo test -p heroku-bouncer --features schema --test schema";

fn repo_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo_path(name)).unwrap_or_else(|error| panic!("read {name}: {error}"))
}

fn generated_text() -> String {
    let mut text = serde_json::to_string_pretty(&plugin_config_schema()).unwrap();
    text.push('\n');
    text
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&plugin_config_schema()).expect("the generated schema is a valid JSON Schema")
}

/// Returns the validation errors of `config`, one line each.
fn errors(validator: &jsonschema::Validator, config: &Value) -> Vec<String> {
    validator.iter_errors(config).map(|error| format!("{}: {error}", error.instance_path())).collect()
}

fn assert_valid(validator: &jsonschema::Validator, label: &str, config: &Value) {
    let found = errors(validator, config);
    assert!(found.is_empty(), "{label} does not match {SCHEMA_FILE}:\n{}\n{config:#}", found.join("\n"));
}

#[test]
fn schema_file_is_current() {
    let generated = generated_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(repo_path(SCHEMA_FILE), &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(repo_path(SCHEMA_FILE)).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{SCHEMA_FILE} differs from the schema the code generates; regenerate it with\n  {REGENERATE}"
    );
}

#[test]
fn secrets_are_strings_without_examples() {
    let schema = plugin_config_schema();
    for key in ["client_id", "client_secret", "secret_key"] {
        let property = &schema["properties"][key];
        assert_eq!(property["type"], json!(["string", "null"]), "{key}: {property}");
        for annotation in ["default", "examples", "example", "const", "enum"] {
            assert!(property.get(annotation).is_none(), "{key} has {annotation}: {property}");
        }
    }
    let previous = &schema["properties"]["previous_secret_keys"];
    assert_eq!(previous["items"]["type"], "string", "{previous}");
    assert!(previous.get("default").is_none(), "{previous}");
    assert!(previous.get("examples").is_none(), "{previous}");
}

#[test]
fn schema_rejects_what_parse_rejects() {
    let validator = validator();
    let cases = [
        ("unknown key", json!({"forbiden_path": "/x/"})),
        ("unknown nested key", json!({"allow": {"domains": ["example.com"]}})),
        ("wrong type", json!({"refresh": "yes"})),
        ("timeout 0", json!({"callout_timeout_ms": 0})),
        ("path without trailing slash", json!({"path": "/auth/heroku/callback"})),
        ("path starting with //", json!({"logout_path": "//evil/"})),
        ("unknown page", json!({"pages": {"unauthorized": "<h1>x</h1>"}})),
        ("plain http authorize URL", json!({"authorize_url": "http://id.heroku.com/oauth/authorize"})),
        ("skip path with inner star", json!({"skip_paths": ["/a*/b"]})),
    ];
    for (label, config) in cases {
        assert!(!errors(&validator, &config).is_empty(), "the schema accepts {label}: {config}");
        let with_credentials = credentials().into_iter().chain(config.as_object().unwrap().clone()).collect();
        let parsed = config::parse(Value::Object(with_credentials).to_string().as_bytes(), &|_| None);
        assert!(parsed.is_err(), "parse accepts {label}, so the schema is stricter than the filter");
    }
}

fn credentials() -> serde_json::Map<String, Value> {
    json!({
        "client_id": "example-client-id",
        "client_secret": "example-client-secret",
        "secret_key": "0123456789abcdef0123456789abcdef",
    })
    .as_object()
    .unwrap()
    .clone()
}

/// A default in the schema that differs from the one `parse` applies would mislead readers,
/// so each is fed back to `parse` and must give the same configuration as leaving it out.
#[test]
fn schema_defaults_match_parse() {
    let schema = plugin_config_schema();
    let baseline = format!("{:?}", config::parse(Value::Object(credentials()).to_string().as_bytes(), &|_| None).unwrap());
    let mut checked = 0;
    for (key, property) in schema["properties"].as_object().unwrap() {
        let Some(default) = property.get("default") else { continue };
        let mut config = credentials();
        config.insert(key.clone(), default.clone());
        let parsed = config::parse(Value::Object(config).to_string().as_bytes(), &|_| None)
            .unwrap_or_else(|error| panic!("the default of {key} is rejected: {error}"));
        assert_eq!(format!("{parsed:?}"), baseline, "the schema's default of {key} is not the one parse applies");
        checked += 1;
    }
    let headers = &schema["properties"]["headers"]["properties"];
    for (key, property) in headers.as_object().expect("headers has properties") {
        let default = property.get("default").unwrap_or_else(|| panic!("headers.{key} has no default"));
        let mut config = credentials();
        config.insert("headers".into(), json!({ key: default }));
        let parsed = config::parse(Value::Object(config).to_string().as_bytes(), &|_| None).unwrap();
        assert_eq!(format!("{parsed:?}"), baseline, "the schema's default of headers.{key} is not the one parse applies");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} defaults found in the schema");
}

/// Returns the code blocks of a Markdown file whose fence names `language`.
fn code_blocks(markdown: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, opening) if opening == fence => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Returns the plugin configurations that the README shows: each ```json block, and the
/// `configuration` value of each ```yaml block that shows Envoy's `StringValue` form.
fn readme_plugin_configs() -> Vec<(String, Value)> {
    let readme = read("README.md");
    let mut configs = Vec::new();
    for (index, block) in code_blocks(&readme, "json").iter().enumerate() {
        let config = serde_json::from_str(block)
            .unwrap_or_else(|error| panic!("README.md JSON block {index} is not JSON ({error}):\n{block}"));
        configs.push((format!("README.md JSON block {index}"), config));
    }
    for (index, block) in code_blocks(&readme, "yaml").iter().enumerate() {
        let Ok(yaml) = serde_yaml::from_str::<Value>(block) else { continue };
        let mut found = Vec::new();
        collect_string_values(&yaml, &mut found);
        for config in found {
            configs.push((format!("README.md YAML block {index}"), config));
        }
    }
    configs
}

#[test]
fn readme_examples_validate() {
    let validator = validator();
    let configs = readme_plugin_configs();
    assert!(!configs.is_empty(), "README.md shows no plugin configuration");
    for (label, config) in &configs {
        assert_valid(&validator, label, config);
    }
}

/// Returns the plugin configuration of every Wasm filter in an Envoy bootstrap.
fn envoy_plugin_configs(yaml: &str) -> Vec<Value> {
    let bootstrap: Value = serde_yaml::from_str(yaml).expect("valid YAML");
    let mut found = Vec::new();
    collect_string_values(&bootstrap, &mut found);
    found
}

/// Collects every `google.protobuf.StringValue` whose `value` is a JSON object: the form in
/// which Envoy's Wasm filter takes its `configuration`.
fn collect_string_values(node: &Value, found: &mut Vec<Value>) {
    match node {
        Value::Object(map) => {
            let is_string_value = map.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.protobuf.StringValue");
            if is_string_value {
                let text = map["value"].as_str().expect("a StringValue's value is a string");
                let config: Value = serde_json::from_str(text).expect("the configuration value is JSON");
                assert!(config.is_object(), "the configuration value is a JSON object: {text}");
                found.push(config);
            }
            map.values().for_each(|child| collect_string_values(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_string_values(child, found)),
        _ => {}
    }
}

#[test]
fn envoy_configs_validate() {
    let validator = validator();
    for file in ["envoy.yaml", "envoy-local.yaml"] {
        let configs = envoy_plugin_configs(&read(file));
        assert_eq!(configs.len(), 1, "{file} has one heroku-bouncer filter");
        assert_valid(&validator, file, &configs[0]);
    }
}

#[test]
fn istio_plugin_config_validates() {
    let validator = validator();
    let manifest = read("deploy/istio/wasmplugin.yaml");
    let plugin: Value = serde_yaml::from_str(&manifest).expect("valid YAML");
    assert_eq!(plugin["kind"], "WasmPlugin");
    assert_valid(&validator, "deploy/istio/wasmplugin.yaml pluginConfig", &plugin["spec"]["pluginConfig"]);
}
