//! Chapter 8: the sequence diagram and the table of branches, pinned. Both are drawn by the
//! program from real runs; the book includes these two snapshots.
//!
//! The program writes no port or pid into either picture (it prints `[PORT]` and `P`), so the
//! house filters find nothing to replace; they are applied anyway, as everywhere.

mod common;

/// The chapter's output between the heading that starts with `from` and the next heading
/// (or the outro), without the blank lines around it.
fn part(out: &str, from: &str, to: &str) -> String {
    let start = out
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in:\n{out}"));
    let body = &out[start..];
    let body = &body[body.find('\n').expect("a heading line") + 1..];
    let end = body.find(to).unwrap_or(body.len());
    body[..end].trim_matches('\n').to_string()
}

#[test]
fn ch08_the_diagram_and_the_table() {
    let run = common::chapter(env!("CARGO_BIN_EXE_ch08-complete-picture"), &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    let out = run.stdout;
    let diagram = part(&out, "8a. ", "\n8b. ");
    let table = part(&out, "8b. ", "\n=> ");

    for text in [&diagram, &table] {
        assert!(
            text.lines().all(|l| l.chars().count() <= 100),
            "a line is wider than 100 columns:\n{text}"
        );
        assert!(
            text.is_ascii(),
            "only ASCII, so the columns line up anywhere"
        );
    }
    // Every lifeline is a '|' (or '+' where an arrow crosses it) on every row of the diagram.
    let rows: Vec<&str> = diagram.lines().take_while(|l| !l.is_empty()).collect();
    let header = rows[0];
    for name in ["client", "primary", "worker 1", "worker 2"] {
        let col = header.find(name).expect("an actor") + name.len() / 2;
        for row in &rows[1..] {
            let at = row.as_bytes().get(col).copied();
            assert!(matches!(at, Some(b'|' | b'+')), "{name} at {col}: {row}");
        }
    }
    assert_eq!(diagram.matches("newconn [fd]").count(), 2);
    assert_eq!(diagram.matches("accepted:true").count(), 2);
    assert!(!diagram.contains("errno:-98"));
    // The table's rows, and the facts the chapter's text leans on.
    for branch in [
        "no cluster",
        "round robin",
        "SCHED_NONE",
        "exclusive",
        "UDP",
        "port 0, 2",
        "bind fails",
        "worker",
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(branch)),
            "no row {branch}"
        );
    }
    assert!(
        table.contains("bind 2, 2 EADDRINUSE"),
        "rr retries the bind"
    );
    assert!(table.contains("listen 0, 2 skipped"));
    assert!(
        table.contains("(2 keys)"),
        "port 0: one key per listen index"
    );
    assert!(
        table.contains("(after the"),
        "what follows the kill is counted"
    );
    assert!(!table.contains("SO_REUSEPORT"), "Node v20 never sets it");

    common::settings().bind(|| {
        insta::assert_snapshot!("ch08_diagram", diagram);
        insta::assert_snapshot!("ch08_table", table);
    });
}
