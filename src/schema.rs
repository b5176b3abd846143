//! JSON Schema of the plugin configuration, checked in as `docs/config.schema.json`.
//!
//! Built only with the `schema` feature, so the wasm module does not carry `schemars`.
//! `tests/schema.rs` compares the checked-in file with [`plugin_config_schema`].

use serde_json::{json, Value};

use crate::config::RawConfig;
use crate::pages::ALL_NOTICES;

const DESCRIPTION: &str = "The plugin configuration of heroku-bouncer for Envoy: Envoy's \
    `configuration` value, or Istio's `pluginConfig`. Every key is optional, but the three \
    credentials must come from here or from the VM's environment variables.";

/// Generates the JSON Schema (draft 2020-12) of the plugin configuration.
pub fn plugin_config_schema() -> Value {
    let mut schema = schemars::schema_for!(RawConfig).to_value();
    if let Some(root) = schema.as_object_mut() {
        root.insert("description".into(), json!(DESCRIPTION));
    }

    // Page names come from the code, so the schema lists exactly the pages `parse` accepts.
    let page_names: Vec<&str> = ALL_NOTICES.iter().filter_map(|notice| notice.config_key()).collect();
    if let Some(pages) = schema.pointer_mut("/properties/pages").and_then(Value::as_object_mut) {
        pages.insert("propertyNames".into(), json!({ "enum": page_names }));
    }
    schema
}
