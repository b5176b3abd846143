//! `make bench`: measures what heroku-bouncer costs Envoy per authenticated request.
//!
//! Envoy 1.40 runs with one worker and a `direct_response` route, so the upstream costs
//! nothing, in five configurations: no filter, a trivial proxy-wasm filter (the floor), the
//! floor making heroku-bouncer's four header writes, heroku-bouncer with a valid session, and
//! Envoy's native oauth2 filter with a valid session. Each round starts every configuration in
//! turn and keeps them running. Then one or more passes load each one with h2load over HTTP/1.1 and HTTP/2, in an order that rotates from pass to
//! pass. Short loads that alternate between the configurations share whatever else the machine
//! is doing at the time. The report gives medians over passes and the throughput ratios of
//! heroku-bouncer over the floor and over oauth2 within each pass.
//!
//! Sessions come from real logins through Envoy against the Heroku stand-in. Any response
//! other than 2xx under load fails the run, because it would measure a redirect instead of
//! the authenticated path.

mod envoy;
mod load;
mod login;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use heroku_standin::{Config as StandinConfig, Standin};

use envoy::{Artifacts, Envoy, Filter, OAUTH2_CALLBACK_PATH};
use load::{Protocol, Shape};

const BOUNCER_CALLBACK_PATH: &str = "/auth/heroku/callback/";

/// Settings from the command line.
struct Options {
    /// Rounds: each starts every configuration anew.
    rounds: usize,
    /// Passes in each round: each loads every configuration once with each protocol.
    passes: usize,
    requests: u64,
    logins: usize,
    /// With `--compare PATH`: another heroku-bouncer build, loaded as a fifth configuration.
    compare: Option<PathBuf>,
    /// With `--configs a,b`: only these configurations, for a quicker comparison.
    only: Option<Vec<Filter>>,
    /// With `--serve NAME`: start only that configuration, log in, print how to load it,
    /// and keep it running for this many seconds, for profiling by hand.
    serve: Option<(Filter, u64)>,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut options = Options { rounds: 16, passes: 1, requests: 20_000, logins: 40, compare: None, only: None, serve: None };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--rounds" => options.rounds = number(&mut args, "--rounds")?.max(1) as usize,
                "--passes" => options.passes = number(&mut args, "--passes")?.max(1) as usize,
                "--requests" => options.requests = number(&mut args, "--requests")?.max(1000),
                "--logins" => options.logins = number(&mut args, "--logins")? as usize,
                "--compare" => {
                    let path = args.next().ok_or("--compare needs the path of a heroku_bouncer.wasm")?;
                    options.compare = Some(PathBuf::from(path));
                }
                "--configs" => {
                    let list = args.next().unwrap_or_default();
                    let filters = list.split(',').map(filter_named).collect::<Result<Vec<_>, _>>()?;
                    options.only = Some(filters);
                }
                "--serve" => {
                    let filter = filter_named(&args.next().unwrap_or_default())?;
                    options.serve = Some((filter, number(&mut args, "--serve")?.min(3600)));
                }
                "--help" | "-h" => {
                    println!("bouncer-bench [--rounds N (16)] [--passes N per round (1)] [--requests N per load (20000)] [--logins N (40; 0 skips)]");
                    println!("              [--compare OTHER.wasm]   (another build as a fifth configuration)");
                    println!("              [--configs bouncer,compare]   (only these configurations; the report skips missing ratios)");
                    println!("bouncer-bench --serve none|floor|floor-writes|bouncer|oauth2 SECONDS   (one configuration, for profiling)");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other:?}; see --help")),
            }
        }
        Ok(options)
    }
}

fn filter_named(name: &str) -> Result<Filter, String> {
    Filter::ALL
        .into_iter()
        .chain([Filter::Compare])
        .find(|filter| filter.slug() == name)
        .ok_or_else(|| format!("no configuration named {name:?}; use none, floor, floor-writes, bouncer, oauth2 or compare"))
}

fn number(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<u64, String> {
    let text = args.next().ok_or_else(|| format!("{flag} needs a number"))?;
    text.parse().map_err(|_| format!("{flag} needs a whole number, not {text:?}"))
}

/// CPU placement: Envoy on one core, h2load on the other.
struct Pinning {
    envoy: Option<usize>,
    load: Option<usize>,
}

impl Pinning {
    /// Pins Envoy to CPU 0 and h2load to CPU 1 when the machine has two CPUs and `taskset`
    /// works. Otherwise both run unpinned, and a note is printed.
    fn detect() -> Pinning {
        let cpus = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
        let taskset_works = Command::new("taskset")
            .args(["-c", "1", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if cpus >= 2 && taskset_works {
            Pinning { envoy: Some(0), load: Some(1) }
        } else {
            println!("note: not pinned (CPUs: {cpus}, taskset usable: {taskset_works}); Envoy and h2load share cores");
            Pinning { envoy: None, load: None }
        }
    }
}

/// Requests per second by configuration and protocol, one value per pass.
type Throughput = BTreeMap<(usize, usize), Vec<f64>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nbench FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let options = Options::parse()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let artifacts = Artifacts {
        envoy: std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| root.join(".venv/bin/envoy")),
        bouncer_wasm: root.join("target/wasm32-wasip1/release/heroku_bouncer.wasm"),
        floor_wasm: root.join("target/wasm32-wasip1/release/bench_floor.wasm"),
        compare_wasm: options.compare.clone(),
        work_dir: root.join("target/bench"),
    };
    let required = [Some(&artifacts.envoy), Some(&artifacts.bouncer_wasm), Some(&artifacts.floor_wasm), artifacts.compare_wasm.as_ref()];
    for path in required.into_iter().flatten() {
        if !path.exists() {
            return Err(format!("{} is missing; `make bench` builds and installs it", path.display()));
        }
    }
    let pinning = Pinning::detect();
    let shape = Shape {
        requests: options.requests,
        http1_connections: 16,
        http2_connections: 4,
        http2_streams: 16,
        timeout: Duration::from_secs(180),
    };
    let warmup = Shape { requests: (options.requests / 4).max(5000), ..shape };

    let standin = Standin::start(StandinConfig::default()).map_err(|error| format!("cannot start the stand-in: {error}"))?;
    let standin_port = standin.addr().port();
    println!(
        "Envoy {}, one worker; h2load: {} requests per load, HTTP/1.1 over {} connections, HTTP/2 over {} connections x {} streams; {} rounds of {} passes",
        envoy_version(&artifacts),
        shape.requests,
        shape.http1_connections,
        shape.http2_connections,
        shape.http2_streams,
        options.rounds,
        options.passes
    );

    if let Some((filter, seconds)) = options.serve {
        return serve(&artifacts, &standin, filter, seconds, &pinning);
    }

    // The configurations without a login filter get the same `cookie` header as
    // heroku-bouncer, so all parse the same bytes.
    let reference_cookie = {
        let envoy = Envoy::start(&artifacts, Filter::Bouncer, standin_port, pinning.envoy, "prepare")?;
        standin.set_redirect_uri(&format!("{}{BOUNCER_CALLBACK_PATH}", envoy.base_url()));
        login::log_in(&envoy.base_url(), BOUNCER_CALLBACK_PATH)?.cookie_header
    };

    let mut filters = Filter::ALL.to_vec();
    if artifacts.compare_wasm.is_some() {
        filters.push(Filter::Compare);
    }
    if let Some(only) = &options.only {
        filters.retain(|filter| only.contains(filter));
    }
    let mut throughput = Throughput::new();
    let mut startup: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut pass = 0;
    for round in 0..options.rounds {
        // Start every configuration in turn, then keep them all running for the round, so
        // that short loads can alternate between them.
        let mut running = Vec::with_capacity(filters.len());
        for (filter_index, filter) in rotated(&filters, round) {
            let envoy = Envoy::start(&artifacts, filter, standin_port, pinning.envoy, &format!("round{round}-{}", filter.slug()))?;
            startup.entry(filter_index).or_default().push(millis(envoy.startup));
            let cookie_header = session_cookie(&standin, &envoy, filter, &reference_cookie)?;
            for protocol in Protocol::ALL {
                load::run(&format!("{}/", envoy.base_url()), &cookie_header, protocol, &warmup, pinning.load)
                    .map_err(|error| format!("{} warm-up over {}: {error}", filter.name(), protocol.name()))?;
            }
            running.push((filter_index, filter, envoy, cookie_header));
        }
        running.sort_by_key(|(filter_index, ..)| *filter_index);

        for _ in 0..options.passes {
            pass += 1;
            for (filter_index, filter) in rotated(&filters, pass) {
                let (_, _, envoy, cookie_header) = &running[filter_index];
                let url = format!("{}/", envoy.base_url());
                let mut line = format!("round {}/{} pass {pass:>2}  {:<26}", round + 1, options.rounds, filter.name());
                for (protocol_index, protocol) in Protocol::ALL.into_iter().enumerate() {
                    let measured = load::run(&url, cookie_header, protocol, &shape, pinning.load)
                        .map_err(|error| format!("{} over {}: {error}", filter.name(), protocol.name()))?;
                    throughput.entry((filter_index, protocol_index)).or_default().push(measured.requests_per_second);
                    line += &format!(" {}: {:>6.0} req/s", protocol.name(), measured.requests_per_second);
                }
                println!("{line}");
            }
        }
    }

    let login_timing = match options.logins {
        0 => None,
        count => Some(time_logins(&artifacts, &standin, &pinning, count)?),
    };
    report(&artifacts, &filters, &throughput, &startup, login_timing.as_ref(), pass);
    Ok(())
}

/// Returns the configurations with their indexes, in an order that starts at a different
/// one for each `turn`, so that none is always measured first or last.
fn rotated(filters: &[Filter], turn: usize) -> Vec<(usize, Filter)> {
    let mut order: Vec<(usize, Filter)> = filters.iter().copied().enumerate().collect();
    order.rotate_left(turn % filters.len());
    order
}

/// Starts one configuration with a session and keeps it running for `seconds`.
fn serve(artifacts: &Artifacts, standin: &Standin, filter: Filter, seconds: u64, pinning: &Pinning) -> Result<(), String> {
    let port = standin.addr().port();
    let reference = {
        let envoy = Envoy::start(artifacts, Filter::Bouncer, port, pinning.envoy, "prepare")?;
        standin.set_redirect_uri(&format!("{}{BOUNCER_CALLBACK_PATH}", envoy.base_url()));
        login::log_in(&envoy.base_url(), BOUNCER_CALLBACK_PATH)?.cookie_header
    };
    let envoy = Envoy::start(artifacts, filter, port, pinning.envoy, &format!("serve-{}", filter.slug()))?;
    let cookie_header = session_cookie(standin, &envoy, filter, &reference)?;
    println!("{} serves {}/ for {seconds} s (Envoy pid {}). Load it with:", filter.name(), envoy.base_url(), envoy.pid());
    println!("  taskset -c 1 h2load -n 100000 -c 4 -m 16 -t 1 -H 'cookie: {cookie_header}' {}/", envoy.base_url());
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

/// Returns the `cookie` header that the load sends to `filter`: a fresh login for the two
/// login filters (oauth2's HMAC covers the host and port, which change with every start).
fn session_cookie(standin: &Standin, envoy: &Envoy, filter: Filter, reference: &str) -> Result<String, String> {
    let callback_path = match filter {
        Filter::None | Filter::Floor | Filter::FloorWrites => return Ok(reference.to_string()),
        Filter::Bouncer | Filter::Compare => BOUNCER_CALLBACK_PATH,
        Filter::Oauth2 => OAUTH2_CALLBACK_PATH,
    };
    standin.set_redirect_uri(&format!("{}{callback_path}", envoy.base_url()));
    let login = login::log_in(&envoy.base_url(), callback_path)
        .map_err(|error| format!("{} login failed: {error}\nEnvoy log:\n{}", filter.name(), envoy.log_text()))?;
    Ok(login.cookie_header)
}

/// Medians of a login's parts, in milliseconds.
struct LoginTiming {
    logins: usize,
    callback_ms: f64,
    token_ms: f64,
    account_ms: f64,
}

/// Logs in `count` times through heroku-bouncer and times the callback request (the token
/// exchange, the account lookup and the filter's work until the session cookie), then times
/// the same two stand-in requests made directly.
fn time_logins(artifacts: &Artifacts, standin: &Standin, pinning: &Pinning, count: usize) -> Result<LoginTiming, String> {
    let envoy = Envoy::start(artifacts, Filter::Bouncer, standin.addr().port(), pinning.envoy, "logins")?;
    standin.set_redirect_uri(&format!("{}{BOUNCER_CALLBACK_PATH}", envoy.base_url()));
    // The first logins run while V8 still compiles the filter's code.
    for _ in 0..5 {
        login::log_in(&envoy.base_url(), BOUNCER_CALLBACK_PATH)?;
    }
    let mut callbacks = Vec::with_capacity(count);
    for _ in 0..count {
        callbacks.push(millis(login::log_in(&envoy.base_url(), BOUNCER_CALLBACK_PATH)?.callback));
    }
    let mut tokens = Vec::with_capacity(count);
    let mut accounts = Vec::with_capacity(count);
    for _ in 0..count {
        let (token, account) = login::time_standin_exchange(standin)?;
        tokens.push(millis(token));
        accounts.push(millis(account));
    }
    Ok(LoginTiming { logins: count, callback_ms: median(&callbacks), token_ms: median(&tokens), account_ms: median(&accounts) })
}

fn report(
    artifacts: &Artifacts,
    filters: &[Filter],
    throughput: &Throughput,
    startup: &BTreeMap<usize, Vec<f64>>,
    login: Option<&LoginTiming>,
    passes: usize,
) {
    println!("\nMedians over {passes} passes (us/req = 1e6 / req/s: the worker's time per request; start: median over rounds):\n");
    println!("{:<26} {:>12} {:>9} {:>12} {:>9} {:>10}", "configuration", "HTTP/1.1 rps", "us/req", "HTTP/2 rps", "us/req", "start ms");
    for (filter_index, filter) in filters.iter().enumerate() {
        let mut line = format!("{:<26}", filter.name());
        for protocol_index in 0..Protocol::ALL.len() {
            let rps = median(&throughput[&(filter_index, protocol_index)]);
            line += &format!(" {:>12.0} {:>9.2}", rps, 1e6 / rps);
        }
        line += &format!(" {:>10.1}", median(&startup[&filter_index]));
        println!("{line}");
    }

    println!("\nThroughput ratios (median of the per-pass ratios; target >= 0.95):");
    let rps = |filter: Filter, protocol_index: usize| {
        let filter_index = filters.iter().position(|candidate| *candidate == filter)?;
        throughput.get(&(filter_index, protocol_index))
    };
    // Only the first two lines have a target. The last two show how much of the gap to the
    // floor the four header writes alone take, which no filter making them can avoid.
    let comparisons = [
        ("heroku-bouncer / floor              ", Filter::Bouncer, Filter::Floor, true),
        ("heroku-bouncer / oauth2             ", Filter::Bouncer, Filter::Oauth2, true),
        ("heroku-bouncer / compare            ", Filter::Bouncer, Filter::Compare, false),
        ("floor with 4 writes / floor         ", Filter::FloorWrites, Filter::Floor, false),
        ("heroku-bouncer / floor with 4 writes", Filter::Bouncer, Filter::FloorWrites, false),
    ];
    for (label, measured, over, has_target) in comparisons {
        let mut line = format!("  {label}");
        for (protocol_index, protocol) in Protocol::ALL.iter().enumerate() {
            let (Some(ours), Some(theirs)) = (rps(measured, protocol_index), rps(over, protocol_index)) else {
                continue;
            };
            let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(ours, theirs)| ours / theirs).collect();
            let ratio = median(&ratios);
            line += &format!("   {}: {ratio:.3}", protocol.name());
            if has_target {
                line += if ratio >= 0.95 { " (met)" } else { " (NOT met)" };
            }
        }
        if line.len() > label.len() + 2 {
            println!("{line}");
        }
    }

    let size = |path: &PathBuf| std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0);
    let bouncer_size = size(&artifacts.bouncer_wasm);
    println!(
        "\nModule size: heroku_bouncer.wasm {bouncer_size} bytes ({:.1} KiB; target <= 300 KB: {}); bench_floor.wasm {} bytes",
        bouncer_size as f64 / 1024.0,
        if bouncer_size <= 300_000 { "met" } else { "NOT met" },
        size(&artifacts.floor_wasm)
    );

    let start = |filter: Filter| {
        let filter_index = filters.iter().position(|candidate| *candidate == filter)?;
        startup.get(&filter_index).map(|times| median(times))
    };
    if let (Some(none), Some(bouncer), Some(floor)) = (start(Filter::None), start(Filter::Bouncer), start(Filter::Floor)) {
        println!(
            "Plugin load time (start to first response, minus no filter's): heroku-bouncer {:.1} ms, floor {:.1} ms",
            bouncer - none,
            floor - none
        );
    }

    let Some(login) = login else { return };
    let standin_ms = login.token_ms + login.account_ms;
    println!(
        "Login callback (median of {}): {:.2} ms in all; the stand-in's token {:.2} ms + account {:.2} ms; \
         filter and Envoy's share {:.2} ms",
        login.logins,
        login.callback_ms,
        login.token_ms,
        login.account_ms,
        login.callback_ms - standin_ms
    );
}

fn envoy_version(artifacts: &Artifacts) -> String {
    let output = Command::new(&artifacts.envoy).arg("--version").output();
    let text = output.map(|output| String::from_utf8_lossy(&output.stdout).into_owned()).unwrap_or_default();
    // `envoy --version` prints `<path> version: <commit>/<version>/Clean/RELEASE/BoringSSL`.
    let build = text.split("version: ").nth(1).unwrap_or_default();
    build.split('/').nth(1).unwrap_or("(unknown version)").to_string()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Returns the median; the mean of the middle two for an even count, and NaN for none.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        length if length % 2 == 1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}
