//! Server A's web page in a real browser (headless Chromium through
//! chromedriver, see the harness's `browser`): both sides listed, a file
//! made at B shown without a reload, lock / queue / unlock, a version
//! restored with its button, the banners when a server goes away, and
//! `/api/status`. Where chromium is missing, each test says so on stderr
//! and passes without running. Who may use the page: `tests/web_access.rs`.

use lab3_tests::*;
use serde_json::json;

#[test]
fn the_page_lists_both_sides_and_shows_a_file_made_at_b_without_reload() {
    block_on(async {
        let pair = web_pair(None, |a, b| {
            write_file(a, "from-a.txt", b"a", None);
            write_file(b, "from-b.txt", b"bb", None);
        });
        let Some(br) = browser_at(&pair.a.web_url()).await else {
            return;
        };
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
    block_on(async {
        let pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"v0", Some(1_700_000_000_000_000_000));
        });
        pair.wait(20, "initial sync", || pair.dir_b.join("f.txt").exists());
        let Some(br) = browser_at(&pair.a.web_url()).await else {
            return;
        };
        br.click(r#"tr[data-name="f.txt"] button.lock"#, 10).await;
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

        br.click(r#"tr[data-name="f.txt"] button.unlock"#, 5).await;
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

/// A file's Versions button shows its kept versions; Restore puts one
/// back, which syncs to B; the view then lists what the restore replaced.
#[test]
fn the_versions_view_restores_a_kept_version_with_one_click() {
    block_on(async {
        let pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"old", None);
        });
        pair.wait(20, "initial sync", || {
            read(&pair.dir_b.join("f.txt")).as_deref() == Some(b"old")
        });
        pair.wait_linked(20);
        write_file(&pair.dir_b, "f.txt", b"new from b", None);
        pair.wait(10, "B's update at A", || {
            read(&pair.dir_a.join("f.txt")).as_deref() == Some(b"new from b")
        });
        let Some(br) = browser_at(&pair.a.web_url()).await else {
            return;
        };
        br.click(r#"tr[data-name="f.txt"] button.versions"#, 10)
            .await;
        br.until(
            r##"document.querySelector("#versions-title").textContent === "Versions of f.txt""##,
            5,
        )
        .await;
        let row = br.find(r#"#versions tr[data-id^="a-"]"#, 10).await;
        let text = row.text().await.unwrap();
        assert!(text.contains("replaced") && text.contains("3 B"), "{text}");
        br.click(r#"#versions tr[data-id^="a-"] button.restore"#, 5)
            .await;
        br.until(
            r##"document.querySelector("#toast").textContent.includes("restored f.txt at server A")"##,
            10,
        )
        .await;
        pair.wait(10, "the restore on both sides", || {
            read(&pair.dir_a.join("f.txt")).as_deref() == Some(b"old")
                && read(&pair.dir_b.join("f.txt")).as_deref() == Some(b"old")
        });
        // What the restore replaced is a version too, listed without a reload.
        br.until(
            r##"document.querySelectorAll('#versions tr[data-path="f.txt"]').length >= 2"##,
            10,
        )
        .await;
        br.c().clone().close().await.unwrap();
    });
}

#[test]
fn the_page_says_when_server_b_and_then_server_a_are_away() {
    block_on(async {
        let mut pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"x", None);
        });
        let Some(br) = browser_at(&pair.a.web_url()).await else {
            return;
        };
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

/// `/api/status` is `lab3 status --json`, built by the same code, plus
/// Server A's clock: the same keys and, for a pair at rest, the same values.
#[test]
fn the_status_json_is_what_lab3_status_prints_plus_the_clock() {
    block_on(async {
        let pair = web_pair(None, |a, _| {
            write_file(a, "f.txt", b"x", None);
        });
        pair.wait_linked(20);
        assert_ok(&pair.lab3(&["lock", "f.txt"]));
        let Some(br) = browser_at(&pair.a.web_url()).await else {
            return;
        };
        br.find(r#"tr[data-name="f.txt"]"#, 10).await;
        let mut page = br
            .eval("return fetch('/api/status').then(r => r.json());")
            .await;
        let mut cli: serde_json::Value =
            serde_json::from_str(&assert_ok(&pair.lab3(&["status", "--json"]))).unwrap();
        assert!(
            page["now"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{page}"
        );
        // What may move between the two answers.
        for doc in [&mut page, &mut cli] {
            let o = doc.as_object_mut().unwrap();
            o.remove("now");
            o["link"].as_object_mut().unwrap().remove("last_reconcile");
        }
        assert_eq!(page, cli);
        assert_eq!(page["locks"][0]["name"], "f.txt", "{page}");
        assert_eq!(page["answered_by"], "a", "{page}");
        br.c().clone().close().await.unwrap();
    });
}
