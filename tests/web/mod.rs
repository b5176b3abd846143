//! Harness for the browser tests: Debian's headless Chromium, driven over WebDriver through
//! chromedriver, one fresh browser profile per test.
//!
//! [`run`] starts chromedriver and a browser session, runs one scenario, and closes both.
//! When the scenario panics, it first saves a screenshot and the page source under
//! `target/test-artifacts/<test name>/` and prints where.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// Debian's paths; `CHROMEDRIVER` and `CHROMIUM` override them.
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// Upper bound of each wait for a page or a process. A wait ends as soon as its condition
/// holds, so this only matters when something is broken.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Viewport sizes in CSS pixels: a laptop screen and a phone in portrait.
pub const DESKTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scenario` in a new headless Chromium. On a panic it saves the current page under
/// `target/test-artifacts/<test>/`, closes the browser and re-raises the panic.
pub fn run(test: &str, scenario: impl AsyncFnOnce(&Web)) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime for the WebDriver client");
    let profile = repo_root().join("target/browser-profiles").join(format!("{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(&profile).expect("create a fresh Chromium profile folder");

    let driver = Chromedriver::start(&profile);
    let client = runtime.block_on(connect(&driver, &profile));
    let web = Web { client };

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(scenario(&web))));
    if outcome.is_err() {
        runtime.block_on(save_artifacts(&web, test));
    }
    // Ending the session makes chromedriver quit Chromium; dropping the driver then stops it.
    if let Err(error) = runtime.block_on(web.client.close()) {
        eprintln!("closing the WebDriver session failed: {error}");
    }
    drop(driver);
    let _ = fs::remove_dir_all(&profile);
    if let Err(panic) = outcome {
        panic::resume_unwind(panic);
    }
}

async fn connect(driver: &Chromedriver, profile: &Path) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_string());
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.join("chromium").display()),
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("capabilities are an object") };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|error| {
            panic!("starting Chromium through chromedriver failed: {error}\nchromedriver log: {}", driver.log.display())
        })
}

/// Saves a screenshot and the page source of the current window, and prints where.
async fn save_artifacts(web: &Web, test: &str) {
    let dir = repo_root().join("target/test-artifacts").join(test);
    let _ = fs::remove_dir_all(&dir);
    if let Err(error) = fs::create_dir_all(&dir) {
        eprintln!("creating {} failed: {error}", dir.display());
        return;
    }
    match web.client.screenshot().await {
        Ok(png) => {
            let _ = fs::write(dir.join("screenshot.png"), png);
        }
        Err(error) => eprintln!("taking the failure screenshot failed: {error}"),
    }
    match web.client.source().await {
        Ok(html) => {
            let _ = fs::write(dir.join("page.html"), html);
        }
        Err(error) => eprintln!("reading the page source failed: {error}"),
    }
    let url = web.client.current_url().await.map(|url| url.to_string()).unwrap_or_default();
    let _ = fs::write(dir.join("url.txt"), format!("{url}\n"));
    eprintln!("browser test {test} failed at {url}; screenshot and page source are in {}", dir.display());
}

/// A chromedriver process in its own process group. Chromium runs in that group too, so
/// stopping the group also stops a browser that the session did not close. Chromium's crash
/// handlers start sessions of their own and exit with the browser.
struct Chromedriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Chromedriver {
    fn start(dir: &Path) -> Chromedriver {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| DEFAULT_CHROMEDRIVER.to_string());
        assert!(
            Path::new(&binary).exists(),
            "chromedriver not found at {binary}. The browser tests need Debian's chromium and \
             chromium-driver packages: run `apt-get update && apt-get install -y chromium chromium-driver` \
             (as .ci/run does), or set CHROMEDRIVER and CHROMIUM to their paths."
        );
        let log = dir.join("chromedriver.log");
        let mut child = Command::new(&binary)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {binary} failed: {error}"));

        // chromedriver prints "... started successfully on port N." once it listens.
        let stdout = child.stdout.take().expect("chromedriver stdout is piped");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.split("on port ").nth(1) {
                    let port = port.trim_end_matches('.').trim().to_string();
                    if line.contains("started successfully") {
                        let _ = sender.send(port);
                    }
                }
            }
        });
        match receiver.recv_timeout(WAIT_LIMIT) {
            Ok(port) => Chromedriver { child, url: format!("http://127.0.0.1:{port}"), log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver did not report its port within {WAIT_LIMIT:?}; see {}", log.display());
            }
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(POLL_INTERVAL);
        }
        // Whatever ignored SIGTERM, chromedriver or a Chromium helper, ends here.
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// What `fetch` in the page returned.
#[derive(Debug)]
pub struct Fetched {
    pub status: u64,
    pub content_type: String,
    pub redirected: bool,
    pub body: String,
}

impl Fetched {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

/// One browser session. Every method panics with the page's URL when the browser fails.
pub struct Web {
    pub client: Client,
}

impl Web {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|error| panic!("opening {url} failed: {error}"));
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.map(|url| url.to_string()).unwrap_or_default()
    }

    pub async fn title(&self) -> String {
        self.client.title().await.unwrap_or_default()
    }

    /// Returns the text of the first `h1`, or an empty string while the page has none.
    pub async fn heading(&self) -> String {
        self.text_of("h1").await.unwrap_or_default()
    }

    /// Returns the visible text of the first element matching `css`.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    /// Polls until `condition` holds, for at most 60 s. The panic message names `what` and
    /// the page the browser shows.
    pub async fn wait_for(&self, what: &str, condition: impl AsyncFn(&Web) -> bool) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while !condition(self).await {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; the browser shows {} titled {:?} with heading {:?}",
                    self.url().await,
                    self.title().await,
                    self.heading().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the page's `h1` is `expected`.
    pub async fn wait_for_heading(&self, expected: &str) {
        self.wait_for(&format!("the heading {expected:?}"), async |web| web.heading().await == expected).await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(Locator::Css(css), css).await;
        element.click().await.unwrap_or_else(|error| panic!("clicking {css} failed: {error}"));
    }

    pub async fn click_link(&self, text: &str) {
        let element = self.find(Locator::LinkText(text), text).await;
        element.click().await.unwrap_or_else(|error| panic!("clicking the link {text:?} failed: {error}"));
    }

    /// Returns the `href` of the link with this text, as the page wrote it.
    pub async fn link_href(&self, text: &str) -> String {
        let element = self.find(Locator::LinkText(text), text).await;
        element.attr("href").await.ok().flatten().unwrap_or_default()
    }

    async fn find(&self, locator: Locator<'_>, label: &str) -> fantoccini::elements::Element {
        match self.client.find(locator).await {
            Ok(element) => element,
            Err(error) => panic!("{label:?} not found on {} ({:?}): {error}", self.url().await, self.title().await),
        }
    }

    /// Returns the names of the cookies the browser holds for the current page's origin,
    /// `HttpOnly` ones included.
    pub async fn cookie_names(&self) -> Vec<String> {
        let cookies = self.client.get_all_cookies().await.expect("read the browser's cookies");
        cookies.iter().map(|cookie| cookie.name().to_string()).collect()
    }

    /// Runs `fetch(path)` in the page with `Accept: application/json`, as a single-page
    /// app's XHR would, and returns the response.
    pub async fn fetch_json(&self, path: &str) -> Fetched {
        let script = r#"
            const [path, done] = arguments;
            fetch(path, { headers: { "Accept": "application/json" } })
              .then(async (response) => done({
                status: response.status,
                contentType: response.headers.get("content-type") || "",
                redirected: response.redirected,
                body: await response.text(),
              }))
              .catch((error) => done({ error: String(error) }));
        "#;
        let result = self
            .client
            .execute_async(script, vec![json!(path)])
            .await
            .unwrap_or_else(|error| panic!("running fetch({path:?}) in the page failed: {error}"));
        if let Some(error) = result.get("error") {
            panic!("fetch({path:?}) failed in the page: {error}");
        }
        Fetched {
            status: result["status"].as_u64().unwrap_or(0),
            content_type: result["contentType"].as_str().unwrap_or("").to_string(),
            redirected: result["redirected"].as_bool().unwrap_or(false),
            body: result["body"].as_str().unwrap_or("").to_string(),
        }
    }

    /// Opens a new browser window, switches to it and returns its handle.
    pub async fn open_window(&self) -> WindowHandle {
        let window = self.client.new_window(false).await.expect("open a new window");
        self.switch_to(&window.handle).await;
        window.handle
    }

    pub async fn current_window(&self) -> WindowHandle {
        self.client.window().await.expect("read the current window handle")
    }

    pub async fn switch_to(&self, window: &WindowHandle) {
        self.client.switch_to_window(window.clone()).await.expect("switch to a window");
    }

    /// Resizes the window so that the page's viewport is `width` x `height` CSS pixels.
    pub async fn set_viewport(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.expect("resize the window");
        // The window may have a frame; grow it by the difference to the viewport once.
        let inner = self.execute("return [window.innerWidth, window.innerHeight];").await;
        let inner_width = inner[0].as_u64().unwrap_or(u64::from(width)) as u32;
        let inner_height = inner[1].as_u64().unwrap_or(u64::from(height)) as u32;
        if (inner_width, inner_height) != (width, height) {
            let outer_width = width + width.saturating_sub(inner_width);
            let outer_height = height + height.saturating_sub(inner_height);
            self.client.set_window_size(outer_width, outer_height).await.expect("resize the window");
        }
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("running a script in the page failed: {error}"))
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("take a screenshot");
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create the screenshot folder");
        }
        fs::write(path, png).unwrap_or_else(|error| panic!("writing {} failed: {error}", path.display()));
    }
}
