//! Allow rules: which Heroku users may pass, decided from the account's email.

/// Emails, email domains and Heroku teams that may pass. All three lists empty means every
/// Heroku user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowRule {
    emails: Vec<String>,
    domains: Vec<String>,
    teams: Vec<String>,
}

impl AllowRule {
    /// Builds a rule from configured lists, lowercased. Returns the offending key and a
    /// message when an entry is not a plain email, domain or team name.
    pub fn new(emails: &[String], domains: &[String], teams: &[String]) -> Result<Self, (&'static str, String)> {
        let mut rule = AllowRule::default();
        for email in emails {
            if split_email(email).is_none() {
                return Err(("allow.emails", format!("{email:?} is not an email address like \"ada@example.com\"")));
            }
            rule.emails.push(email.to_ascii_lowercase());
        }
        for domain in domains {
            if !is_domain(domain) {
                return Err((
                    "allow.email_domains",
                    format!("{domain:?} is not a domain like \"example.com\" (no \"@\", no wildcard)"),
                ));
            }
            rule.domains.push(domain.to_ascii_lowercase());
        }
        for team in teams {
            let plain = !team.is_empty() && team.len() <= 128 && team.bytes().all(|byte| byte.is_ascii_graphic());
            if !plain {
                return Err(("allow.teams", format!("{team:?} is not a Heroku team name or id")));
            }
            rule.teams.push(team.clone());
        }
        Ok(rule)
    }

    pub fn allows_everyone(&self) -> bool {
        self.emails.is_empty() && self.domains.is_empty() && self.teams.is_empty()
    }

    /// True when team membership can admit a user the email rules do not.
    pub fn checks_teams(&self) -> bool {
        !self.teams.is_empty()
    }

    /// Decides whether a member of `teams` (names or ids, as `GET /teams` lists them) may
    /// pass. Team names and ids compare case-insensitively.
    pub fn allows_any_team<'a>(&self, mut teams: impl Iterator<Item = &'a str>) -> bool {
        teams.any(|team| self.teams.iter().any(|allowed| allowed.eq_ignore_ascii_case(team)))
    }

    /// Decides whether `email` may pass on the email rules alone. An email that is not
    /// exactly `local@domain` with one `@` never passes, not even when the rule allows
    /// everyone.
    pub fn allows(&self, email: &str) -> bool {
        let Some((_, domain)) = split_email(email) else {
            return false;
        };
        if self.allows_everyone() {
            return true;
        }
        let email_listed = self.emails.iter().any(|allowed| allowed.eq_ignore_ascii_case(email));
        let domain_listed = self.domains.iter().any(|allowed| allowed.eq_ignore_ascii_case(domain));
        email_listed || domain_listed
    }
}

/// Splits a strict email address into its local part and domain.
///
/// Accepts only printable ASCII without spaces, exactly one `@`, a non-empty local part
/// and a domain that [`is_domain`] accepts. Anything looser could let a crafted address
/// such as `a@evil.com@heroku.com` match the wrong domain.
pub fn split_email(email: &str) -> Option<(&str, &str)> {
    if email.len() > 254 || !email.bytes().all(|byte| byte.is_ascii_graphic()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || domain.contains('@') || !is_domain(domain) {
        return None;
    }
    Some((local, domain))
}

/// Accepts DNS names made of letters, digits and '-', joined by single dots.
fn is_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(emails: &[&str], domains: &[&str]) -> AllowRule {
        let emails: Vec<String> = emails.iter().map(|s| s.to_string()).collect();
        let domains: Vec<String> = domains.iter().map(|s| s.to_string()).collect();
        AllowRule::new(&emails, &domains, &[]).unwrap()
    }

    #[test]
    fn empty_rule_allows_any_valid_email() {
        let everyone = rule(&[], &[]);
        assert!(everyone.allows("ada@example.com"));
        assert!(!everyone.allows("not-an-email"));
        assert!(!everyone.allows(""));
    }

    #[test]
    fn domain_match_is_exact_and_case_insensitive() {
        let heroku = rule(&[], &["heroku.com"]);
        assert!(heroku.allows("grace@heroku.com"));
        assert!(heroku.allows("Grace@HEROKU.com"));
        assert!(!heroku.allows("grace@notheroku.com"));
        assert!(!heroku.allows("grace@heroku.com.evil.org"));
        assert!(!heroku.allows("grace@sub.heroku.com"));
    }

    #[test]
    fn ambiguous_emails_never_pass() {
        let heroku = rule(&[], &["heroku.com"]);
        for email in [
            "a@evil.com@heroku.com",
            "@heroku.com",
            "a b@heroku.com",
            "a@heroku.com ",
            "a@heroku..com",
            "a@heroku.com.",
            "a\n@heroku.com",
            "ä@heroku.com",
        ] {
            assert!(!heroku.allows(email), "{email:?}");
        }
    }

    #[test]
    fn listed_email_passes() {
        let listed = rule(&["ada@example.com"], &[]);
        assert!(listed.allows("ADA@example.com"));
        assert!(!listed.allows("bob@example.com"));
    }

    #[test]
    fn emails_and_domains_combine_as_any() {
        let both = rule(&["ada@example.com"], &["heroku.com"]);
        assert!(both.allows("ada@example.com"));
        assert!(both.allows("grace@heroku.com"));
        assert!(!both.allows("bob@example.com"));
    }

    #[test]
    fn bad_entries_are_rejected() {
        assert_eq!(AllowRule::new(&["nope".into()], &[], &[]).unwrap_err().0, "allow.emails");
        for bad in ["@heroku.com", "*.heroku.com", "heroku com", ""] {
            assert_eq!(AllowRule::new(&[], &[bad.into()], &[]).unwrap_err().0, "allow.email_domains", "{bad}");
        }
        assert_eq!(AllowRule::new(&[], &[], &["two words".into()]).unwrap_err().0, "allow.teams");
    }

    #[test]
    fn teams_rule_needs_membership() {
        let rule = AllowRule::new(&[], &[], &["Platform".into()]).unwrap();
        assert!(!rule.allows_everyone());
        assert!(rule.checks_teams());
        assert!(!rule.allows("ada@example.com"), "the email rules alone do not admit");
        assert!(rule.allows_any_team(["other", "platform"].into_iter()));
        assert!(!rule.allows_any_team(["platformers"].into_iter()));
    }
}
