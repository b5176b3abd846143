//! Harness for the end-to-end tests: a real Envoy 1.40 with the built filter, the Heroku
//! stand-in and the demo app in this process, and a small cookie-keeping HTTP client.
//!
//! Each test starts its own Envoy on ports the kernel picks, so tests run in parallel and
//! never collide with `make run`. When a test fails, the Envoy log is printed and kept under
//! `target/e2e/`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use heroku_standin::{Approval, Config as StandinConfig, DemoApp, Endpoint, Fault, Standin};

pub const CLIENT_ID: &str = "standin-client-id";
pub const CLIENT_SECRET: &str = "standin-client-secret";
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789";

/// Repository root, where `make build` leaves the wasm module and the venv.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Returns the built filter's path. `make test` builds it first, and a bare `cargo test`
/// fails here with a hint.
pub fn wasm_path() -> PathBuf {
    let path = repo_root().join("target/wasm32-wasip1/release/heroku_bouncer.wasm");
    assert!(path.exists(), "{} is missing; run `make build` (or `make test`) first", path.display());
    path
}

/// Returns the Envoy binary: `$ENVOY_BIN`, or the one `make` installs into `.venv`.
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"));
    assert!(path.exists(), "Envoy not found at {}; run `make test`, which installs it", path.display());
    path
}

/// Which cluster a callout name points at, for fault tests that need a broken cluster.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// The stand-in.
    Standin,
    /// A loopback port where nothing listens, so connections are refused.
    Refused,
}

/// What one test's Envoy runs with.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Plugin configuration keys beyond the ones the harness sets (callout clusters,
    /// authorize URL, and the credentials unless `credentials_from_env`).
    pub plugin: serde_json::Value,
    /// Pass the credentials through `vm_config.environment_variables` instead of the JSON.
    pub credentials_from_env: bool,
    pub id_upstream: Upstream,
    pub api_upstream: Upstream,
    pub standin: StandinConfig,
    /// A loopback port where the test runs its own app, for the `app` cluster in place of
    /// the demo app.
    pub app_port: Option<u16>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            plugin: serde_json::json!({}),
            credentials_from_env: false,
            id_upstream: Upstream::Standin,
            api_upstream: Upstream::Standin,
            standin: StandinConfig::default(),
            app_port: None,
        }
    }
}

impl Setup {
    pub fn with_plugin(plugin: serde_json::Value) -> Self {
        Setup { plugin, ..Setup::default() }
    }
}

/// A running Envoy with the filter, the stand-in and the demo app behind it.
pub struct Stack {
    pub standin: Standin,
    pub app: DemoApp,
    pub envoy: Envoy,
}

impl Stack {
    pub fn start(setup: Setup) -> Stack {
        let standin = Standin::start(setup.standin.clone()).expect("start the Heroku stand-in");
        let app = DemoApp::start().expect("start the demo app");
        let config = render_envoy_config(&setup, &standin, &app);
        let envoy = Envoy::start(&config, &setup).unwrap_or_else(|log| panic!("Envoy did not start:\n{log}"));
        standin.set_redirect_uri(&format!("{}/auth/heroku/callback/", envoy.base_url()));
        Stack { standin, app, envoy }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.envoy.base_url())
    }

    /// Logs `browser` in through the stand-in's auto-approve flow, starting at `path`.
    /// Returns the final response, normally the demo app's page at `path`.
    pub fn log_in(&self, browser: &mut Browser, path: &str) -> Response {
        browser.follow(&self.url(path), 6)
    }
}

/// Builds the Envoy bootstrap for one test. Ports are 0: the kernel picks them, and the
/// harness reads them back from the admin API.
pub fn render_envoy_config(setup: &Setup, standin: &Standin, app: &DemoApp) -> String {
    let mut plugin = serde_json::json!({
        "authorize_url": format!("{}/oauth/authorize", standin.base_url()),
        "id_authority": "id.heroku.com",
        "api_authority": "api.heroku.com",
    });
    if !setup.credentials_from_env {
        plugin["client_id"] = CLIENT_ID.into();
        plugin["client_secret"] = CLIENT_SECRET.into();
        plugin["secret_key"] = SECRET_KEY.into();
    }
    if let (Some(target), Some(extra)) = (plugin.as_object_mut(), setup.plugin.as_object()) {
        for (key, value) in extra {
            target.insert(key.clone(), value.clone());
        }
    }
    let plugin_json = serde_json::to_string(&plugin.to_string()).expect("JSON string");

    let port_of = |upstream: &Upstream| match upstream {
        Upstream::Standin => standin.addr().port(),
        Upstream::Refused => refused_port(),
    };
    let env_keys = if setup.credentials_from_env {
        "\n                  environment_variables:\n                    host_env_keys: [\"HEROKU_OAUTH_ID\", \"HEROKU_OAUTH_SECRET\", \"SECRET_KEY\"]"
    } else {
        ""
    };

    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          # As in envoy.yaml: resolve dot-segments, unreserved percent-escapes and repeated
          # slashes before the filter and the router see the path.
          normalize_path: true
          merge_slashes: true
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: app}}
          http_filters:
          - name: heroku_bouncer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: heroku_bouncer
                root_id: heroku_bouncer
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {plugin_json}
                vm_config:
                  vm_id: heroku_bouncer
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: "{wasm}"}}}}{env_keys}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - {app_cluster}
  - {id_cluster}
  - {api_cluster}
"#,
        wasm = wasm_path().display(),
        app_cluster = cluster_yaml("app", setup.app_port.unwrap_or_else(|| app.addr().port())),
        id_cluster = cluster_yaml("heroku_id", port_of(&setup.id_upstream)),
        api_cluster = cluster_yaml("heroku_api", port_of(&setup.api_upstream)),
    )
}

/// A cluster on a loopback port. Each upstream connection carries one request: the
/// stand-in and the demo app serve with tiny_http, whose connection threads wait on idle
/// keep-alive connections, so a burst of new connections could queue behind them for good.
fn cluster_yaml(name: &str, port: u16) -> String {
    format!(
        "name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        common_http_protocol_options: {{max_requests_per_connection: 1}}\n        explicit_http_config: {{http_protocol_options: {{}}}}\n    load_assignment:\n      cluster_name: {name}\n      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]"
    )
}

/// Returns a loopback port with no listener, bound once to learn a free number and released.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe address").port()
}

static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);

/// A running Envoy process, stopped on drop.
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin: String,
    listener: String,
}

impl Envoy {
    /// Starts Envoy and waits until its listener is up. Returns the log if it exits first.
    pub fn start(config: &str, setup: &Setup) -> Result<Envoy, String> {
        let (mut child, dir) = spawn_envoy(config, setup);
        let admin_file = dir.join("admin.txt");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("Envoy exited with {status}:\n{}", read_log(&dir)));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("Envoy was not ready within 60 s:\n{}", read_log(&dir)));
            }
            if let Ok(admin) = fs::read_to_string(&admin_file) {
                let admin = admin.trim().to_string();
                if let Some(listener) = listener_address(&admin) {
                    return Ok(Envoy { child, dir, admin, listener });
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts Envoy with a configuration it must reject. Returns its exit log.
    pub fn expect_rejected(config: &str, setup: &Setup) -> String {
        let (mut child, dir) = spawn_envoy(config, setup);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    assert!(!status.success(), "Envoy accepted a configuration it should reject");
                    let log = read_log(&dir);
                    let _ = fs::remove_dir_all(&dir);
                    return log;
                }
                _ if Instant::now() > deadline => {
                    let _ = child.kill();
                    panic!("Envoy kept running with a configuration it should reject:\n{}", read_log(&dir));
                }
                _ => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.listener)
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Reads one of the filter's counters from the admin `/stats` page, where Envoy 1.40
    /// shows it with the `wasmcustom.` prefix; 0 when Envoy has not shown it yet.
    pub fn counter(&self, name: &str) -> u64 {
        let full = format!("wasmcustom.{name}");
        let stats = self.admin_get(&format!("/stats?filter=^{full}$"));
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{full}: ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn admin_get(&self, path: &str) -> String {
        http_get_text(&format!("http://{}{path}", self.admin))
    }

    pub fn log(&self) -> String {
        read_log(&self.dir)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- Envoy log ({}) ----\n{}", self.dir.display(), read_log(&self.dir));
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn spawn_envoy(config: &str, setup: &Setup) -> (Child, PathBuf) {
    let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
    let dir = repo_root().join("target/e2e").join(format!("{}-{run}", std::process::id()));
    fs::create_dir_all(&dir).expect("create the Envoy run folder");
    let config_path = dir.join("envoy.yaml");
    fs::write(&config_path, config).expect("write the Envoy config");
    let log = fs::File::create(dir.join("envoy.log")).expect("create the Envoy log");

    let mut command = Command::new(envoy_binary());
    command
        .arg("-c")
        .arg(&config_path)
        .args(["--concurrency", "2", "--use-dynamic-base-id", "-l", "warning"])
        .args(["--component-log-level", &std::env::var("ENVOY_COMPONENT_LOG").unwrap_or_else(|_| "wasm:info".to_string())])
        .arg("--admin-address-path")
        .arg(dir.join("admin.txt"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log);
    for name in ["HEROKU_OAUTH_ID", "HEROKU_OAUTH_SECRET", "SECRET_KEY"] {
        command.env_remove(name);
    }
    if setup.credentials_from_env {
        command
            .env("HEROKU_OAUTH_ID", CLIENT_ID)
            .env("HEROKU_OAUTH_SECRET", CLIENT_SECRET)
            .env("SECRET_KEY", SECRET_KEY);
    }
    (command.spawn().expect("start Envoy"), dir)
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("envoy.log")).unwrap_or_default()
}

/// Reads the main listener's bound address from the admin API, once Envoy is ready.
fn listener_address(admin: &str) -> Option<String> {
    let ready = ureq::get(&format!("http://{admin}/ready")).timeout(Duration::from_secs(2)).call().ok()?;
    if ready.status() != 200 {
        return None;
    }
    let text = ureq::get(&format!("http://{admin}/listeners?format=json")).call().ok()?.into_string().ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let socket = &value["listener_statuses"][0]["local_address"]["socket_address"];
    let port = socket["port_value"].as_u64()?;
    (port != 0).then(|| format!("127.0.0.1:{port}"))
}

fn http_get_text(url: &str) -> String {
    match ureq::get(url).call() {
        Ok(response) => response.into_string().unwrap_or_default(),
        Err(ureq::Error::Status(_, response)) => response.into_string().unwrap_or_default(),
        Err(error) => panic!("GET {url} failed: {error}"),
    }
}

/// One HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

/// A client that keeps cookies per host and port, like a browser, but follows redirects
/// only when asked.
pub struct Browser {
    agent: ureq::Agent,
    cookies: BTreeMap<String, BTreeMap<String, String>>,
    pub accept: &'static str,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(20))
                .build(),
            cookies: BTreeMap::new(),
            accept: "text/html,application/xhtml+xml,*/*;q=0.8",
        }
    }
}

fn origin_of(url: &str) -> String {
    url.split('/').take(3).collect::<Vec<_>>().join("/")
}

impl Browser {
    pub fn get(&mut self, url: &str) -> Response {
        self.request("GET", url, &[])
    }

    /// Sends a request with this browser's cookies for the URL's origin and stores the
    /// cookies the response sets.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        let origin = origin_of(url);
        let mut request = self.agent.request(method, url).set("accept", self.accept);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        if let Some(jar) = self.cookies.get(&origin) {
            if !jar.is_empty() && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("cookie")) {
                let cookie = jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
                request = request.set("cookie", &cookie);
            }
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {url} failed: {error}"),
        };
        let response = read_response(url, response);
        self.store_cookies(&origin, &response);
        response
    }

    /// Follows redirects from `url`, at most `max` of them, and returns the last response.
    pub fn follow(&mut self, url: &str, max: usize) -> Response {
        let mut response = self.get(url);
        for _ in 0..max {
            if !(300..400).contains(&response.status) {
                return response;
            }
            let location = response.header("location").expect("redirect without location").to_string();
            let next = if location.starts_with('/') {
                format!("{}{location}", origin_of(&response.url))
            } else {
                location
            };
            response = self.get(&next);
        }
        response
    }

    fn store_cookies(&mut self, origin: &str, response: &Response) {
        let jar = self.cookies.entry(origin.to_string()).or_default();
        for set_cookie in response.all("set-cookie") {
            let pair = set_cookie.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else { continue };
            let expired = set_cookie.split(';').any(|attribute| attribute.trim().eq_ignore_ascii_case("Max-Age=0"));
            if expired {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    /// Returns the cookie `name` stored for the origin of `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.cookies.get(&origin_of(url))?.get(name).cloned()
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        self.cookies.entry(origin_of(url)).or_default().insert(name.to_string(), value.to_string());
    }

    pub fn cookie_names(&self, url: &str) -> Vec<String> {
        self.cookies.get(&origin_of(url)).map(|jar| jar.keys().cloned().collect()).unwrap_or_default()
    }
}

fn read_response(url: &str, response: ureq::Response) -> Response {
    let status = response.status();
    let mut headers = Vec::new();
    for name in response.headers_names() {
        for value in response.all(&name) {
            headers.push((name.clone(), value.to_string()));
        }
    }
    let body = response.into_string().unwrap_or_default();
    Response { status, url: url.to_string(), headers, body }
}

/// Sends raw bytes to a listener and returns the response's status code, for requests no
/// ordinary client would send (non-UTF-8 headers, for example).
pub fn raw_request(address: &str, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(address).expect("connect to Envoy");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("set a read timeout");
    stream.write_all(request).expect("send the raw request");
    let mut buffer = [0u8; 64];
    let read = stream.read(&mut buffer).expect("read the status line");
    let line = String::from_utf8_lossy(&buffer[..read]).to_string();
    line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {line:?}"))
}

/// Waits until `condition` holds, for counters that Envoy flushes shortly after a request.
pub fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}
