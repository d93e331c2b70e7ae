use super::*;

/// A chapter's snapshot: its frame, then an event's line after a blank one (not a heading),
/// then two parts.
const SNAP: &str = "---\nsource: tests/chapters.rs\n---\n\nChapter 7 · Failures\nWhat happens.\n\n\
primary    (another program already listens)\n\n\
7a. Round robin\nprimary      socket() = 5\nprimary  *   bind() = -1 EADDRINUSE\n\
worker 1 *   error: bind EADDRINUSE\nprimary    cluster.disconnect()\n\n\
7b. SCHED_NONE\nprimary      socket() = 5\nprimary  *   bind() = -1 EADDRINUSE\n\n\
=> The end.\n";

fn shown(file: &str, kind: Kind) -> Vec<String> {
    let body = body(file);
    excerpt(body, &chosen(Path::new("x.snap"), body), kind)
}

#[test]
fn the_body_is_the_snapshot_without_its_header_and_blank_ends() {
    let b = body(SNAP);
    assert!(b.starts_with("Chapter 7 · Failures\n"), "{b}");
    assert!(b.ends_with("=> The end."), "{b}");
    assert_eq!(body("\n\nplain text\n\n"), "plain text");
}

#[test]
fn the_marked_lines_show_with_a_gap_line_naming_the_heading_it_skips() {
    assert_eq!(
        shown(SNAP, Kind::Trace),
        [
            "… 7a. Round robin",
            "primary      bind() = -1 EADDRINUSE",
            "worker 1     error: bind EADDRINUSE",
            "… 7b. SCHED_NONE",
            "primary      bind() = -1 EADDRINUSE",
        ]
    );
}

#[test]
fn a_gap_without_a_heading_is_an_ellipsis_and_a_blank_one_a_blank_line() {
    let text = "title\n\nworker 1 * one\nworker 1   two\nworker 1 * three\n\nworker 1 * four";
    assert_eq!(
        shown(text, Kind::Trace),
        [
            "worker 1   one",
            "…",
            "worker 1   three",
            "",
            "worker 1   four"
        ]
    );
}

#[test]
fn a_diagram_skips_with_dotted_lifelines_and_a_table_loses_its_common_indent() {
    let diagram = "*  a    b\n   |    |\n*  |--->|\n   |<---|\n*  |<-+-|\n   :    :";
    assert_eq!(
        shown(diagram, Kind::Diagram),
        ["a    b", "|--->|", ":  : :", "|<-+-|"],
        "a row of bare lifelines is left out without a gap line"
    );
    let table = "* h1  h2\n* r1  x\nfull table\n* r2  y";
    assert_eq!(shown(table, Kind::Table), ["h1  h2", "r1  x", "…", "r2  y"]);
}

#[test]
fn the_rendering_shows_the_excerpt_then_the_whole_file_folded() {
    let md = render(Kind::Diagram, "* a\n b ``` {{#x}}", &["a".to_string()]);
    assert!(md.starts_with("```text,diagram\na\n```\n\n<details><summary>The whole diagram (2 lines)</summary>\n\n````text,diagram\n"), "{md}");
    assert!(md.contains("\\{{#x}}"), "escaped for mdBook: {md}");
    assert!(md.ends_with("````\n\n</details>"), "{md}");
}

#[test]
fn directives_are_found_and_checked() {
    let page = "a\n  {{#trace ../x.snap}}\n{{#trace img/b.txt table}}\n\\{{#trace no}}\n\
                text {{#trace y.snap}}\n{{#trace z.snap picture}}\n";
    let found = find_directives(page);
    assert_eq!(found.len(), 4, "{found:?}");
    let first = found[0].as_ref().expect("good");
    assert_eq!(
        (first.path.as_str(), first.kind, first.indent.as_str()),
        ("../x.snap", Kind::Trace, "  ")
    );
    assert_eq!(found[1].as_ref().expect("good").kind, Kind::Table);
    assert!(
        found[2]
            .as_ref()
            .is_err_and(|(_, why)| why.contains("line of its own"))
    );
    assert!(
        found[3]
            .as_ref()
            .is_err_and(|(_, why)| why.contains("\"picture\""))
    );
}

#[test]
fn the_benchmarks_files_show_the_machine_the_first_figure_and_the_first_strategy() {
    let table = "CPU, 2 CPUs\nLinux 6\nrelease build\nmeasured on 2026-11-30\n8 clients\n\n\
                 rr  ours\n\nConnections per second, thousands\nworkers 1\nrr 17.9\n\nvs rr\nrr 1.00\n";
    assert_eq!(bench_key_lines(table), [0, 1, 2, 3, 8, 9, 10]);
    let calls = "System calls per connection,\n2 workers\n(fewer)\n\nour round robin\n3 connections\n\
                 accept4 1.00\n\nSO_REUSEPORT\nread 1.00\n";
    assert_eq!(bench_syscalls_key_lines(calls), [4, 5, 6]);
}
