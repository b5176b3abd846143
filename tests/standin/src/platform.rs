//! The api.heroku.com endpoints: `GET /account` (and `/users/~`), `GET /teams`,
//! `GET /teams/{team}` and `GET /teams/{team}/members`.
//!
//! Every response carries `RateLimit-Remaining` and `Request-Id`, and every
//! `200` or `206` an `ETag`. Checks run in this order: method, `Accept`
//! (`406`), bearer token (`401`), rate limit (`429`), scope (`403`).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::User;
use crate::http::{error_reply, ErrorBody, HttpRequest, Reply};
use crate::range::{paginate, RangeRequest};
use crate::server::{not_found, Endpoint};
use crate::state::{Authorization, State, RATE_LIMIT_POOL};

pub(crate) const INVALID_CREDENTIALS_MESSAGE: &str = "Invalid credentials provided.";
pub(crate) const SCOPE_MESSAGE: &str =
    "The scope of this OAuth authorization does not allow access to this resource.";
/// NOTE: Heroku's wording comes from a secondary source, not from Heroku's own documentation.
pub(crate) const RATE_LIMIT_MESSAGE: &str = "Your account reached the API rate limit";
pub(crate) const RATE_LIMIT_URL: &str =
    "https://devcenter.heroku.com/articles/platform-api-reference#rate-limits";

const ACCEPT_MESSAGE: &str =
    "The Accept header must request application/vnd.heroku+json; version=3, the only API version this server provides.";

/// Creation and update time of every stand-in account, team and membership.
const FIXED_TIMESTAMP: &str = "2012-01-01T12:00:00Z";

/// Handles a request to the [`Endpoint::Account`] or [`Endpoint::Teams`] paths.
pub(crate) fn handle(
    state: &mut State,
    endpoint: Endpoint,
    request: &HttpRequest,
    now: Instant,
) -> Reply {
    let anonymous_remaining = RATE_LIMIT_POOL as u32;

    // 1. Only GET exists on these paths.
    if request.method != "GET" {
        return with_api_headers(not_found(), anonymous_remaining);
    }

    // 2. The API version, then the credentials.
    if !accepts_version_3(request) {
        return with_api_headers(
            error_reply(406, "not_acceptable", ACCEPT_MESSAGE),
            anonymous_remaining,
        );
    }
    let Some(authorization) = bearer_token(request)
        .and_then(|token| state.authenticate(token, now))
        .cloned()
    else {
        return with_api_headers(
            error_reply(401, "unauthorized", INVALID_CREDENTIALS_MESSAGE),
            anonymous_remaining,
        );
    };

    // 3. Spend one request of the account's pool.
    let Some(remaining) = state.spend_rate_limit(&authorization.user_id, now) else {
        let body = ErrorBody {
            id: "rate_limit",
            message: RATE_LIMIT_MESSAGE,
            url: Some(RATE_LIMIT_URL),
        };
        return with_api_headers(Reply::json(429, &body), 0);
    };

    // 4. The resource itself.
    let reply = match endpoint {
        Endpoint::Account => account(state, &authorization),
        _ => teams(state, &authorization, request),
    };
    with_api_headers(reply, remaining)
}

/// Adds the headers every API response carries, and an `ETag` to successful ones.
pub(crate) fn with_api_headers(reply: Reply, remaining: u32) -> Reply {
    let mut reply = reply
        .header("RateLimit-Remaining", &remaining.to_string())
        .header("Request-Id", &Uuid::new_v4().to_string());
    if reply.status == 200 || reply.status == 206 {
        let etag = Uuid::new_v5(&Uuid::NAMESPACE_OID, &reply.body)
            .simple()
            .to_string();
        reply = reply.header("ETag", &format!("\"{etag}\""));
    }
    reply
}

/// Returns what `RateLimit-Remaining` shows for a request without spending
/// from the pool: the account's pool for a live token, otherwise a full pool.
pub(crate) fn remaining_for_request(state: &mut State, request: &HttpRequest, now: Instant) -> u32 {
    let user_id = bearer_token(request)
        .and_then(|token| state.authenticate(token, now))
        .map(|authorization| authorization.user_id.clone());
    match user_id {
        Some(user_id) => state.rate_limit_remaining(&user_id, now),
        None => RATE_LIMIT_POOL as u32,
    }
}

/// Checks that some media range of `Accept` is `application/vnd.heroku+json`
/// with `version=3`. A missing `Accept` fails too.
///
/// NOTE: Heroku documents `406` for a wrong `Accept`. Treating a missing one
/// as wrong is this stand-in's strict choice.
fn accepts_version_3(request: &HttpRequest) -> bool {
    request
        .header_values("accept")
        .flat_map(|value| value.split(','))
        .any(|media_range| {
            let mut parts = media_range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or("");
            media_type.eq_ignore_ascii_case("application/vnd.heroku+json")
                && parts.any(|parameter| {
                    parameter.split_once('=').is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case("version") && value.trim() == "3"
                    })
                })
        })
}

/// Returns the token of `Authorization: Bearer <token>`, spelled exactly so.
/// `Bearer: <token>`, another scheme, a second `Authorization` header or a
/// token with spaces yields `None`.
fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let mut values = request.header_values("authorization");
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let token = value.strip_prefix("Bearer ")?;
    if token.is_empty() || token.contains(char::is_whitespace) {
        return None;
    }
    Some(token)
}

/// The `GET /account` object. Field order and nullability follow Heroku's schema example.
#[derive(Serialize)]
struct Account<'a> {
    allow_tracking: bool,
    beta: bool,
    created_at: &'static str,
    email: &'a str,
    federated: bool,
    id: &'a str,
    identity_provider: Option<Value>,
    last_login: Option<String>,
    name: Option<&'a str>,
    sms_number: Option<String>,
    suspended_at: Option<String>,
    delinquent_at: Option<String>,
    two_factor_authentication: bool,
    updated_at: &'static str,
    verified: bool,
    country_of_residence: Option<String>,
    default_organization: Option<TeamReference>,
    default_team: Option<TeamReference>,
}

#[derive(Serialize)]
struct TeamReference {
    id: String,
    name: String,
}

fn account(state: &State, authorization: &Authorization) -> Reply {
    let Some(user) = state.user_by_id(&authorization.user_id) else {
        return error_reply(
            404,
            "not_found",
            "The account of this token no longer exists.",
        );
    };
    let default_team = user.teams.first().map(|name| TeamReference {
        id: team_id(name),
        name: name.clone(),
    });
    Reply::json(
        200,
        &Account {
            allow_tracking: true,
            beta: false,
            created_at: FIXED_TIMESTAMP,
            email: &user.email,
            federated: false,
            id: &user.id,
            identity_provider: None,
            last_login: Some(format_utc(authorization.logged_in_at)),
            name: user.name.as_deref(),
            sms_number: None,
            suspended_at: None,
            delinquent_at: None,
            two_factor_authentication: false,
            updated_at: FIXED_TIMESTAMP,
            verified: true,
            country_of_residence: None,
            default_organization: None,
            default_team,
        },
    )
}

/// A team object of `GET /teams`, fields in the schema's order.
#[derive(Serialize)]
struct Team<'a> {
    id: String,
    created_at: &'static str,
    credit_card_collections: bool,
    default: bool,
    enterprise_account: Option<Value>,
    identity_provider: Option<Value>,
    membership_limit: Option<u32>,
    name: &'a str,
    provisioned_licenses: bool,
    role: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    updated_at: &'static str,
}

/// A member object of `GET /teams/{team}/members`.
#[derive(Serialize)]
struct Member<'a> {
    created_at: &'static str,
    email: &'a str,
    federated: bool,
    id: String,
    identity_provider: Option<Value>,
    role: &'static str,
    two_factor_authentication: bool,
    updated_at: &'static str,
    user: MemberUser<'a>,
}

#[derive(Serialize)]
struct MemberUser<'a> {
    email: &'a str,
    id: &'a str,
    name: Option<&'a str>,
}

/// Routes the `/teams` paths after checking the token's scope.
fn teams(state: &State, authorization: &Authorization, request: &HttpRequest) -> Reply {
    if !authorization
        .scope
        .iter()
        .any(|scope| state.teams_scopes.contains(scope))
    {
        return error_reply(403, "forbidden", SCOPE_MESSAGE);
    }
    let Some(user) = state.user_by_id(&authorization.user_id) else {
        return error_reply(
            404,
            "not_found",
            "The account of this token no longer exists.",
        );
    };

    let segments: Vec<&str> = request.path().trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["teams"] => {
            let items = user
                .teams
                .iter()
                .enumerate()
                .map(|(index, name)| Team::new(name, index == 0))
                .collect();
            list_reply(
                items,
                request,
                &["id", "name"],
                |team: &Team<'_>, field| match field {
                    "name" => team.name.to_string(),
                    _ => team.id.clone(),
                },
            )
        }
        ["teams", team] => match find_team(user, team) {
            Some((index, name)) => Reply::json(200, &Team::new(name, index == 0)),
            None => team_not_found(),
        },
        ["teams", team, "members"] => match find_team(user, team) {
            Some((_, name)) => {
                let items = state
                    .users
                    .iter()
                    .filter(|member| member.teams.iter().any(|team| team == name))
                    .map(|member| Member::new(name, member))
                    .collect();
                list_reply(
                    items,
                    request,
                    &["email", "id"],
                    |member: &Member<'_>, field| match field {
                        "id" => member.id.clone(),
                        _ => member.email.to_string(),
                    },
                )
            }
            None => team_not_found(),
        },
        _ => not_found(),
    }
}

/// Finds one of the user's teams by name or id. Other teams are invisible to the user.
fn find_team<'a>(user: &'a User, name_or_id: &str) -> Option<(usize, &'a String)> {
    user.teams
        .iter()
        .enumerate()
        .find(|(_, name)| name.as_str() == name_or_id || team_id(name) == name_or_id)
}

fn team_not_found() -> Reply {
    error_reply(404, "not_found", "Couldn't find that team.")
}

/// Pages a list by the request's `Range` header, whose allowed fields are
/// `fields` (the first is the default); an invalid range gets `416`.
fn list_reply<T: Serialize>(
    items: Vec<T>,
    request: &HttpRequest,
    fields: &[&str],
    field_value: impl Fn(&T, &str) -> String,
) -> Reply {
    let range = match request.header("range") {
        None => RangeRequest::default_for(fields),
        Some(header) => match RangeRequest::parse(header, fields) {
            Some(range) => range,
            None => {
                return error_reply(
                    416,
                    "requested_range_not_satisfiable",
                    &format!(
                        "Invalid Range header; use a form like \"{} ..; max=200\".",
                        fields[0]
                    ),
                )
            }
        },
    };

    let page = paginate(items, &range, field_value);
    let status = if page.next_range.is_some() { 206 } else { 200 };
    let mut reply = Reply::json(status, &page.items).header("Accept-Ranges", &fields.join(", "));
    if let Some(content_range) = &page.content_range {
        reply = reply.header("Content-Range", content_range);
    }
    if let Some(next_range) = &page.next_range {
        reply = reply.header("Next-Range", next_range);
    }
    reply
}

impl<'a> Team<'a> {
    fn new(name: &'a str, is_default: bool) -> Team<'a> {
        Team {
            id: team_id(name),
            created_at: FIXED_TIMESTAMP,
            credit_card_collections: false,
            default: is_default,
            enterprise_account: None,
            identity_provider: None,
            membership_limit: None,
            name,
            provisioned_licenses: false,
            role: "member",
            kind: "team",
            updated_at: FIXED_TIMESTAMP,
        }
    }
}

impl<'a> Member<'a> {
    fn new(team: &str, member: &'a User) -> Member<'a> {
        Member {
            created_at: FIXED_TIMESTAMP,
            email: &member.email,
            federated: false,
            id: stable_id(&format!("membership/{team}/{}", member.id)),
            identity_provider: None,
            role: "member",
            two_factor_authentication: false,
            updated_at: FIXED_TIMESTAMP,
            user: MemberUser {
                email: &member.email,
                id: &member.id,
                name: member.name.as_deref(),
            },
        }
    }
}

/// Derives a stable team id from the team name.
pub(crate) fn team_id(name: &str) -> String {
    stable_id(&format!("team/{name}"))
}

fn stable_id(name: &str) -> String {
    let url = format!("https://heroku-standin.invalid/{name}");
    Uuid::new_v5(&Uuid::NAMESPACE_URL, url.as_bytes()).to_string()
}

/// Formats a time as RFC 3339 in UTC with whole seconds, like `2012-01-01T12:00:00Z`.
fn format_utc(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day),
/// counting in 400-year eras of 146,097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 is March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request;
    use std::time::Duration;

    #[test]
    fn accept_needs_heroku_type_and_version_3() {
        let check = |accept: &str| {
            accepts_version_3(&test_request("GET", "/account", &[("Accept", accept)], b""))
        };
        assert!(check("application/vnd.heroku+json; version=3"));
        assert!(check("text/html, application/vnd.heroku+json;version=3"));
        assert!(!check("application/json"));
        assert!(!check("application/vnd.heroku+json"));
        assert!(!check("application/vnd.heroku+json; version=2"));
        assert!(!accepts_version_3(&test_request(
            "GET",
            "/account",
            &[],
            b""
        )));
    }

    #[test]
    fn bearer_token_must_be_spelled_exactly() {
        let token = |value: &str| {
            bearer_token(&test_request(
                "GET",
                "/account",
                &[("Authorization", value)],
                b"",
            ))
            .map(str::to_string)
        };
        assert_eq!(token("Bearer HRKU-abc").as_deref(), Some("HRKU-abc"));
        assert_eq!(token("Bearer: HRKU-abc"), None);
        assert_eq!(token("bearer HRKU-abc"), None);
        assert_eq!(token("Bearer  HRKU-abc"), None);
        assert_eq!(token("Basic HRKU-abc"), None);
        assert_eq!(token("Bearer "), None);
    }

    #[test]
    fn format_utc_matches_known_dates() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_utc(UNIX_EPOCH + Duration::from_secs(1_325_419_200)),
            "2012-01-01T12:00:00Z"
        );
        assert_eq!(
            format_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
