//! Who may use Server A's web page: the token login and its cookie, and
//! cross-site requests refused (in a real browser, skipped saying why
//! without chromium); and a web address already taken, which Server A
//! says and runs on without its page.

use std::time::Duration;

use lab3_tests::*;
use serde_json::json;

#[test]
fn with_a_token_the_page_asks_for_it_once_and_keeps_a_strict_cookie() {
    block_on(async {
        let pair = web_pair(Some("s3cret"), |a, _| {
            write_file(a, "secret-plan.txt", b"x", None);
        });
        let url = pair.a.web_url();
        let Some(br) = browser_at(&url).await else {
            return;
        };
        br.find("#token", 10).await;
        let page = br.c().source().await.unwrap();
        assert!(!page.contains("secret-plan.txt"));
        let status = br
            .eval("return fetch('/api/listing').then(r => r.status);")
            .await;
        assert_eq!(status, json!(401));

        br.find("#token", 5).await.send_keys("wrong").await.unwrap();
        br.click("#sign-in", 5).await;
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
        br.click("#sign-in", 5).await;
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
    block_on(async {
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
        br.click(r#"tr[data-name="f.txt"] button.lock"#, 10).await;
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
