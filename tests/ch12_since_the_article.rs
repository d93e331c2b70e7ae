//! Chapter 12: the mirror following Node 20 and then Node 24, side by side; its output is
//! what the book's page shows. (`tests/versions.rs` pins the same differences against the
//! real binaries.)

mod common;

#[test]
fn chapter_12_shows_what_changed_since_node_20() {
    let run = common::chapter(env!("CARGO_BIN_EXE_ch12-since-the-article"), &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let out = &run.stdout;
    for line in [
        ":4:undefined:0\n",
        ":4:undefined\n",
        "a fresh handle",
        "ERR_INTERNAL_ASSERTION",
        "SO_REUSEPORT",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    common::settings().bind(|| insta::assert_snapshot!("ch12_since_the_article", run.stdout));
}
