//! The plugin configuration as Envoy passes it to `on_configure`. Credentials come from
//! the "environment" when the JSON leaves them out.
//!
//! Properties: nothing panics; an accepted configuration has a key of 32 bytes or more,
//! three distinct route paths of the documented form, and a gate that handles requests.

#![no_main]

use heroku_bouncer::config;
use heroku_bouncer::gate::{Gate, Request};
use heroku_bouncer_fuzz::{check_reply_for, CountingRandom, NOW};
use libfuzzer_sys::fuzz_target;

fn environment(name: &str) -> Option<String> {
    match name {
        "HEROKU_OAUTH_ID" => Some("env-client".into()),
        "HEROKU_OAUTH_SECRET" => Some("env-secret".into()),
        "SECRET_KEY" => Some("env-secret-key-0123456789abcdef01234567".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = config::parse(data, &environment) else {
        return;
    };
    assert!(config.secret_key.len() >= config::MIN_SECRET_KEY_BYTES);
    let routes = [&config.callback_path, &config.forbidden_path, &config.logout_path];
    for route in routes {
        assert!(route.len() >= 2, "{route:?}");
        assert!(route.starts_with('/'), "{route:?}");
        assert!(!route.starts_with("//"), "{route:?}");
        assert!(route.ends_with('/'), "{route:?}");
    }
    assert_ne!(routes[0], routes[1]);
    assert_ne!(routes[0], routes[2]);
    assert_ne!(routes[1], routes[2]);
    assert!(!config.callout_timeout.is_zero());

    let authorize_url = config.authorize_url.clone();
    let gate = Gate::new(config);
    for path in ["/", "/auth/heroku/callback/?code=x&state=y", "/healthz"] {
        let headers = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            ("accept".to_string(), b"text/html".to_vec()),
        ];
        let outcome = gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::new(8));
        if let heroku_bouncer::gate::Step::Reply(reply) = &outcome.step {
            check_reply_for(reply, &authorize_url);
        }
    }
});
