//! The api.heroku.com side over real HTTP: `/account`, `/users/~` and `/teams`.

mod common;

use common::*;
use heroku_standin::{Config, User};

const INVALID_CREDENTIALS: &str =
    r#"{"id":"unauthorized","message":"Invalid credentials provided."}"#;

#[test]
fn account_returns_heroku_fields_in_order() {
    let standin = start(Config::default());
    let token = access_token(&standin, Some("identity"));
    let answer = api_get(&standin, "/account", &token);

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let fields = [
        "allow_tracking",
        "beta",
        "created_at",
        "email",
        "federated",
        "id",
        "identity_provider",
        "last_login",
        "name",
        "sms_number",
        "suspended_at",
        "delinquent_at",
        "two_factor_authentication",
        "updated_at",
        "verified",
        "country_of_residence",
        "default_organization",
        "default_team",
    ];
    assert!(
        is_sorted(&key_positions(&answer.body, &fields)),
        "{}",
        answer.body
    );

    let account = answer.json();
    assert_eq!(account.as_object().unwrap().len(), fields.len());
    assert_eq!(account["email"], "ada@example.com");
    assert_eq!(account["name"], "Ada Lovelace");
    assert_eq!(account["id"], User::id_for_email("ada@example.com"));
    assert!(account["sms_number"].is_null());
    assert_eq!(account["default_team"]["name"], "analytical-engine");
    assert!(account["last_login"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn account_carries_rate_limit_request_id_and_etag() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    let first = api_get(&standin, "/account", &token);
    let second = api_get(&standin, "/account", &token);

    assert_eq!(first.header("ratelimit-remaining"), Some("4499"));
    assert_eq!(second.header("ratelimit-remaining"), Some("4498"));
    assert_eq!(first.header("request-id").unwrap().len(), 36);
    assert_ne!(first.header("request-id"), second.header("request-id"));
    assert!(first.header("etag").unwrap().starts_with('"'));
}

#[test]
fn users_tilde_is_an_alias_for_account() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    let answer = api_get(&standin, "/users/~", &token);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["email"], "ada@example.com");
}

#[test]
fn account_name_is_null_when_unknown() {
    let standin = start(Config::default());
    standin.set_current_user("anonymous@example.com");
    let token = access_token(&standin, None);
    let account = api_get(&standin, "/account", &token).json();
    assert!(account["name"].is_null());
    assert!(account["default_team"].is_null());
}

#[test]
fn account_rejects_missing_and_malformed_bearer() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    let url = format!("{}/account", standin.base_url());
    let cases = [
        ("missing", None),
        (
            "unknown token",
            Some("Bearer HRKU-00000000-0000-0000-0000-000000000000".to_string()),
        ),
        ("colon typo", Some(format!("Bearer: {token}"))),
        ("lower-case scheme", Some(format!("bearer {token}"))),
        ("basic scheme", Some(basic_auth("", &token))),
        ("bare token", Some(token.clone())),
    ];

    for (case, authorization) in cases {
        let mut headers = vec![("Accept", HEROKU_ACCEPT)];
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization.as_str()));
        }
        let answer = get(&url, &headers);
        assert_eq!(answer.status, 401, "{case}");
        assert_eq!(answer.body, INVALID_CREDENTIALS, "{case}");
        assert!(answer.header("ratelimit-remaining").is_some(), "{case}");
        assert!(answer.header("request-id").is_some(), "{case}");
    }
}

#[test]
fn expired_access_token_is_401() {
    let standin = start(Config {
        access_token_lifetime_s: 0,
        ..Config::default()
    });
    let token = access_token(&standin, None);
    let answer = api_get(&standin, "/account", &token);
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body, INVALID_CREDENTIALS);
}

#[test]
fn wrong_or_missing_accept_is_406() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    let authorization = format!("Bearer {token}");
    let url = format!("{}/account", standin.base_url());

    for accept in [
        Some("application/json"),
        Some("application/vnd.heroku+json; version=2"),
        None,
    ] {
        let mut headers = vec![("Authorization", authorization.as_str())];
        if let Some(accept) = accept {
            headers.push(("Accept", accept));
        }
        let answer = get(&url, &headers);
        assert_eq!(answer.status, 406, "{accept:?}");
        assert_eq!(answer.json()["id"], "not_acceptable", "{accept:?}");
        assert!(answer.header("ratelimit-remaining").is_some(), "{accept:?}");
    }
}

#[test]
fn post_to_account_is_404() {
    let standin = start(Config::default());
    let answer = request(
        "POST",
        &format!("{}/account", standin.base_url()),
        &[("Accept", HEROKU_ACCEPT)],
    );
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["id"], "not_found");
}

#[test]
fn teams_forbidden_for_identity_scope() {
    let standin = start(Config::default());
    let token = access_token(&standin, Some("identity"));
    let answer = api_get(&standin, "/teams", &token);

    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        r#"{"id":"forbidden","message":"The scope of this OAuth authorization does not allow access to this resource."}"#
    );
    assert!(answer.header("ratelimit-remaining").is_some());
}

#[test]
fn teams_listed_for_read_scope() {
    let standin = start(Config::default());
    standin.set_current_user("grace@heroku.com");
    let token = access_token(&standin, Some("identity,read"));
    let answer = api_get(&standin, "/teams", &token);

    assert_eq!(answer.status, 200, "{answer:?}");
    let fields = [
        "id",
        "created_at",
        "credit_card_collections",
        "default",
        "enterprise_account",
        "identity_provider",
        "membership_limit",
        "name",
        "provisioned_licenses",
        "role",
        "type",
        "updated_at",
    ];
    assert!(
        is_sorted(&key_positions(&answer.body, &fields)),
        "{}",
        answer.body
    );

    let teams = answer.json();
    let names: Vec<&str> = teams
        .as_array()
        .unwrap()
        .iter()
        .map(|team| team["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"cobol"), "{names:?}");
    assert!(names.contains(&"navy-research"), "{names:?}");
    assert_eq!(teams[0]["type"], "team");
    assert_eq!(teams[0]["id"].as_str().unwrap().len(), 36);
}

#[test]
fn teams_listed_for_default_global_scope() {
    let standin = start(Config::default());
    let token = access_token(&standin, None);
    let answer = api_get(&standin, "/teams", &token);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()[0]["name"], "analytical-engine");
    assert_eq!(answer.json()[0]["default"], true);
}

#[test]
fn teams_scopes_can_admit_identity() {
    let standin = start(Config::default());
    standin.set_teams_scopes(&["identity"]);
    let token = access_token(&standin, Some("identity"));
    assert_eq!(api_get(&standin, "/teams", &token).status, 200);
}

#[test]
fn teams_page_with_next_range() {
    let standin = start(Config::default());
    standin.set_current_user("grace@heroku.com");
    let token = access_token(&standin, Some("read"));
    let authorization = format!("Bearer {token}");
    let url = format!("{}/teams", standin.base_url());

    let first = get(
        &url,
        &[
            ("Accept", HEROKU_ACCEPT),
            ("Authorization", &authorization),
            ("Range", "name ..; max=1"),
        ],
    );
    assert_eq!(first.status, 206);
    assert_eq!(first.json()[0]["name"], "cobol");
    let next_range = first.header("next-range").unwrap().to_string();
    assert_eq!(next_range, "name ]cobol..; max=1");

    let second = get(
        &url,
        &[
            ("Accept", HEROKU_ACCEPT),
            ("Authorization", &authorization),
            ("Range", &next_range),
        ],
    );
    assert_eq!(second.status, 200);
    assert_eq!(second.json()[0]["name"], "navy-research");
    assert_eq!(second.header("next-range"), None);

    let invalid = get(
        &url,
        &[
            ("Accept", HEROKU_ACCEPT),
            ("Authorization", &authorization),
            ("Range", "email .."),
        ],
    );
    assert_eq!(invalid.status, 416);
}

#[test]
fn team_and_members_by_name() {
    let standin = start(Config::default());
    let token = access_token(&standin, Some("global"));

    let team = api_get(&standin, "/teams/analytical-engine", &token);
    assert_eq!(team.status, 200);
    assert_eq!(team.json()["name"], "analytical-engine");

    let members = api_get(&standin, "/teams/analytical-engine/members", &token);
    assert_eq!(members.status, 200);
    assert_eq!(members.json()[0]["email"], "ada@example.com");
    assert_eq!(members.json()[0]["user"]["name"], "Ada Lovelace");

    let other = api_get(&standin, "/teams/cobol", &token);
    assert_eq!(other.status, 404);
    assert_eq!(other.json()["id"], "not_found");
}
