//! Configuration of a stand-in: the registered OAuth client, the known users,
//! the approval mode and the lifetimes of codes and tokens.

use std::fmt;

use serde::Deserialize;
use uuid::Uuid;

/// A Heroku account known to the stand-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Account id, a UUID string; `user_id` in token responses and `id` in `GET /account`.
    pub id: String,
    pub email: String,
    /// Display name; `null` in `GET /account` when absent.
    pub name: Option<String>,
    /// Names of the teams the user is a member of, in the order `GET /teams` lists them first.
    pub teams: Vec<String>,
}

impl User {
    /// Creates a user whose id is derived from the email (see [`User::id_for_email`]).
    pub fn new(email: &str, name: Option<&str>, teams: &[&str]) -> User {
        User {
            id: User::id_for_email(email),
            email: email.to_string(),
            name: name.map(str::to_string),
            teams: teams.iter().map(|team| team.to_string()).collect(),
        }
    }

    /// Derives a stable account id from an email: the name-based (version 5)
    /// UUID of `mailto:<lower-cased email>` in the URL namespace.
    pub fn id_for_email(email: &str) -> String {
        let name = format!("mailto:{}", email.trim().to_ascii_lowercase());
        Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }
}

/// The OAuth client registered with the stand-in.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub secret: String,
    /// The only URI the authorize endpoint redirects to; a `redirect_uri`
    /// request parameter is ignored, as Heroku ignores it.
    pub redirect_uri: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Client")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// What `GET /oauth/authorize` does once the request is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Shows a consent page with Allow and Deny, and a choice of user.
    Prompt,
    /// Redirects straight back with a code for the current user.
    AutoApprove,
    /// Redirects straight back with `error=access_denied` and no `state`.
    Deny,
}

/// Everything a stand-in starts with. Fields not set explicitly come from
/// [`Config::default`].
#[derive(Clone, Debug)]
pub struct Config {
    pub client: Client,
    /// Known users. The first one starts logged in. With an empty list, no
    /// user is logged in until [`crate::Standin::set_current_user`].
    pub users: Vec<User>,
    pub approval: Approval,
    /// Access token lifetime in seconds, sent as `expires_in`.
    pub access_token_lifetime_s: u64,
    /// Lifetime of an authorization code in seconds; 0 makes every code expire at once.
    pub code_lifetime_s: u64,
    /// Refresh token lifetime in seconds, counted from the code exchange.
    pub refresh_token_lifetime_s: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            client: Client {
                id: "standin-client-id".to_string(),
                secret: "standin-client-secret".to_string(),
                redirect_uri: "http://127.0.0.1:10000/auth/heroku/callback/".to_string(),
            },
            users: default_users(),
            approval: Approval::AutoApprove,
            access_token_lifetime_s: 28_800,
            code_lifetime_s: 300,
            refresh_token_lifetime_s: 2_592_000,
        }
    }
}

/// Users of the default configuration: two with names and teams, and one with
/// neither, so that clients meet a `null` name.
fn default_users() -> Vec<User> {
    vec![
        User::new(
            "ada@example.com",
            Some("Ada Lovelace"),
            &["analytical-engine"],
        ),
        User::new(
            "grace@heroku.com",
            Some("Grace Hopper"),
            &["cobol", "navy-research"],
        ),
        User::new("anonymous@example.com", None, &[]),
    ]
}

/// One entry of a users file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    email: String,
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    teams: Vec<String>,
}

/// Parses a users file: a JSON array of `{"email", "name"?, "teams"?, "id"?}`
/// objects. A missing id is derived from the email.
///
/// Returns an error message naming the entry when the JSON is invalid, an
/// email is not usable or the list is empty.
pub fn parse_users_json(text: &str) -> Result<Vec<User>, String> {
    let entries: Vec<UserEntry> =
        serde_json::from_str(text).map_err(|error| format!("invalid users JSON: {error}"))?;
    if entries.is_empty() {
        return Err(
            "the users list is empty; give at least one {\"email\": ...} entry".to_string(),
        );
    }

    let mut users = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        if !is_usable_email(&entry.email) {
            return Err(format!(
                "user {index}: {:?} is not a usable email; expected a form like name@example.com",
                entry.email
            ));
        }
        let id = entry.id.unwrap_or_else(|| User::id_for_email(&entry.email));
        users.push(User {
            id,
            email: entry.email,
            name: entry.name,
            teams: entry.teams,
        });
    }
    Ok(users)
}

/// Checks that `email` has the form `local@domain` with no whitespace or
/// control characters and at most 254 bytes. It does not check deliverability.
pub(crate) fn is_usable_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_for_email_is_stable_and_case_insensitive() {
        let id = User::id_for_email("Ada@Example.com");
        assert_eq!(id, User::id_for_email("ada@example.com"));
        assert_eq!(id.len(), 36);
        assert_ne!(id, User::id_for_email("grace@heroku.com"));
    }

    #[test]
    fn users_json_derives_missing_ids() {
        let users = parse_users_json(r#"[{"email":"x@example.com","teams":["a"]},{"email":"y@example.com","id":"fixed","name":"Y"}]"#)
            .unwrap();
        assert_eq!(users[0].id, User::id_for_email("x@example.com"));
        assert_eq!(users[0].name, None);
        assert_eq!(users[0].teams, vec!["a".to_string()]);
        assert_eq!(users[1].id, "fixed");
        assert_eq!(users[1].name.as_deref(), Some("Y"));
    }

    #[test]
    fn users_json_rejects_bad_input() {
        assert!(parse_users_json("[]").unwrap_err().contains("empty"));
        assert!(parse_users_json(r#"[{"email":"no-at-sign"}]"#)
            .unwrap_err()
            .contains("user 0"));
        assert!(parse_users_json(r#"[{"email":"a@b","role":"x"}]"#)
            .unwrap_err()
            .contains("invalid users JSON"));
    }

    #[test]
    fn client_debug_redacts_secret() {
        let text = format!("{:?}", Config::default().client);
        assert!(!text.contains("standin-client-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
