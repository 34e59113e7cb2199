//! The pictures of Server A's web page in docs/: `scripts/screenshots.sh`
//! runs the ignored `screenshots` test (in headless chromium, see the
//! harness's `browser`).

use lab3_tests::*;

/// `scripts/screenshots.sh`: the page at a laptop's and a phone's width,
/// light and dark, with a locked file holding an update from B and a big
/// transfer in progress; written to docs/web-*.png.
#[test]
#[ignore = "writes docs/web-*.png; run by scripts/screenshots.sh"]
fn screenshots() {
    block_on(async {
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
        // An edit at B: A keeps what todo.txt held (the Versions view).
        pair.wait_linked(20);
        write_file(
            &pair.dir_b,
            "todo.txt",
            b"- water the plants\n- call Ann\n",
            None,
        );
        pair.wait(20, "B's edit at A", || {
            read(&pair.dir_a.join("todo.txt")).is_some_and(|t| t.ends_with(b"Ann\n"))
        });
        // And one at A: B keeps what it held.
        let todo = b"- water the plants\n- call Ann\n- bread\n";
        write_file(&pair.dir_a, "todo.txt", todo, None);
        pair.wait(20, "A's edit at B", || {
            read(&pair.dir_b.join("todo.txt")).as_deref() == Some(&todo[..])
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
        // The versions of one file, from its row's Versions button (first:
        // the big files below, deleted at B, are kept at A and push the
        // small versions out by the size cap).
        let Some(br) = browser(1280, 820).await else {
            return;
        };
        br.c().goto(&pair.a.web_url()).await.unwrap();
        br.click(r#"tr[data-name="todo.txt"] button.versions"#, 10)
            .await;
        br.find(r#"#versions tr[data-id^="b-"][data-path="todo.txt"]"#, 10)
            .await;
        let png = br.c().screenshot().await.unwrap();
        std::fs::write(docs.join("web-versions.png"), png).unwrap();
        eprintln!("wrote docs/web-versions.png");
        br.c().clone().close().await.unwrap();
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
