//! Whole requests through `Gate::on_request`, callback queries included. The input is a
//! request as text: `METHOD PATH` on the first line, then `name: value` lines; markers
//! name real credentials (see the fixture).
//!
//! Properties: nothing panics; client identity headers never go upstream; identity is set
//! only with the valid session; Heroku is called only with the pending login's state
//! cookie; replies have documented statuses and safe headers; a callout followed by good
//! Heroku responses ends in a login that returns to where it started.

#![no_main]

use heroku_bouncer::gate::{Request, Step};
use heroku_bouncer_fuzz::{check_outcome, check_reply, complete_callouts, fixture, header, parse_request, CountingRandom, LOGIN_START, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let headers = parse_request(data);
    let outcome = fixture.gate.on_request(&Request { headers: &headers }, NOW, &mut CountingRandom::new(7));
    check_outcome(&headers, &outcome);

    if let Step::Callout(_, _) = outcome.step {
        let reply = complete_callouts(&fixture.gate, outcome).expect("the login ends in a reply");
        check_reply(&reply);
        assert_eq!(reply.status, 302);
        assert_eq!(header(&reply, "location"), Some(LOGIN_START));
    }
});
