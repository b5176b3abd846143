//! The two binaries: they print their address on stdout and serve on it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

/// Kills the child process when the test ends, even on a failed assertion.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a binary and returns it with the URL from its `... listening on URL` line.
fn launch(binary: &str, args: &[&str]) -> (Running, String) {
    let child = Command::new(binary)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(line.contains(" listening on http://127.0.0.1:"), "{line}");
    (running, url)
}

#[test]
fn standin_binary_serves_configured_client() {
    let (_running, url) = launch(
        env!("CARGO_BIN_EXE_heroku-standin"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--approval",
            "deny",
            "--client-id",
            "cli-client",
            "--redirect-uri",
            "http://127.0.0.1:1/cb",
        ],
    );
    let answer = get(
        &format!("{url}/oauth/authorize?client_id=cli-client&response_type=code"),
        &[],
    );
    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.location(),
        "http://127.0.0.1:1/cb?error=access_denied"
    );
}

#[test]
fn standin_binary_offers_dev_users() {
    let users = concat!(env!("CARGO_MANIFEST_DIR"), "/dev-users.json");
    let (_running, url) = launch(
        env!("CARGO_BIN_EXE_heroku-standin"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--approval",
            "prompt",
            "--users",
            users,
        ],
    );
    let answer = get(
        &format!(
            "{url}/oauth/authorize?client_id=standin-client-id&response_type=code&scope=identity"
        ),
        &[],
    );
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.contains("value=\"ada@example.com\" checked"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("value=\"grace@heroku.com\""),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("value=\"anonymous@example.com\""),
        "{}",
        answer.body
    );
}

#[test]
fn standin_binary_rejects_unknown_option() {
    let output = Command::new(env!("CARGO_BIN_EXE_heroku-standin"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown option \"--bogus\""));
}

#[test]
fn demo_app_binary_answers_json() {
    let (_running, url) = launch(env!("CARGO_BIN_EXE_demo-app"), &["--listen", "127.0.0.1:0"]);
    let answer = get(&format!("{url}/x"), &[("Accept", "application/json")]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["path"], "/x");
}
