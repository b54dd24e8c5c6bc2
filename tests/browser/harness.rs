//! Real browsers for the tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver over plain HTTP), one browser process and profile
//! per person, so two people share nothing.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::helpers::HANG;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Desktop and phone viewports.
pub const DESKTOP: (u32, u32) = (1100, 760);
pub const PHONE: (u32, u32) = (390, 844);

/// WebDriver key codes.
pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const RELEASE_KEYS: &str = "\u{E000}";

/// A running chromedriver, or `None` (with a loud line) where Chromium is
/// not installed and the browser is not required.
pub fn driver() -> Option<Driver> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !std::path::Path::new(path).exists())
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} missing: install Debian's chromium and chromium-driver packages",
            missing.join(" and ")
        );
        if std::env::var("ROOMCAST_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("ROOMCAST_REQUIRE_BROWSER=1 but {why}");
        }
        eprintln!("\n*** SKIPPED: browser test not run: {why} ***\n");
        return None;
    }
    Some(Driver::start())
}

pub struct Driver {
    process: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Its own process group, which the browsers it starts join, so that
        // dropping the driver ends every browser too, even if a test failed
        // before closing its session.
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < HANG, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            process,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new person: their own browser, profile and window size; `script`
    /// false turns JavaScript off.
    pub async fn person(&self, size: (u32, u32), script: bool) -> Person {
        self.person_with(size, script, &[]).await
    }

    /// [`Driver::person`] with more Chromium flags.
    pub async fn person_with(&self, size: (u32, u32), script: bool, flags: &[&str]) -> Person {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            format!("--window-size={},{}", size.0, size.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !script {
            args.push("--blink-settings=scriptEnabled=false".into());
        }
        args.extend(flags.iter().map(|flag| flag.to_string()));
        let capabilities = json!({
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("start a browser session");
        client.set_window_size(size.0, size.1).await.unwrap();
        Person {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.process.wait();
    }
}

pub struct Person {
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Person {
    /// Makes the tab `handle` the one commands go to.
    pub async fn switch_to(&self, handle: &fantoccini::wd::WindowHandle) {
        self.client
            .switch_to_window(handle.clone())
            .await
            .expect("switch to a tab");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Fills in the home form and waits for the room page; returns the code.
    pub async fn enter(&self, base: &str, name: &str, code: Option<&str>) -> String {
        self.goto(&format!("{base}/")).await;
        // The form offers the name used last; type over it.
        let field = self.client.find(Locator::Css("#name")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(name).await.unwrap();
        let button = match code {
            Some(code) => {
                let field = self.client.find(Locator::Css("#code")).await.unwrap();
                field.send_keys(code).await.unwrap();
                "button[value=join]"
            }
            None => "button[value=create]",
        };
        self.client
            .find(Locator::Css(button))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let url = self
            .wait_for("location.pathname.startsWith('/rooms/') && location.pathname")
            .await;
        url.as_str()
            .unwrap()
            .trim_start_matches("/rooms/")
            .to_string()
    }

    /// Types into the message box (Enter sends).
    pub async fn type_text(&self, keys: &str) {
        let field = self.client.find(Locator::Css("#text")).await.unwrap();
        field.send_keys(keys).await.unwrap();
    }

    pub async fn say(&self, text: &str) {
        self.type_text(&format!("{text}{ENTER}")).await;
    }

    pub async fn eval(&self, expression: &str) -> Value {
        self.client
            .execute(&format!("return ({expression});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// Waits until `expression` is truthy in the page; returns its value.
    pub async fn wait_for(&self, expression: &str) -> Value {
        let deadline = std::time::Instant::now() + HANG;
        loop {
            if let Ok(value) = self
                .client
                .execute(&format!("return ({expression});"), vec![])
                .await
            {
                let truthy = !matches!(value, Value::Null | Value::Bool(false))
                    && value != json!("")
                    && value != json!(0);
                if truthy {
                    return value;
                }
            }
            if std::time::Instant::now() >= deadline {
                // What the page says of itself, for the failure's reader.
                let said = self
                    .client
                    .execute(
                        "return [document.querySelector('#status-text')?.textContent, \
                         document.querySelector('#send-error')?.textContent, \
                         document.querySelector('#log')?.innerText.slice(-600)];",
                        vec![],
                    )
                    .await;
                panic!("never true: {expression}\n(the page: {said:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page says its stream is live.
    pub async fn wait_until_live(&self) {
        self.wait_for("document.querySelector('#status').dataset.state === 'live'")
            .await;
    }

    /// Waits until the message log shows `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let literal = serde_json::to_string(text).unwrap();
        self.wait_for(&format!(
            "document.querySelector('#log').innerText.includes({literal})"
        ))
        .await;
    }

    /// The texts of the messages on the page, in order.
    pub async fn message_texts(&self) -> Vec<String> {
        let texts = self
            .eval("[...document.querySelectorAll('#log li.message .text')].map(e => e.textContent)")
            .await;
        serde_json::from_value(texts).unwrap()
    }

    pub async fn text_of(&self, selector: &str) -> String {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Hides the tab (or shows it again) as the browser would tell the
    /// page: headless Chromium keeps every tab visible, so
    /// `document.hidden` and its event are set by hand.
    pub async fn hide(&self, hidden: bool) {
        self.eval(&format!(
            "(Object.defineProperty(document, 'hidden', {{configurable: true, get: () => {hidden}}}), \
             document.dispatchEvent(new Event('visibilitychange')), true)"
        ))
        .await;
    }

    /// Saves a screenshot to target/screenshots/NAME.png.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs a Chrome DevTools Protocol command in this browser, through
    /// chromedriver's `goog/cdp/execute`.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let command = Cdp {
            cmd: cmd.to_string(),
            params,
        };
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// Lets pages of `origin` show notifications, as the browser's own
    /// permission prompt would once allowed (`Browser.grantPermissions`).
    pub async fn allow_notifications(&self, origin: &str) {
        let params = json!({ "permissions": ["notifications"], "origin": origin });
        self.cdp("Browser.grantPermissions", params).await;
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// A DevTools command for chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}
