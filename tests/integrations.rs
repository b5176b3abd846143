//! Real apps behind the filter, through a real Envoy: a Django site that logs users in
//! with `RemoteUserMiddleware`, a Flask app that reads the identity headers, and the RBAC
//! example of `docs/integrations.md`.
//!
//! The Python apps run from `tests/apps/` in the venv that `make apps` creates.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ADA: &str = "ada@example.com";
const SPOOFED: &str = "mallory@evil.example";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Returns the venv's Python: `$APPS_PYTHON`, or the one `make apps` installs.
fn apps_python() -> PathBuf {
    let path = std::env::var_os("APPS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/apps/.venv/bin/python"));
    assert!(path.exists(), "{} is missing; run `make apps` (or `make test`), which installs Django and Flask", path.display());
    path
}

static NEXT_APP: AtomicUsize = AtomicUsize::new(0);

/// A Python app from `tests/apps/` on a loopback port, killed on drop. Its log is printed
/// when the test fails.
struct PythonApp {
    child: Child,
    /// Kept open: the app exits when its standard input closes, even if this process dies
    /// without running `drop`.
    _stdin: ChildStdin,
    port: u16,
    log: PathBuf,
}

impl PythonApp {
    fn start(name: &str) -> PythonApp {
        let dir = repo_root().join("target/e2e");
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}-{}-{}.log", std::process::id(), NEXT_APP.fetch_add(1, Ordering::Relaxed)));
        let mut child = Command::new(apps_python())
            .arg("serve.py")
            .arg(name)
            .current_dir(repo_root().join("tests/apps"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|error| panic!("start the {name} app: {error}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();

        // The first line names the port. Reading it on a thread bounds the wait.
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let port = line.trim().strip_prefix("listening on 127.0.0.1:").and_then(|port| port.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {name} app did not report its port (got {line:?}):\n{}", fs::read_to_string(&log).unwrap_or_default());
        };
        PythonApp { child, _stdin: stdin, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- app log ({}) ----\n{}", self.log.display(), fs::read_to_string(&self.log).unwrap_or_default());
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// Starts Envoy with the filter in front of `app`.
fn stack_for(app: &PythonApp, setup: Setup) -> Stack {
    Stack::start(Setup { app_port: Some(app.port), ..setup })
}

fn json_of(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{} {}", response.url, response.body);
    response.json()
}

#[test]
fn django_user_is_heroku_user() {
    let app = PythonApp::start("django");
    let stack = stack_for(&app, Setup::default());
    let mut browser = Browser::default();

    let page = json_of(&stack.log_in(&mut browser, "/whoami"));
    assert_eq!(page["authenticated"], true, "{page}");
    assert_eq!(page["username"], ADA, "request.user is the Heroku user");
    assert_eq!(page["backend"], "django.contrib.auth.backends.RemoteUserBackend");
    assert_eq!(page["users"], json!([ADA]), "RemoteUserBackend created the user");

    stack.standin.set_current_user("grace@heroku.com");
    let mut other = Browser::default();
    let page = json_of(&stack.log_in(&mut other, "/whoami"));
    assert_eq!(page["username"], "grace@heroku.com");
    assert_eq!(page["users"], json!([ADA, "grace@heroku.com"]));

    let page = json_of(&browser.get(&stack.url("/again")));
    assert_eq!(page["username"], ADA, "each browser keeps its own user");
}

#[test]
fn django_ignores_client_identity_headers() {
    let app = PythonApp::start("django");
    let stack = stack_for(&app, Setup::with_plugin(json!({"skip_paths": ["/public/*"]})));
    let spoofs = [("X-Heroku-User-Email", SPOOFED), ("X_Heroku_User_Email", SPOOFED)];

    // The control: without Envoy in front, either spelling logs anyone in, because
    // wsgiref maps both to HTTP_X_HEROKU_USER_EMAIL.
    let mut direct = Browser::default();
    for (name, value) in spoofs {
        let page = json_of(&direct.request("GET", &app.url(&format!("/direct/{name}")), &[(name, value)]));
        assert_eq!(page["username"], SPOOFED, "{name} reaches the app directly: {page}");
    }

    let mut stranger = Browser::default();
    for (name, value) in spoofs {
        let page = json_of(&stranger.request("GET", &stack.url("/public/whoami"), &[(name, value)]));
        assert_eq!(page["authenticated"], false, "{name} on a skip path: {page}");
    }

    let mut browser = Browser::default();
    stack.log_in(&mut browser, "/whoami");
    for (name, value) in spoofs {
        let page = json_of(&browser.request("GET", &stack.url("/whoami"), &[(name, value)]));
        assert_eq!(page["username"], ADA, "{name} from a logged-in browser: {page}");
    }
    let page = json_of(&browser.request("GET", &stack.url("/whoami"), &spoofs));
    assert_eq!(page["username"], ADA, "both spellings at once: {page}");
    assert_eq!(page["users"], json!([ADA, SPOOFED]), "only the direct requests created the spoofed user");
}

#[test]
fn flask_reads_identity_headers() {
    let app = PythonApp::start("flask");
    let mut setup = Setup::with_plugin(json!({"skip_paths": ["/public/*"]}));
    setup.standin.users = vec![heroku_standin::User::new("jose@example.com", Some("José Núñez"), &[])];
    let stack = stack_for(&app, setup);

    let mut browser = Browser::default();
    let page = json_of(&stack.log_in(&mut browser, "/hello"));
    assert_eq!(page["email"], "jose@example.com");
    assert_eq!(page["id"], heroku_standin::User::id_for_email("jose@example.com"));
    assert_eq!(page["name"], "José Núñez", "the app decodes the percent-encoded name");

    let spoofed = [("X-Heroku-User-Email", SPOOFED), ("x_heroku_user_name", "Mallory")];
    let page = json_of(&browser.request("GET", &stack.url("/hello"), &spoofed));
    assert_eq!(page["email"], "jose@example.com", "{page}");
    assert_eq!(page["name"], "José Núñez", "{page}");

    let mut stranger = Browser::default();
    let page = json_of(&stranger.request("GET", &stack.url("/public/hello"), &spoofed));
    assert_eq!(page, json!({"email": null, "id": null, "name": null}), "a skip path carries no identity");
}

/// Returns the first ```yaml block after `heading` in a Markdown file.
fn yaml_block_after(markdown: &str, heading: &str) -> String {
    let start = markdown.find(heading).unwrap_or_else(|| panic!("no heading {heading:?}"));
    let rest = &markdown[start..];
    let open = rest.find("```yaml\n").unwrap_or_else(|| panic!("no ```yaml block after {heading:?}")) + "```yaml\n".len();
    let close = rest[open..].find("```").expect("closed code block");
    rest[open..open + close].to_string()
}

/// The RBAC filter of `docs/integrations.md`, placed after heroku_bouncer, admits only the
/// listed emails to `/admin/`. It matches the filter's identity headers, never the client's.
#[test]
fn rbac_example_restricts_admin_path() {
    let docs = fs::read_to_string(repo_root().join("docs/integrations.md")).unwrap();
    let rbac = yaml_block_after(&docs, "## Restrict paths by email with Envoy's RBAC filter");
    assert!(rbac.starts_with("- name: envoy.filters.http.rbac\n"), "{rbac}");
    let indented: String = rbac.lines().map(|line| format!("          {line}\n")).collect();

    let setup = Setup::default();
    let standin = Standin::start(setup.standin.clone()).unwrap();
    let app = DemoApp::start().unwrap();
    let router = "          - name: envoy.filters.http.router\n";
    let config = render_envoy_config(&setup, &standin, &app);
    assert!(config.contains(router), "{config}");
    let config = config.replacen(router, &format!("{indented}{router}"), 1);
    // The path settings that docs/integrations.md requires, as in envoy.yaml.
    let manager = "          stat_prefix: ingress_http\n";
    assert!(config.contains(manager), "{config}");
    let config = config.replacen(
        manager,
        &format!("{manager}          normalize_path: true\n          merge_slashes: true\n"),
        1,
    );
    let envoy = Envoy::start(&config, &setup).unwrap_or_else(|log| panic!("Envoy did not start:\n{log}"));
    standin.set_redirect_uri(&format!("{}/auth/heroku/callback/", envoy.base_url()));
    let url = |path: &str| format!("{}{path}", envoy.base_url());

    let mut anonymous = Browser::default();
    let response = anonymous.request("GET", &url("/admin/"), &[("x-heroku-user-email", ADA)]);
    assert_eq!(response.status, 302, "a request without a session logs in first");
    assert!(response.header("location").unwrap().contains("/oauth/authorize?"));

    let mut admin = Browser::default();
    assert_eq!(admin.follow(&url("/"), 6).status, 200);
    assert_eq!(admin.get(&url("/admin/users")).status, 200, "{ADA} is listed");

    standin.set_current_user("grace@heroku.com");
    let mut user = Browser::default();
    assert_eq!(user.follow(&url("/"), 6).status, 200, "everyone may use the rest of the app");
    let response = user.get(&url("/admin/users"));
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(response.body, "RBAC: access denied");
    let response = user.request("GET", &url("/admin/users"), &[("X-Heroku-User-Email", ADA)]);
    assert_eq!(response.status, 403, "the client's header is replaced before RBAC runs");

    // HTTP clients resolve dot segments themselves, so these paths go out as raw requests.
    let session = user.cookie(&url("/"), "herokuoauthsess").unwrap();
    for path in ["/x/../admin/users", "//admin/users", "/admin//users"] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: app\r\nAccept: text/html\r\nCookie: herokuoauthsess={session}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw_request(envoy.listener(), request.as_bytes()), 403, "{path}");
    }
    let request = format!(
        "GET /x/../hello HTTP/1.1\r\nHost: app\r\nAccept: text/html\r\nCookie: herokuoauthsess={session}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_request(envoy.listener(), request.as_bytes()), 200, "the raw requests carry a valid session");
    assert!(app.requests().iter().all(|request| !request.path.starts_with("/admin/")
        || request.header("x-heroku-user-email") == Some(ADA)));
}
