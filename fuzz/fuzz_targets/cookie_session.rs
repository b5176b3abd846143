//! The `cookie` header parser and cookie unsealing. Each input line is one `cookie`
//! header; markers name real credentials (see the fixture).
//!
//! Properties: nothing panics; a session or login state opens only from a value the
//! filter sealed, byte for byte; the header sent upstream keeps no cookie of the filter.

#![no_main]

use heroku_bouncer::headers::{cookie_header_without, cookie_pairs};
use heroku_bouncer::seal::{Purpose, Sealer};
use heroku_bouncer::secret::Secret;
use heroku_bouncer::session::{LoginState, Session};
use heroku_bouncer_fuzz::{fixture, substitute, NOW, SECRET_KEY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let sealer = Sealer::new(&Secret::new(SECRET_KEY));
    let input = substitute(data);
    let headers: Vec<&[u8]> = input.split(|byte| *byte == b'\n').collect();
    let (state_name, state_value) = fixture.state_cookie.split_once('=').unwrap();

    for header in &headers {
        for (name, value) in cookie_pairs(header) {
            assert!(!name.contains(&b';'));
            assert!(!value.contains(&b';'));
            if Session::open(&sealer, "herokuoauthsess", value, NOW, 604_800).is_ok() {
                assert_eq!(value, fixture.session.as_bytes(), "a session opened from another value");
            }
            if sealer.unseal(Purpose::Session, "herokuoauthsess", value).is_ok() {
                assert_eq!(value, fixture.session.as_bytes());
            }
            let callback_state = String::from_utf8_lossy(name);
            if LoginState::open(&sealer, state_name, value, &callback_state, NOW).is_ok() {
                assert_eq!(value, state_value.as_bytes(), "a login state opened from another value");
            }
        }
    }

    let is_own = |name: &[u8]| name == b"herokuoauthsess" || name.starts_with(b"herokuoauthsess-state-");
    match cookie_header_without(&headers, is_own) {
        None => {
            assert!(headers.len() <= 1);
            let kept = headers.first().map_or(0, |header| cookie_pairs(header).filter(|(name, _)| is_own(name)).count());
            assert_eq!(kept, 0, "own cookies left in an unchanged header");
        }
        Some(None) => {}
        Some(Some(rebuilt)) => {
            assert!(!rebuilt.is_empty());
            for (name, _) in cookie_pairs(&rebuilt) {
                assert!(!is_own(name), "own cookie {:?} kept", String::from_utf8_lossy(name));
            }
            let before: usize = headers.iter().map(|header| cookie_pairs(header).filter(|(name, _)| !is_own(name)).count()).sum();
            assert_eq!(cookie_pairs(&rebuilt).count(), before, "every app cookie is kept once");
        }
    }
});
