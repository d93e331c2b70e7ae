//! Chapter 12: the mirror following Node 20 and then Node 24, side by side; its output is
//! what the book's page shows. (`tests/versions.rs` pins the same differences against the
//! real binaries.)

mod common;

#[test]
fn chapter_12_shows_what_changed_since_node_20() {
    let run = common::chapter(env!("CARGO_BIN_EXE_ch12-since-the-article"), &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let out = &run.stdout;
    let section = |title: &str| common::section(out, title);
    // 1. The key: the index only in Node 20's.
    let key20 = section("1. The key of each listen, following Node 20");
    assert!(key20.contains(":4:undefined:0\n") && key20.contains(":4:undefined:1\n"));
    let key24 = section("1. The key of each listen, following Node 24");
    assert_eq!(key24.matches(":4:undefined\n").count(), 2, "{key24}");
    // 2. One worker, two listens on one port: EADDRINUSE, except Node 24 under SCHED_NONE.
    for (title, outcome) in [
        ("round robin, following Node 20", "(code EADDRINUSE"),
        ("round robin, following Node 24", "(code EADDRINUSE"),
        ("SCHED_NONE, following Node 20", "(code EADDRINUSE"),
        ("SCHED_NONE, following Node 24", "ERR_INTERNAL_ASSERTION"),
    ] {
        let s = section(&format!("2. One worker listens twice on one port, {title}"));
        assert!(s.contains(outcome), "{title}: no {outcome:?} in:\n{s}");
        assert_eq!(s.contains("a fresh handle"), title.ends_with("24"), "{s}");
        assert!(s.contains("exited (code 1)"), "{s}");
    }
    // 3. reusePort: the primary's round robin on Node 20, the kernel's on Node 24.
    let reuse20 = section("3. Two workers, listen({ reusePort: true }), following Node 20");
    assert!(reuse20.contains("queryServer 2, accept4 in the primary 4, in the workers 0"));
    assert!(!reuse20.contains("SO_REUSEPORT"));
    let reuse24 = section("3. Two workers, listen({ reusePort: true }), following Node 24");
    assert!(reuse24.contains("queryServer 0, accept4 in the primary 0, in the workers 4"));
    assert_eq!(reuse24.matches("SO_REUSEPORT").count(), 2, "{reuse24}");
    common::settings().bind(|| insta::assert_snapshot!("ch12_since_the_article", run.stdout));
}
