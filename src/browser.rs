//! Server A's web page in a real browser, for the `tests/web_*.rs` that
//! click it: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/setup-browser.sh`,
//! which `.ci/run` calls). Where either is missing, [`browser`] says so on
//! stderr and gives `None`, and the test passes without running.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{dead_addr, text, wait_until};

/// chromedriver for one test, and a browser session in it; both end on drop.
pub struct Browser {
    driver: Child,
    client: Option<Client>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The chromium binary, if installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A headless browser `width` pixels wide, or `None` (said on stderr) when
/// chromium or chromedriver is not installed.
pub async fn browser(width: u32, height: u32) -> Option<Browser> {
    browser_with(width, height, &[]).await
}

/// A laptop-sized browser (1280 by 900) showing `url`, or `None` as
/// [`browser`] says.
pub async fn browser_at(url: &str) -> Option<Browser> {
    let b = browser(1280, 900).await?;
    b.c()
        .goto(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    Some(b)
}

/// Like [`browser`], with extra chromium flags.
pub async fn browser_with(width: u32, height: u32, flags: &[&str]) -> Option<Browser> {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium is not installed (scripts/setup-browser.sh installs it)");
        return None;
    };
    // A port picked free can be taken again before chromedriver binds it
    // (tests run in parallel): a session that cannot be made is tried
    // again on another port.
    for attempt in 1..=3 {
        let Some(b) = session(chromium, width, height, flags, attempt == 3).await else {
            continue;
        };
        return Some(b);
    }
    None
}

/// One chromedriver and a session with it; `None` on a connection error
/// unless `last`, which panics saying why.
async fn session(
    chromium: &str,
    width: u32,
    height: u32,
    flags: &[&str],
    last: bool,
) -> Option<Browser> {
    let port = dead_addr().rsplit(':').next().unwrap().to_string();
    let driver = match Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "skipped: cannot run chromedriver ({e}); scripts/setup-browser.sh installs it"
            );
            return None;
        }
    };
    let mut b = Browser {
        driver,
        client: None,
    };
    let addr = format!("127.0.0.1:{port}");
    assert!(
        wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(
            &addr
        )
        .is_ok()),
        "chromedriver did not listen on {addr}"
    );
    let binary = which(chromium);
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={width},{height}"),
        "--force-device-scale-factor=1".into(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    let mut options = json!({ "binary": binary, "args": args });
    if width < 500 {
        // A phone: desktop chromium has no window that narrow.
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1 }
        });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = match ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://{addr}"))
        .await
    {
        Ok(c) => c,
        Err(e) if !last => {
            eprintln!("no chromium session on {addr} ({e}); trying another port");
            return None;
        }
        Err(e) => panic!("a chromium session: {e:?}"),
    };
    b.client = Some(client);
    Some(b)
}

/// The full path of the program `name`, as the shell finds it.
fn which(name: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

impl Browser {
    /// The browser session.
    pub fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Waits up to `secs` for an element matching `css`.
    pub async fn find(&self, css: &str, secs: u64) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(Duration::from_secs(secs))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {secs} s: {e}"))
    }

    /// Waits up to `secs` for an element matching `css`, and clicks it.
    /// The page redraws its table as it polls the servers: an element found
    /// just before a redraw is gone by the click ("stale element
    /// reference"), and is then looked up again, within the same `secs`.
    pub async fn click(&self, css: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.find(css, left.as_secs().max(1)).await.click().await {
                Ok(_) => return,
                Err(e)
                    if e.is_stale_element_reference() && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
    }

    /// Waits up to `secs` for the page's script `js` (an expression) to be true.
    pub async fn until(&self, js: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self
                .c()
                .execute(&format!("return !!({js});"), vec![])
                .await
                .unwrap();
            if v == json!(true) {
                return;
            }
            if std::time::Instant::now() >= deadline {
                let url = self.c().current_url().await.map(|u| u.to_string());
                let page = self.c().source().await.unwrap_or_default();
                panic!("not true within {secs} s: {js}\nat {url:?}:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of the page's script `js` (statements ending in a `return`).
    pub async fn eval(&self, js: &str) -> serde_json::Value {
        self.c().execute(js, vec![]).await.unwrap()
    }
}

/// Runs a browser test's `async` body to its end.
pub fn block_on(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Runtime::new().unwrap().block_on(test)
}
