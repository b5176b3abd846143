//! Heroku's token and account responses. The first input byte picks the status, the
//! second the content type, and the rest is the body.
//!
//! Properties: nothing panics; an accepted response has a strict email, a printable id and
//! token, a positive lifetime, and a name that encodes to printable ASCII.

#![no_main]

use heroku_bouncer::allow::split_email;
use heroku_bouncer::gate::encode_header_text;
use heroku_bouncer::heroku::{parse_account, parse_tokens, CalloutResponse};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/vnd.heroku+json; version=3"),
    Some("text/html"),
    Some(""),
    None,
];

fuzz_target!(|data: &[u8]| {
    let [status_pick, type_pick, body @ ..] = data else {
        return;
    };
    let status = match status_pick % 4 {
        0 | 1 => Some(200),
        2 => Some(u16::from(*status_pick) + 100),
        _ => None,
    };
    let response = CalloutResponse {
        status,
        content_type: CONTENT_TYPES[usize::from(*type_pick) % CONTENT_TYPES.len()].map(str::to_string),
        next_range: None,
        body: body.to_vec(),
    };

    if let Ok(tokens) = parse_tokens(&response, 28_800) {
        assert_eq!(response.status, Some(200));
        let token = tokens.access_token.expose();
        assert!(!token.is_empty() && token.bytes().all(|byte| byte.is_ascii_graphic()));
        assert!(tokens.expires_in_s > 0);
    }
    if let Ok(account) = parse_account(&response) {
        assert_eq!(response.status, Some(200));
        assert!(split_email(&account.email).is_some(), "email {:?}", account.email);
        assert_eq!(account.email.matches('@').count(), 1);
        assert!(!account.id.is_empty() && account.id.bytes().all(|byte| byte.is_ascii_graphic()));
        if let Some(name) = &account.name {
            let encoded = encode_header_text(name);
            assert!(encoded.bytes().all(|byte| byte == b' ' || byte.is_ascii_graphic()), "{encoded:?}");
        }
    }
});
