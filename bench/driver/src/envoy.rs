//! Envoy bootstraps for the four configurations, and starting and stopping Envoy.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::login;

/// The OAuth client that the stand-in registers by default.
pub const CLIENT_ID: &str = "standin-client-id";
pub const CLIENT_SECRET: &str = "standin-client-secret";
const SECRET_KEY: &str = "bench-secret-key-0123456789abcdef0123456789";

/// Callback and sign-out paths of Envoy's oauth2 filter in the benchmark.
pub const OAUTH2_CALLBACK_PATH: &str = "/oauth2/callback";

/// Maximum time from starting Envoy to its first HTTP response.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP filter in front of the `direct_response` route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// No HTTP filter but the router.
    None,
    /// `bench/floor`: reads `cookie`, sets one request header.
    Floor,
    /// `bench/floor` configured to make heroku-bouncer's four request header writes: the
    /// least that any filter making those writes costs.
    FloorWrites,
    /// heroku-bouncer with a valid session.
    Bouncer,
    /// Envoy's native `envoy.filters.http.oauth2` with a valid session.
    Oauth2,
    /// Another build of heroku-bouncer (`--compare`), to measure a change side by side.
    Compare,
}

impl Filter {
    pub const ALL: [Filter; 5] = [Filter::None, Filter::Floor, Filter::FloorWrites, Filter::Bouncer, Filter::Oauth2];

    pub fn name(self) -> &'static str {
        match self {
            Filter::None => "no filter",
            Filter::Floor => "floor (trivial wasm)",
            Filter::FloorWrites => "floor with 4 writes",
            Filter::Bouncer => "heroku-bouncer",
            Filter::Oauth2 => "envoy oauth2",
            Filter::Compare => "heroku-bouncer (compare)",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::Floor => "floor",
            Filter::FloorWrites => "floor-writes",
            Filter::Bouncer => "bouncer",
            Filter::Oauth2 => "oauth2",
            Filter::Compare => "compare",
        }
    }
}

/// Paths of the built artifacts that the configurations load.
pub struct Artifacts {
    pub envoy: PathBuf,
    pub bouncer_wasm: PathBuf,
    pub floor_wasm: PathBuf,
    /// The build that `Filter::Compare` runs.
    pub compare_wasm: Option<PathBuf>,
    /// Folder for each Envoy run's bootstrap and log.
    pub work_dir: PathBuf,
}

/// A running Envoy, stopped on drop.
pub struct Envoy {
    child: Child,
    pub port: u16,
    /// From spawning the process to the first HTTP response on the listener.
    pub startup: Duration,
    log: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `filter` in front of a `direct_response` route, on one worker
    /// thread, pinned to `cpu` when given. Returns once the listener serves HTTP.
    pub fn start(
        artifacts: &Artifacts,
        filter: Filter,
        standin_port: u16,
        cpu: Option<usize>,
        run_name: &str,
    ) -> Result<Envoy, String> {
        let port = free_port()?;
        let dir = artifacts.work_dir.join(run_name);
        fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let config_path = dir.join("envoy.yaml");
        let config = bootstrap(artifacts, filter, port, standin_port);
        fs::write(&config_path, config).map_err(|error| format!("cannot write {}: {error}", config_path.display()))?;
        let log = dir.join("envoy.log");
        let log_file = fs::File::create(&log).map_err(|error| format!("cannot create {}: {error}", log.display()))?;
        let log_copy = log_file.try_clone().map_err(|error| format!("cannot open the Envoy log: {error}"))?;

        let mut command = match cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &cpu.to_string()]).arg(&artifacts.envoy);
                taskset
            }
            None => Command::new(&artifacts.envoy),
        };
        command
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", "error"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_copy);

        let started = Instant::now();
        let child = command.spawn().map_err(|error| format!("cannot start Envoy: {error}"))?;
        let mut envoy = Envoy { child, port, startup: Duration::ZERO, log };
        envoy.startup = envoy.wait_until_serving(started)?;
        Ok(envoy)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls the listener until any HTTP response comes back. Envoy starts serving once its
    /// configuration is in place, which includes creating the plugin's VMs, so this time
    /// includes loading the plugin.
    fn wait_until_serving(&mut self, started: Instant) -> Result<Duration, String> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("Envoy exited with {status}:\n{}", self.log_text()));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!("Envoy did not serve within {START_TIMEOUT:?}:\n{}", self.log_text()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && login::any_response(&self.base_url()) {
                return Ok(started.elapsed());
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| format!("cannot bind a probe port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("cannot read the probe port: {error}"))
}

/// Renders the bootstrap. Every configuration has the same listener, route and clusters;
/// only the HTTP filter in front of the router differs.
fn bootstrap(artifacts: &Artifacts, filter: Filter, port: u16, standin_port: u16) -> String {
    let filter_yaml = match filter {
        Filter::None => String::new(),
        Filter::Floor => wasm_filter("bench_floor", &artifacts.floor_wasm, "\"\""),
        Filter::FloorWrites => wasm_filter("bench_floor", &artifacts.floor_wasm, "\"four-writes\""),
        Filter::Bouncer | Filter::Compare => {
            let plugin = format!(
                r#"{{"client_id": "{CLIENT_ID}", "client_secret": "{CLIENT_SECRET}", "secret_key": "{SECRET_KEY}", "authorize_url": "http://127.0.0.1:{standin_port}/oauth/authorize", "id_authority": "id.heroku.com", "api_authority": "api.heroku.com"}}"#
            );
            let wasm = match (filter, &artifacts.compare_wasm) {
                (Filter::Compare, Some(other)) => other,
                _ => &artifacts.bouncer_wasm,
            };
            wasm_filter("heroku_bouncer", wasm, &yaml_string(&plugin))
        }
        Filter::Oauth2 => oauth2_filter(standin_port),
    };
    let secrets = if filter == Filter::Oauth2 {
        format!(
            "  secrets:\n  - name: token\n    generic_secret: {{secret: {{inline_string: \"{CLIENT_SECRET}\"}}}}\n  - name: hmac\n    generic_secret: {{secret: {{inline_string: \"bench-hmac-secret-0123456789abcdef\"}}}}\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"static_resources:
{secrets}  listeners:
  - name: bench
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: direct
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok\n"}}}}
          http_filters:
{filter_yaml}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - {id_cluster}
  - {api_cluster}
"#,
        id_cluster = cluster_yaml("heroku_id", standin_port),
        api_cluster = cluster_yaml("heroku_api", standin_port),
    )
}

fn wasm_filter(name: &str, wasm: &Path, configuration: &str) -> String {
    format!(
        r#"          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {configuration}
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: "{wasm}"}}}}
"#,
        wasm = wasm.display()
    )
}

/// Envoy's oauth2 filter against the stand-in, forwarding the access token upstream as
/// heroku-bouncer forwards the identity. The stand-in rejects Envoy's default scope `user`.
fn oauth2_filter(standin_port: u16) -> String {
    format!(
        r#"          - name: envoy.filters.http.oauth2
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.oauth2.v3.OAuth2
              config:
                token_endpoint:
                  cluster: heroku_id
                  uri: "http://127.0.0.1:{standin_port}/oauth/token"
                  timeout: 5s
                authorization_endpoint: "http://127.0.0.1:{standin_port}/oauth/authorize"
                redirect_uri: "http://%REQ(:authority)%{OAUTH2_CALLBACK_PATH}"
                redirect_path_matcher: {{path: {{exact: "{OAUTH2_CALLBACK_PATH}"}}}}
                signout_path: {{path: {{exact: "/oauth2/signout"}}}}
                forward_bearer_token: true
                auth_scopes: ["identity"]
                credentials:
                  client_id: "{CLIENT_ID}"
                  token_secret: {{name: token}}
                  hmac_secret: {{name: hmac}}
"#
    )
}

/// Renders a cluster on the stand-in, with one request per upstream connection as in the
/// end-to-end tests, because the stand-in's tiny_http threads wait on idle keep-alive
/// connections.
fn cluster_yaml(name: &str, port: u16) -> String {
    format!(
        "name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        common_http_protocol_options: {{max_requests_per_connection: 1}}\n        explicit_http_config: {{http_protocol_options: {{}}}}\n    load_assignment:\n      cluster_name: {name}\n      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]"
    )
}

/// Quotes text as a YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
