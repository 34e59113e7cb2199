//! Server A's web page in a real browser: headless Chromium driven through
//! chromedriver (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/setup-browser.sh`, which `.ci/run` calls). Where either is
//! missing, each test says so on stderr and passes without running.
//!
//! `scripts/screenshots.sh` runs the ignored `screenshots` test, which
//! writes the pictures in docs/.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use lab3_tests::*;
use serde_json::json;

/// chromedriver for one test, and a browser session in it; both end on drop.
struct Browser {
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
async fn browser(width: u32, height: u32) -> Option<Browser> {
    browser_with(width, height, &[]).await
}

/// Like [`browser`], with extra chromium flags.
async fn browser_with(width: u32, height: u32, flags: &[&str]) -> Option<Browser> {
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

fn which(name: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

impl Browser {
    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Waits up to `secs` for an element matching `css`.
    async fn find(&self, css: &str, secs: u64) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(Duration::from_secs(secs))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {secs} s: {e}"))
    }

    /// Waits up to `secs` for the page's script `js` (an expression) to be true.
    async fn until(&self, js: &str, secs: u64) {
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

    async fn eval(&self, js: &str) -> serde_json::Value {
        self.c().execute(js, vec![]).await.unwrap()
    }
}

/// Servers B and A over fresh folders, A with its page on port 0; `token`
/// for both when given.
fn web_pair(token: Option<&str>, setup: impl FnOnce(&std::path::Path, &std::path::Path)) -> Pair {
    let root = TempDir::new().unwrap();
    let [dir_a, state_a, dir_b, state_b] =
        ["directory_a", "state_a", "directory_b", "state_b"].map(|n| root.path().join(n));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    setup(&dir_a, &dir_b);
    let mut extra: Vec<String> = Vec::new();
    if let Some(t) = token {
        extra = vec!["--token".into(), t.into()];
    }
    let b = start_b(&dir_b, &state_b, "127.0.0.1:0", &extra);
    extra.extend(["--http".into(), "127.0.0.1:0".into()]);
    let a = start_a(&dir_a, &state_a, &b.addr, &extra);
    Pair::from_parts(root, [dir_a, state_a, dir_b, state_b], a, b)
}

fn run(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Runtime::new().unwrap().block_on(test)
}

#[test]
fn the_page_lists_both_sides_and_shows_a_file_made_at_b_without_reload() {
    run(async {
        let pair = web_pair(None, |a, b| {
            write_file(a, "from-a.txt", b"a", None);
            write_file(b, "from-b.txt", b"bb", None);
        });
        let Some(br) = browser(1280, 900).await else {
            return;
        };
        br.c().goto(&pair.a.web_url()).await.unwrap();
        br.find(r#"tr[data-name="from-a.txt"]"#, 10).await;
        br.find(r#"tr[data-name="from-b.txt"]"#, 10).await;
        br.until(
            r##"document.querySelector("#summary").textContent.includes("server B connected")"##,
            10,
        )
        .await;
        // A mark that a reload would wipe.
        br.eval("window.lab3NoReload = 1; return null;").await;
        write_file(&pair.dir_b, "made-at-b.txt", b"new", None);
        let started = std::time::Instant::now();
        br.find(r#"tr[data-name="made-at-b.txt"]"#, 2).await;
        eprintln!("made-at-b.txt appeared after {:?}", started.elapsed());
        assert_eq!(br.eval("return window.lab3NoReload;").await, json!(1));
        // The event reached the activity list too.
        br.until(
            r##"[...document.querySelectorAll("#activity li")].some(l => l.textContent.includes("made-at-b.txt"))"##,
            5,
        )
        .await;
        br.c().clone().close().await.unwrap();
    });
}

#[test]
fn lock_shows_the_queue_of_b_updates_and_unlock_applies_it() {
    run(async {
        let pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"v0", Some(1_700_000_000_000_000_000));
        });
        pair.wait(20, "initial sync", || pair.dir_b.join("f.txt").exists());
        let Some(br) = browser(1280, 900).await else {
            return;
        };
        br.c().goto(&pair.a.web_url()).await.unwrap();
        br.find(r#"tr[data-name="f.txt"] button.lock"#, 10)
            .await
            .click()
            .await
            .unwrap();
        br.find(r#"tr.locked[data-name="f.txt"]"#, 5).await;
        assert_eq!(pair.listing()["files"][0]["locked"], true);

        pair.put(&pair.dir_b, "f.txt", b"from b", 1_800_000_000_000_000_000);
        br.until(
            r#"document.querySelector('tr[data-name="f.txt"] .queued')?.textContent === "1 queued""#,
            10,
        )
        .await;
        let queue = br
            .find(r#"tr[data-name="f.txt"] ol.queue li"#, 5)
            .await
            .text()
            .await
            .unwrap();
        assert!(queue.contains("#1 write, 6 B"), "{queue}");
        assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"v0");

        br.find(r#"tr[data-name="f.txt"] button.unlock"#, 5)
            .await
            .click()
            .await
            .unwrap();
        br.find(r#"tr[data-name="f.txt"]:not(.locked) button.lock"#, 5)
            .await;
        br.until(
            r##"document.querySelector("#toast").textContent.includes("1 of 1 queued updates applied")"##,
            5,
        )
        .await;
        assert_eq!(read(&pair.dir_a.join("f.txt")).unwrap(), b"from b");
        assert_eq!(pair.listing()["files"][0]["locked"], false);
        br.c().clone().close().await.unwrap();
    });
}

#[test]
fn with_a_token_the_page_asks_for_it_once_and_keeps_a_strict_cookie() {
    run(async {
        let pair = web_pair(Some("s3cret"), |a, _| {
            write_file(a, "secret-plan.txt", b"x", None);
        });
        let Some(br) = browser(1280, 900).await else {
            return;
        };
        let url = pair.a.web_url();
        br.c().goto(&url).await.unwrap();
        br.find("#token", 10).await;
        let page = br.c().source().await.unwrap();
        assert!(!page.contains("secret-plan.txt"));
        let status = br
            .eval("return fetch('/api/listing').then(r => r.status);")
            .await;
        assert_eq!(status, json!(401));

        br.find("#token", 5).await.send_keys("wrong").await.unwrap();
        br.find("#sign-in", 5).await.click().await.unwrap();
        br.until(
            r##"document.querySelector("#login-message")?.textContent.includes("not the token")"##,
            10,
        )
        .await;

        br.find("#token", 5)
            .await
            .send_keys("s3cret")
            .await
            .unwrap();
        br.find("#sign-in", 5).await.click().await.unwrap();
        br.find(r#"tr[data-name="secret-plan.txt"]"#, 10).await;
        let cookies = br.c().get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|c| c.name().starts_with("lab3_session_"))
            .expect("a session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
        // The session lasts: a reload asks nothing.
        br.c().refresh().await.unwrap();
        br.find(r#"tr[data-name="secret-plan.txt"]"#, 10).await;
        br.c().clone().close().await.unwrap();
    });
}

#[test]
fn a_cross_site_post_is_refused() {
    run(async {
        let pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"x", None);
        });
        let Some(br) = browser(1280, 900).await else {
            return;
        };
        let url = pair.a.web_url();
        // Another web application on this machine (another port: another
        // origin, though the same site): its page posts a form of
        // JSON-looking text, and a fetch that needs no preflight.
        let evil = serve_once_and_again(format!(
            r#"<!doctype html><form id=f method=post enctype=text/plain action="{url}api/lock"><input name='{{"name":"f.txt","x":"' value='"}}'></form>"#
        ));
        br.c().goto(&evil).await.unwrap();
        br.eval(&format!(
            r#"fetch("{url}api/lock", {{method: "POST", mode: "no-cors", body: '{{"name":"f.txt"}}'}}); return null;"#
        ))
        .await;
        pair.wait(10, "the fetch to be refused", || {
            pair.a
                .logged(&["refused POST /api/lock: cross-site request"])
        });
        br.eval("document.getElementById('f').submit(); return null;")
            .await;
        pair.wait(10, "the form to be refused too", || {
            let log = pair.a.stderr.lock().unwrap();
            log.iter()
                .filter(|l| l.contains("refused POST /api/lock: cross-site request"))
                .count()
                >= 2
        });
        assert_eq!(pair.listing()["files"][0]["locked"], false);
        assert!(!pair.a.said(&["locked", "f.txt"]));
        // The page's own button, same origin, still works.
        br.c().goto(&url).await.unwrap();
        br.find(r#"tr[data-name="f.txt"] button.lock"#, 10)
            .await
            .click()
            .await
            .unwrap();
        br.find(r#"tr.locked[data-name="f.txt"]"#, 5).await;
        br.c().clone().close().await.unwrap();
    });
}

/// Serves `html` to every request on a port of its own, in the
/// background, for as long as the test runs; returns its URL.
fn serve_once_and_again(html: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    url
}

#[test]
fn the_page_says_when_server_b_and_then_server_a_are_away() {
    run(async {
        let mut pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"x", None);
        });
        let Some(br) = browser(1280, 900).await else {
            return;
        };
        br.c().goto(&pair.a.web_url()).await.unwrap();
        br.find(r#"tr[data-name="f.txt"]"#, 10).await;
        assert!(!br.find("#banner-b", 1).await.is_displayed().await.unwrap());
        pair.b.kill();
        br.until(r##"!document.querySelector("#banner-b").hidden"##, 15)
            .await;
        br.until(
            r##"document.querySelector("#summary").textContent.includes("server B unreachable")"##,
            5,
        )
        .await;
        assert!(!br.find("#banner-a", 1).await.is_displayed().await.unwrap());
        pair.a.kill();
        br.until(r##"!document.querySelector("#banner-a").hidden"##, 15)
            .await;
        let says = br.find("#banner-a", 1).await.text().await.unwrap();
        assert!(says.contains("Server A is not answering"), "{says}");
        br.c().clone().close().await.unwrap();
    });
}

#[test]
fn a_taken_web_address_is_said_and_server_a_runs_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let root = TempDir::new().unwrap();
    let a = start_a(
        &root.path().join("a"),
        &root.path().join("a-state"),
        &dead_addr(),
        &["--no-sync".into(), "--http".into(), addr.clone()],
    );
    assert!(
        wait_until(Duration::from_secs(10), || a.logged(&[
            "web page: cannot listen on",
            &addr,
            "running on without the page"
        ])),
        "{}",
        a.output()
    );
    assert!(!a.said(&["web page at"]), "{}", a.output());
    assert_ok(&lab3(&a.addr, &[]));
}

/// `scripts/screenshots.sh`: the page at a laptop's and a phone's width,
/// light and dark, with a locked file holding an update from B and a big
/// transfer in progress; written to docs/web-*.png.
#[test]
#[ignore = "writes docs/web-*.png; run by scripts/screenshots.sh"]
fn screenshots() {
    run(async {
        let pair = web_pair(None, |a, b| {
            write_file(a, "notes.txt", b"Meeting at ten.\n", None);
            write_file(a, "report.csv", b"q1,q2\n10,12\n", None);
            write_file(a, "photos/harbour at dusk.jpg", &[7; 180_000], None);
            write_file(b, "budget 2027.xlsx", &[1; 48_000], None);
            write_file(b, "drafts/letter to the council.docx", &[2; 22_000], None);
            write_file(b, "todo.txt", b"- water the plants\n", None);
        });
        pair.wait(20, "initial sync", || {
            pair.dir_a.join("todo.txt").exists() && pair.dir_b.join("notes.txt").exists()
        });
        assert_ok(&pair.lab3(&["lock", "report.csv"]));
        pair.put(
            &pair.dir_b,
            "report.csv",
            b"q1,q2,q3\n10,12,15\n",
            1_800_000_000_000_000_000,
        );
        pair.wait(20, "the update to be queued", || {
            pair.a.said(&["queued", "report.csv"])
        });
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        for (n, (name, width, height, flags)) in [
            ("web-desktop.png", 1280, 820, &[][..]),
            ("web-phone.png", 390, 844, &[]),
            (
                "web-desktop-dark.png",
                1280,
                820,
                &["--blink-settings=preferredColorScheme=0"],
            ),
            (
                "web-phone-dark.png",
                390,
                844,
                &["--blink-settings=preferredColorScheme=0"],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(br) = browser_with(width, height, flags).await else {
                return;
            };
            br.c().goto(&pair.a.web_url()).await.unwrap();
            br.find(r#"tr.locked[data-name="report.csv"]"#, 10).await;
            // A big file made at B: its transfer to A shows with a bar.
            let big = format!("holiday video {}.mp4", n + 1);
            let f = std::fs::File::create(pair.dir_b.join(&big)).unwrap();
            f.set_len(1 << 30).unwrap();
            drop(f);
            br.until(
                r##"[...document.querySelectorAll("#transfers progress")].some(p => p.value > 0)"##,
                30,
            )
            .await;
            let png = br.c().screenshot().await.unwrap();
            std::fs::write(docs.join(name), png).unwrap();
            eprintln!("wrote docs/{name}");
            pair.wait(120, "the transfer to end", || {
                pair.dir_a.join(&big).exists()
            });
            std::fs::remove_file(pair.dir_b.join(&big)).unwrap();
            br.c().clone().close().await.unwrap();
        }
    });
}
