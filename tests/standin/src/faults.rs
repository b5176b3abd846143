//! Replies for [`crate::Fault::Status`]: the body Heroku sends with each status.

use std::time::Instant;

use crate::http::{error_reply, ErrorBody, HttpRequest, Reply};
use crate::oauth::{INVALID_GRANT_MESSAGE, MISSING_SECRET_MESSAGE};
use crate::platform::{
    self, INVALID_CREDENTIALS_MESSAGE, RATE_LIMIT_MESSAGE, RATE_LIMIT_URL, SCOPE_MESSAGE,
};
use crate::server::Endpoint;
use crate::state::State;

/// Builds the reply for a `Status` fault on `endpoint`.
///
/// - 5xx on any endpoint: a plain-text body, as Heroku's router sends when
///   the service behind it fails.
/// - 4xx on the token endpoint: the `{"id","message"}` body id.heroku.com
///   forwards from the API, except 403, whose body is bare text (a suspended
///   account).
/// - 4xx on the API: the `{"id","message"}` body plus `RateLimit-Remaining`
///   and `Request-Id`.
/// - 4xx on the authorize endpoint: a plain-text body, because browsers
///   are the clients there.
/// - Anything below 400: the status with an empty body.
pub(crate) fn fault_reply(
    state: &mut State,
    endpoint: Endpoint,
    status: u16,
    request: &HttpRequest,
    now: Instant,
) -> Reply {
    if status < 400 {
        return Reply::new(status);
    }
    if status >= 500 {
        return Reply::text(status, &format!("{status} {}\n", reason_phrase(status)));
    }

    match endpoint {
        Endpoint::Authorize => {
            Reply::text(status, &format!("{status} {}\n", reason_phrase(status)))
        }
        Endpoint::Token => token_fault(status),
        Endpoint::Account | Endpoint::Teams => {
            let remaining = if status == 429 {
                0
            } else {
                platform::remaining_for_request(state, request, now)
            };
            platform::with_api_headers(api_fault(status), remaining)
        }
    }
}

fn token_fault(status: u16) -> Reply {
    match status {
        401 => error_reply(401, "unauthorized", INVALID_GRANT_MESSAGE),
        403 => Reply::text(403, "This account has been suspended."),
        422 => error_reply(422, "invalid_params", MISSING_SECRET_MESSAGE),
        _ => generic_error(status),
    }
}

fn api_fault(status: u16) -> Reply {
    match status {
        401 => error_reply(401, "unauthorized", INVALID_CREDENTIALS_MESSAGE),
        403 => error_reply(403, "forbidden", SCOPE_MESSAGE),
        429 => Reply::json(
            429,
            &ErrorBody {
                id: "rate_limit",
                message: RATE_LIMIT_MESSAGE,
                url: Some(RATE_LIMIT_URL),
            },
        ),
        _ => generic_error(status),
    }
}

/// Builds a `{"id","message"}` reply with the id Heroku's error table gives
/// the status, or the snake-cased reason phrase for statuses it lists not.
fn generic_error(status: u16) -> Reply {
    let id = match status {
        400 => "bad_request".to_string(),
        401 => "unauthorized".to_string(),
        402 => "delinquent".to_string(),
        403 => "forbidden".to_string(),
        404 => "not_found".to_string(),
        406 => "not_acceptable".to_string(),
        409 => "conflict".to_string(),
        410 => "gone".to_string(),
        416 => "requested_range_not_satisfiable".to_string(),
        422 => "invalid_params".to_string(),
        429 => "rate_limit".to_string(),
        _ => reason_phrase(status)
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
            .replace('\'', ""),
    };
    error_reply(
        status,
        &id,
        &format!("{} (fault set on the stand-in).", reason_phrase(status)),
    )
}

/// Returns the standard reason phrase of a status, or "Unknown Status".
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        418 => "I'm a teapot",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::test_request;

    fn reply_for(endpoint: Endpoint, status: u16) -> Reply {
        let mut state = State::new(Config::default());
        let request = test_request("GET", "/account", &[], b"");
        fault_reply(&mut state, endpoint, status, &request, Instant::now())
    }

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn rate_limit_fault_body_and_headers() {
        let reply = reply_for(Endpoint::Account, 429);
        assert_eq!(reply.status, 429);
        assert_eq!(body(&reply)["id"], "rate_limit");
        assert_eq!(body(&reply)["url"], RATE_LIMIT_URL);
        assert_eq!(reply.header_value("RateLimit-Remaining"), Some("0"));
        assert!(reply.header_value("Request-Id").is_some());
    }

    #[test]
    fn server_error_fault_is_plain_text() {
        let reply = reply_for(Endpoint::Token, 503);
        assert_eq!(
            reply.header_value("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(reply.body, b"503 Service Unavailable\n");
    }

    #[test]
    fn token_forbidden_fault_is_bare_text() {
        let reply = reply_for(Endpoint::Token, 403);
        assert!(reply
            .header_value("Content-Type")
            .unwrap()
            .starts_with("text/plain"));
    }

    #[test]
    fn unlisted_status_gets_snake_case_id() {
        assert_eq!(body(&reply_for(Endpoint::Teams, 418))["id"], "im_a_teapot");
        assert_eq!(
            body(&reply_for(Endpoint::Token, 405))["id"],
            "method_not_allowed"
        );
    }
}
