//! Runs the Heroku stand-in for local development.
//!
//! Prints `heroku-standin listening on http://HOST:PORT` once it accepts
//! connections, then logs one line per request on stderr (method, path
//! without the query string, status) until it is stopped.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use std::{fs, thread};

use heroku_standin::{parse_users_json, Approval, Config, Standin};

const USAGE: &str = "\
Usage: heroku-standin [OPTIONS]

A local stand-in for Heroku's OAuth service (id.heroku.com) and Platform API
(api.heroku.com), on plain HTTP.

Options:
  --listen ADDR                     Address to listen on [default: 127.0.0.1:9292]
  --redirect-uri URL                Registered redirect URI of the OAuth client
                                    [default: http://127.0.0.1:10000/auth/heroku/callback/]
  --client-id ID                    OAuth client id [default: standin-client-id]
  --client-secret SECRET            OAuth client secret [default: standin-client-secret]
  --approval prompt|auto|deny       What /oauth/authorize does: show a consent page,
                                    approve at once as the current user, or deny
                                    [default: prompt]
  --users FILE                      JSON file of users: [{\"email\": ..., \"name\": ..., \"teams\": [...]}];
                                    the first is logged in at start [default: three sample users]
  --code-lifetime SECONDS           Lifetime of authorization codes [default: 300]
  --access-token-lifetime SECONDS   Lifetime of access tokens [default: 28800]
  --refresh-token-lifetime SECONDS  Lifetime of refresh tokens [default: 2592000]
  --teams-scopes LIST               Comma-separated scopes that may read /teams
                                    [default: global,read,read-protected,write,write-protected]
  -h, --help                        Print this help
";

struct Options {
    listen: String,
    config: Config,
    teams_scopes: Option<Vec<String>>,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("heroku-standin: {message}\nRun heroku-standin --help for the options.");
            return ExitCode::from(2);
        }
    };

    let standin = match Standin::start_on(&options.listen, options.config) {
        Ok(standin) => standin,
        Err(error) => {
            eprintln!(
                "heroku-standin: failed to start on {}: {error}",
                options.listen
            );
            return ExitCode::FAILURE;
        }
    };
    if let Some(scopes) = &options.teams_scopes {
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        standin.set_teams_scopes(&scopes);
    }
    standin.set_request_logging(true);

    println!("heroku-standin listening on {}", standin.base_url());
    if let Err(error) = std::io::stdout().flush() {
        eprintln!("heroku-standin: failed to flush stdout: {error}");
    }

    // The server runs on its own threads until the process is killed.
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// Parses the command line. Returns `Ok(None)` when help was requested.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        listen: "127.0.0.1:9292".to_string(),
        config: Config {
            approval: Approval::Prompt,
            ..Config::default()
        },
        teams_scopes: None,
    };

    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        // Both `--flag value` and `--flag=value` work.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || match inline_value.clone() {
            Some(value) => Ok(value),
            None => args.next().ok_or_else(|| format!("{flag} needs a value")),
        };

        match flag.as_str() {
            "--listen" => options.listen = value()?,
            "--redirect-uri" => options.config.client.redirect_uri = value()?,
            "--client-id" => options.config.client.id = value()?,
            "--client-secret" => options.config.client.secret = value()?,
            "--approval" => options.config.approval = parse_approval(&value()?)?,
            "--users" => options.config.users = read_users(&value()?)?,
            "--code-lifetime" => options.config.code_lifetime_s = parse_seconds(&flag, &value()?)?,
            "--access-token-lifetime" => {
                options.config.access_token_lifetime_s = parse_seconds(&flag, &value()?)?
            }
            "--refresh-token-lifetime" => {
                options.config.refresh_token_lifetime_s = parse_seconds(&flag, &value()?)?
            }
            "--teams-scopes" => {
                let list = value()?;
                options.teams_scopes = Some(
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    Ok(Some(options))
}

fn parse_approval(value: &str) -> Result<Approval, String> {
    match value {
        "prompt" => Ok(Approval::Prompt),
        "auto" => Ok(Approval::AutoApprove),
        "deny" => Ok(Approval::Deny),
        _ => Err(format!(
            "invalid --approval {value:?}; use prompt, auto or deny"
        )),
    }
}

fn parse_seconds(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("invalid {flag} {value:?}; expected a whole number of seconds"))
}

fn read_users(path: &str) -> Result<Vec<heroku_standin::User>, String> {
    let text = fs::read_to_string(path)
        .map_err(|error| format!("failed to read users file {path:?}: {error}"))?;
    parse_users_json(&text).map_err(|error| format!("users file {path:?}: {error}"))
}
