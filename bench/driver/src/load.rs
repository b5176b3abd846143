//! One h2load run against Envoy, and the numbers in its summary.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The HTTP version h2load speaks to Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (h2load's default for `http://`).
    Http2,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }
}

/// The shape of one load: how many requests, over how many connections and streams.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub requests: u64,
    /// HTTP/1.1 connections; each carries one request at a time.
    pub http1_connections: u32,
    /// HTTP/2 connections, each with `http2_streams` concurrent streams.
    pub http2_connections: u32,
    pub http2_streams: u32,
    /// A run that takes longer is stopped and counts as failed.
    pub timeout: Duration,
}

/// The result of one h2load run.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub requests_per_second: f64,
}

/// Runs h2load against `url` with `cookie_header`, pinned to `cpu` when given. Returns an
/// error unless every response had a 2xx status.
pub fn run(url: &str, cookie_header: &str, protocol: Protocol, shape: &Shape, cpu: Option<usize>) -> Result<Measured, String> {
    let mut command = match cpu {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", &cpu.to_string(), "h2load"]);
            taskset
        }
        None => Command::new("h2load"),
    };
    command.args(["-n", &shape.requests.to_string(), "-t", "1"]);
    match protocol {
        Protocol::Http1 => {
            command.args(["--h1", "-c", &shape.http1_connections.to_string()]);
        }
        Protocol::Http2 => {
            command.args(["-c", &shape.http2_connections.to_string(), "-m", &shape.http2_streams.to_string()]);
        }
    }
    command
        .args(["-H", &format!("cookie: {cookie_header}")])
        .args(["-H", "accept: text/html"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let child = command.spawn().map_err(|error| format!("cannot start h2load: {error}"))?;
    let output = wait_with_timeout(child, shape.timeout)?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("h2load exited with {}:\n{text}{}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    parse_summary(&text, shape.requests)
}

fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Result<std::process::Output, String> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|error| format!("cannot read h2load's output: {error}")),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("h2load did not finish within {timeout:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("cannot wait for h2load: {error}")),
        }
    }
}

/// Reads h2load's summary lines:
///
/// ```text
/// finished in 2.01s, 24875.12 req/s, 2.11MB/s
/// requests: 50000 total, 50000 started, 50000 done, 50000 succeeded, 0 failed, 0 errored, 0 timeout
/// status codes: 50000 2xx, 0 3xx, 0 4xx, 0 5xx
/// ```
///
/// Returns an error when any request failed or had a status other than 2xx.
fn parse_summary(text: &str, expected: u64) -> Result<Measured, String> {
    let line = |prefix: &str| {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .ok_or_else(|| format!("h2load printed no {prefix:?} line:\n{text}"))
    };
    let finished = line("finished in")?;
    let requests_per_second = number_before(finished, " req/s")
        .ok_or_else(|| format!("cannot read req/s from {finished:?}"))?;
    let statuses = line("status codes:")?;
    let count = |label: &str| number_before(statuses, label).map(|value| value as u64);
    let (Some(ok), Some(redirect), Some(client), Some(server)) =
        (count(" 2xx"), count(" 3xx"), count(" 4xx"), count(" 5xx"))
    else {
        return Err(format!("cannot read the status counts from {statuses:?}"));
    };
    if ok != expected {
        return Err(format!(
            "{} of {expected} requests were not answered 2xx ({redirect} 3xx, {client} 4xx, {server} 5xx, \
             the rest failed); a benchmark of redirects or errors measures the wrong path:\n{text}",
            expected.saturating_sub(ok)
        ));
    }
    Ok(Measured { requests_per_second })
}

/// Returns the number just before `label` in `line`, as in `24875.12 req/s`.
fn number_before(line: &str, label: &str) -> Option<f64> {
    let end = line.find(label)?;
    let start = line[..end].rfind([' ', ',']).map_or(0, |at| at + 1);
    line[start..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "finished in 2.01s, 24875.12 req/s, 2.11MB/s\n\
        requests: 50000 total, 50000 started, 50000 done, 50000 succeeded, 0 failed, 0 errored, 0 timeout\n\
        status codes: 50000 2xx, 0 3xx, 0 4xx, 0 5xx\n";

    #[test]
    fn summary_is_read() {
        let measured = parse_summary(SUMMARY, 50000).unwrap();
        assert_eq!(measured.requests_per_second, 24875.12);
    }

    #[test]
    fn redirects_fail_the_run() {
        let redirected = SUMMARY.replace("50000 2xx, 0 3xx", "49990 2xx, 10 3xx");
        let error = parse_summary(&redirected, 50000).unwrap_err();
        assert!(error.contains("10 of 50000"), "{error}");
    }
}
