//! Return paths: the request target of a page that needs a login, carried through the
//! login state cookie and the callback to the final redirect.
//!
//! Properties: `safe_return_path` yields a same-origin path and keeps a plain one as it
//! is; the state cookie seals exactly that path; a completed login redirects to it.

#![no_main]

use heroku_bouncer::gate::{safe_return_path, Request, Step, MAX_RETURN_PATH_BYTES};
use heroku_bouncer::seal::Sealer;
use heroku_bouncer::secret::Secret;
use heroku_bouncer::session::LoginState;
use heroku_bouncer_fuzz::{assert_safe_location, check_reply, complete_callouts, fixture, header, CountingRandom, NOW, SECRET_KEY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|target: &[u8]| {
    let safe = safe_return_path(target);
    assert_safe_location(&safe);
    let plain = target.len() <= MAX_RETURN_PATH_BYTES
        && target.first() == Some(&b'/')
        && !matches!(target.get(1), Some(b'/' | b'\\'))
        && target.iter().all(|byte| byte.is_ascii_graphic() && *byte != b'\\');
    if plain {
        assert_eq!(safe.as_bytes(), target, "a plain path is kept as it is");
    } else {
        assert_eq!(safe, "/", "anything else becomes /");
    }

    let fixture = fixture();
    let gate = &fixture.gate;
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), target.to_vec()),
        ("accept".to_string(), b"text/html".to_vec()),
    ];
    let outcome = gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::new(5));
    let Step::Reply(reply) = outcome.step else {
        // Skip rules and the forbidden passthrough forward without a login.
        return;
    };
    check_reply(&reply);
    let Some(location) = header(&reply, "location") else {
        return;
    };
    let Some((_, query)) = location.split_once('?') else {
        return;
    };
    let Some(state) = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "state").map(|(_, v)| v.into_owned()) else {
        return;
    };
    let set_cookie = &reply.headers.iter().rev().find(|(key, _)| key == "set-cookie").unwrap().1;
    let pair = set_cookie.split(';').next().unwrap();
    let (name, value) = pair.split_once('=').unwrap();

    let sealer = Sealer::new(&Secret::new(SECRET_KEY));
    let login = LoginState::open(&sealer, name, value.as_bytes(), &state, NOW).expect("the filter opens its own state");
    assert_eq!(login.return_to, safe);

    let callback = format!("/auth/heroku/callback/?code=c&state={state}");
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), callback.into_bytes()),
        ("cookie".to_string(), pair.as_bytes().to_vec()),
    ];
    let outcome = gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::new(6));
    let done = complete_callouts(gate, outcome).expect("the callback replies");
    check_reply(&done);
    assert_eq!(done.status, 302);
    assert_eq!(header(&done, "location"), Some(safe.as_str()));
});
