//! The id.heroku.com side over real HTTP: `/oauth/authorize`, `/oauth/token`,
//! `/login` and `/logout`.

mod common;

use common::*;
use heroku_standin::{Approval, Config, User};

const REGISTERED: &str = "http://127.0.0.1:10000/auth/heroku/callback/";

#[test]
fn auto_approve_redirects_with_code_and_state() {
    let standin = start(Config::default());
    let answer = get(
        &authorize_url(&standin, "&scope=identity&state=xyz%20123"),
        &[],
    );

    assert_eq!(answer.status, 302);
    let location = answer.location();
    assert!(
        location.starts_with(&format!("{REGISTERED}?code=")),
        "{location}"
    );
    let code = query_param(location, "code").unwrap();
    assert_eq!(code.len(), 36, "code is a UUID: {code}");
    assert_eq!(query_param(location, "state").as_deref(), Some("xyz 123"));
}

#[test]
fn authorize_without_state_sends_no_state() {
    let standin = start(Config::default());
    let answer = get(&authorize_url(&standin, ""), &[]);
    assert_eq!(answer.status, 302);
    assert_eq!(query_param(answer.location(), "state"), None);
}

#[test]
fn authorize_ignores_redirect_uri_parameter() {
    let standin = start(Config::default());
    let answer = get(
        &authorize_url(&standin, "&redirect_uri=http%3A%2F%2Fattacker.test%2Fcb"),
        &[],
    );
    assert_eq!(answer.status, 302);
    assert!(
        answer.location().starts_with(REGISTERED),
        "{}",
        answer.location()
    );
}

#[test]
fn authorize_merges_into_registered_query() {
    let standin = start(Config::default());
    standin.set_redirect_uri("http://127.0.0.1:1/cb?tenant=a%20b");
    let answer = get(&authorize_url(&standin, "&state=s"), &[]);

    let location = answer.location();
    assert!(
        location.starts_with("http://127.0.0.1:1/cb?tenant=a+b&code="),
        "{location}"
    );
    assert!(location.ends_with("&state=s"), "{location}");
}

#[test]
fn deny_redirects_with_access_denied_and_no_state() {
    let standin = start(Config {
        approval: Approval::Deny,
        ..Config::default()
    });
    let answer = get(&authorize_url(&standin, "&state=xyz"), &[]);
    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.location(),
        format!("{REGISTERED}?error=access_denied")
    );
}

#[test]
fn missing_client_id_is_400() {
    let standin = start(Config::default());
    for query in ["?response_type=code", "?client_id=&response_type=code"] {
        let answer = get(
            &format!("{}/oauth/authorize{query}", standin.base_url()),
            &[],
        );
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(answer.body, "Need client_id", "{query}");
    }
}

#[test]
fn unknown_client_goes_to_login_with_message() {
    let standin = start(Config::default());
    let answer = get(
        &format!(
            "{}/oauth/authorize?client_id=other&response_type=code",
            standin.base_url()
        ),
        &[],
    );
    assert_eq!(answer.status, 302);
    assert_eq!(answer.location(), "/login");

    let cookie = answer
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let login = get(
        &format!("{}/login", standin.base_url()),
        &[("Cookie", &cookie)],
    );
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("Unknown OAuth client."),
        "{}",
        login.body
    );
}

#[test]
fn wrong_response_type_goes_to_login() {
    let standin = start(Config::default());
    let url = format!(
        "{}/oauth/authorize?client_id={CLIENT_ID}&response_type=token",
        standin.base_url()
    );
    let answer = get(&url, &[]);
    assert_eq!(answer.status, 302);
    assert_eq!(answer.location(), "/login");
}

#[test]
fn unknown_scope_goes_to_login() {
    let standin = start(Config::default());
    let answer = get(&authorize_url(&standin, "&scope=identity,sudo"), &[]);
    assert_eq!(answer.status, 302);
    assert_eq!(answer.location(), "/login");
}

#[test]
fn prompt_page_offers_users_allow_and_deny() {
    let standin = start(Config {
        approval: Approval::Prompt,
        ..Config::default()
    });
    let answer = get(
        &authorize_url(&standin, "&scope=identity%20read&state=s%22q"),
        &[],
    );

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = &answer.body;
    assert!(html.contains("Authorize standin-client-id?"), "{html}");
    assert!(html.contains("value=\"ada@example.com\" checked"), "{html}");
    assert!(html.contains("value=\"grace@heroku.com\""), "{html}");
    assert!(html.contains("name=\"email\""), "{html}");
    assert!(html.contains("name=\"state\" value=\"s&quot;q\""), "{html}");
    assert!(
        html.contains("name=\"authorize\" value=\"Allow\""),
        "{html}"
    );
    assert!(
        html.contains(&format!("href=\"{REGISTERED}?error=access_denied\"")),
        "{html}"
    );
}

#[test]
fn prompt_ignores_allow_sent_by_get() {
    let standin = start(Config {
        approval: Approval::Prompt,
        ..Config::default()
    });
    let answer = get(&authorize_url(&standin, "&authorize=Allow"), &[]);
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("Authorize standin-client-id?"));
}

#[test]
fn allow_post_redirects_303_for_chosen_user() {
    let standin = start(Config {
        approval: Approval::Prompt,
        ..Config::default()
    });
    let answer = post_form(
        &format!("{}/oauth/authorize", standin.base_url()),
        &[],
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("state", "st"),
            ("user", "grace@heroku.com"),
            ("email", ""),
            ("authorize", "Allow"),
        ],
    );

    assert_eq!(answer.status, 303);
    assert_eq!(
        query_param(answer.location(), "state").as_deref(),
        Some("st")
    );
    let code = query_param(answer.location(), "code").unwrap();
    let tokens = exchange(&standin, &code);
    assert_eq!(tokens["user_id"], User::id_for_email("grace@heroku.com"));
}

#[test]
fn allow_post_with_typed_email_adds_user() {
    let standin = start(Config {
        approval: Approval::Prompt,
        ..Config::default()
    });
    let answer = post_form(
        &format!("{}/oauth/authorize", standin.base_url()),
        &[],
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("user", "ada@example.com"),
            ("email", "new.person@example.org"),
            ("authorize", "Allow"),
        ],
    );
    assert_eq!(answer.status, 303);

    let code = query_param(answer.location(), "code").unwrap();
    let token = exchange(&standin, &code)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let account = api_get(&standin, "/account", &token).json();
    assert_eq!(account["email"], "new.person@example.org");
    assert_eq!(account["id"], User::id_for_email("new.person@example.org"));
    assert!(account["name"].is_null());
}

#[test]
fn allow_post_rejects_unusable_email() {
    let standin = start(Config {
        approval: Approval::Prompt,
        ..Config::default()
    });
    let answer = post_form(
        &format!("{}/oauth/authorize", standin.base_url()),
        &[],
        &[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("email", "not an email"),
            ("authorize", "Allow"),
        ],
    );
    assert_eq!(answer.status, 422);
    assert!(
        answer.body.contains("is not a usable email"),
        "{}",
        answer.body
    );
}

#[test]
fn set_current_user_changes_auto_approved_user() {
    let standin = start(Config::default());
    standin.set_current_user("someone@example.net");
    let code = obtain_code(&standin, None);
    assert_eq!(
        exchange(&standin, &code)["user_id"],
        User::id_for_email("someone@example.net")
    );
}

#[test]
fn token_response_has_six_fields_in_order() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, Some("identity"));
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_secret", SECRET),
        ],
    );

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let fields = [
        "access_token",
        "expires_in",
        "refresh_token",
        "token_type",
        "user_id",
        "session_nonce",
    ];
    assert!(
        is_sorted(&key_positions(&answer.body, &fields)),
        "{}",
        answer.body
    );
    let tokens = answer.json();
    assert_eq!(tokens.as_object().unwrap().len(), 6);
    assert!(tokens["access_token"]
        .as_str()
        .unwrap()
        .starts_with("HRKU-"));
    assert_eq!(tokens["expires_in"], 28_800);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["user_id"], User::id_for_email("ada@example.com"));
    assert_eq!(tokens["session_nonce"].as_str().unwrap().len(), 16);
}

#[test]
fn token_reads_query_string_of_json_post() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let url = format!("{}?code={code}&client_secret={SECRET}", token_url(&standin));
    let answer = post_raw(&url, &[("Content-Type", "application/json")], "");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.json()["access_token"].is_string());
}

#[test]
fn token_defaults_grant_type_and_ignores_client_id() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[
            ("client_id", "some-other-client"),
            ("code", &code),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn token_takes_secret_from_basic_auth_password() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let authorization = basic_auth("ignored-user", SECRET);
    let answer = post_form(
        &token_url(&standin),
        &[("Authorization", &authorization)],
        &[("code", &code)],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn basic_auth_wins_over_body_secret() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let authorization = basic_auth(CLIENT_ID, "wrong");
    let answer = post_form(
        &token_url(&standin),
        &[("Authorization", &authorization)],
        &[("code", &code), ("client_secret", SECRET)],
    );
    assert_eq!(answer.status, 401);
}

#[test]
fn reused_code_is_401() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    exchange(&standin, &code);

    let answer = post_form(
        &token_url(&standin),
        &[],
        &[("code", &code), ("client_secret", SECRET)],
    );
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        r#"{"id":"unauthorized","message":"OAuth authorization invalid."}"#
    );
}

#[test]
fn expired_code_is_401() {
    let standin = start(Config {
        code_lifetime_s: 0,
        ..Config::default()
    });
    let code = obtain_code(&standin, None);
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[("code", &code), ("client_secret", SECRET)],
    );
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["id"], "unauthorized");
}

#[test]
fn unknown_code_and_wrong_secret_are_401() {
    let standin = start(Config::default());
    let unknown = post_form(
        &token_url(&standin),
        &[],
        &[("code", "no-such-code"), ("client_secret", SECRET)],
    );
    assert_eq!(unknown.status, 401);

    let code = obtain_code(&standin, None);
    for secret in ["wrong", ""] {
        let answer = post_form(
            &token_url(&standin),
            &[],
            &[("code", &code), ("client_secret", secret)],
        );
        assert_eq!(answer.status, 401, "secret {secret:?}");
        assert_eq!(answer.json()["message"], "OAuth authorization invalid.");
    }
}

#[test]
fn missing_secret_is_422() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[("grant_type", "authorization_code"), ("code", &code)],
    );
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json()["id"], "invalid_params");
    assert!(answer.json()["message"].is_string());
}

#[test]
fn missing_code_and_unknown_grant_are_400() {
    let standin = start(Config::default());
    let missing = post_form(&token_url(&standin), &[], &[("client_secret", SECRET)]);
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["id"], "bad_request");

    let unknown = post_form(
        &token_url(&standin),
        &[],
        &[("grant_type", "password"), ("client_secret", SECRET)],
    );
    assert_eq!(unknown.status, 400);
}

#[test]
fn refresh_keeps_refresh_token() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let first = exchange(&standin, &code);
    let refresh_token = first["refresh_token"].as_str().unwrap();

    let answer = post_form(
        &token_url(&standin),
        &[],
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let second = answer.json();
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["user_id"], first["user_id"]);
    assert_eq!(second["expires_in"], 28_800);

    let account = api_get(
        &standin,
        "/account",
        second["access_token"].as_str().unwrap(),
    );
    assert_eq!(account.status, 200);
}

#[test]
fn revoked_refresh_token_is_401() {
    let standin = start(Config::default());
    let code = obtain_code(&standin, None);
    let tokens = exchange(&standin, &code);
    standin.revoke_refresh_tokens();

    let answer = post_form(
        &token_url(&standin),
        &[],
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        r#"{"id":"unauthorized","message":"OAuth authorization invalid."}"#
    );
}

#[test]
fn expired_refresh_token_is_401() {
    let standin = start(Config {
        refresh_token_lifetime_s: 0,
        ..Config::default()
    });
    let code = obtain_code(&standin, None);
    let tokens = exchange(&standin, &code);
    let answer = post_form(
        &token_url(&standin),
        &[],
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(answer.status, 401);
}

#[test]
fn get_on_token_endpoint_is_404() {
    let standin = start(Config::default());
    let answer = get(&token_url(&standin), &[]);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["id"], "not_found");
}

#[test]
fn logout_redirects_to_login_unless_url_is_heroku() {
    let standin = start(Config::default());
    let plain = get(&format!("{}/logout", standin.base_url()), &[]);
    assert_eq!(plain.status, 302);
    assert_eq!(plain.location(), "/login");
    assert!(plain
        .header_all("set-cookie")
        .iter()
        .any(|cookie| cookie.starts_with("heroku_session=;")));

    let elsewhere = get(
        &format!(
            "{}/logout?url=http%3A%2F%2F127.0.0.1%3A10000%2F",
            standin.base_url()
        ),
        &[],
    );
    assert_eq!(elsewhere.location(), "/login");

    let heroku = get(
        &format!(
            "{}/logout?url=https%3A%2F%2Fapi.heroku.com%2F",
            standin.base_url()
        ),
        &[],
    );
    assert_eq!(heroku.location(), "https://api.heroku.com/");
}

#[test]
fn login_form_switches_current_user() {
    let standin = start(Config::default());
    let answer = post_form(
        &format!("{}/login", standin.base_url()),
        &[],
        &[("email", "grace@heroku.com")],
    );
    assert_eq!(answer.status, 303);
    assert_eq!(answer.location(), "/login");

    let page = get(&format!("{}/login", standin.base_url()), &[]);
    assert!(
        page.body
            .contains("Logged in as <strong>grace@heroku.com</strong>"),
        "{}",
        page.body
    );
    let code = obtain_code(&standin, None);
    assert_eq!(
        exchange(&standin, &code)["user_id"],
        User::id_for_email("grace@heroku.com")
    );
}

#[test]
fn unknown_path_is_404_json() {
    let standin = start(Config::default());
    let answer = get(&format!("{}/oauth/revoke", standin.base_url()), &[]);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["id"], "not_found");
    assert!(answer.json()["message"].is_string());
}
