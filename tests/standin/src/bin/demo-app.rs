//! Runs the demo upstream app for local development.
//!
//! Prints `demo-app listening on http://HOST:PORT` once it accepts
//! connections, then logs one line per request on stderr (method, path
//! without the query string, status) until it is stopped.

use std::io::Write;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use heroku_standin::DemoApp;

const USAGE: &str = "\
Usage: demo-app [--listen ADDR]

A tiny upstream app that shows the identity headers the login gate adds
(HTML), or echoes the request as JSON when Accept contains application/json.

Options:
  --listen ADDR  Address to listen on [default: 127.0.0.1:8080]
  -h, --help     Print this help
";

fn main() -> ExitCode {
    let mut listen = "127.0.0.1:8080".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--listen" => match args.next() {
                Some(value) => listen = value,
                None => {
                    eprintln!("demo-app: --listen needs a value");
                    return ExitCode::from(2);
                }
            },
            _ if arg.starts_with("--listen=") => listen = arg["--listen=".len()..].to_string(),
            _ => {
                eprintln!("demo-app: unknown option {arg:?}\nRun demo-app --help for the options.");
                return ExitCode::from(2);
            }
        }
    }

    let app = match DemoApp::start_on(&listen) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("demo-app: failed to start on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    app.set_request_logging(true);

    println!("demo-app listening on {}", app.base_url());
    if let Err(error) = std::io::stdout().flush() {
        eprintln!("demo-app: failed to flush stdout: {error}");
    }

    // The server runs on its own threads until the process is killed.
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}
