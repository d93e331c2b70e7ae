//! Node's `lib/` files read out of real Node binaries: v20 from `PATH`, 22/24/26 when
//! `scripts/install-node-versions` has put them in `.node-versions/` (`.ci/run` does). A
//! version that is not there prints one `skipped:` line and the test passes.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cluster_walkthrough::node_source::{
    self, ANCHORS, Error, FoundBy, NodeBinary, SourceFile, Version, Want,
};

const PRIMARY: &str = "lib/internal/cluster/primary.js";

/// The binary for `want`, or `None` after printing the one `skipped:` line.
fn node(want: Want) -> Option<NodeBinary> {
    match node_source::find_node(want) {
        Ok(node) => Some(node),
        Err(e) => match e.skip_line() {
            Some(line) => {
                eprintln!("{line}");
                None
            }
            None => panic!("{e}"),
        },
    }
}

fn file(node: &NodeBinary, path: &str) -> Arc<SourceFile> {
    node.source(path).unwrap_or_else(|e| panic!("{e}"))
}

fn exact(major: u32, minor: u32, patch: u32) -> Want {
    Want::Exact(Version {
        major,
        minor,
        patch,
    })
}

/// Line `n` of `f`, which must exist.
fn line(f: &SourceFile, n: usize) -> &str {
    f.line(n)
        .unwrap_or_else(|| panic!("{} {} has no line {n}", f.path, f.version))
}

#[test]
fn every_installed_version_holds_query_server() {
    for major in [20, 22, 24, 26] {
        let Some(node) = node(Want::Major(major)) else {
            continue;
        };
        let primary = file(&node, PRIMARY);
        assert_eq!(primary.version.major, major);
        assert!(
            matches!(primary.found_by, FoundBy::Anchor(_)),
            "{PRIMARY} in {} was found by its anchor line",
            node.version
        );
        assert!(
            primary.text.starts_with("'use strict';\n"),
            "{}",
            node.version
        );
        assert!(primary.text.ends_with("\n"), "{}", node.version);
        let at = primary
            .text
            .lines()
            .position(|l| l.starts_with("function queryServer(worker, message)"))
            .unwrap_or_else(|| panic!("no queryServer in {PRIMARY} of {}", node.version));
        eprintln!("{}: queryServer at {PRIMARY}#L{}", node.version, at + 1);
    }
}

/// The lines the book links in v20.20.2 (checked on GitHub when they were written).
#[test]
fn v20_lines_are_the_lines_of_the_tag() {
    let Some(node) = node(exact(20, 20, 2)) else {
        return;
    };
    let primary = file(&node, PRIMARY);
    assert_eq!(
        line(&primary, 268),
        "function queryServer(worker, message) {"
    );
    assert_eq!(
        line(&primary, 274),
        "              `${message.fd}:${message.index}`;"
    );
    assert_eq!(line(&primary, 275), "  let handle = handles.get(key);");
    let child = file(&node, "lib/internal/cluster/child.js");
    assert_eq!(
        line(&child, 110),
        "      shared(reply, { handle, indexesKey, index }, cb);"
    );
    assert_eq!(
        line(&child, 113),
        "      rr(reply, { indexesKey, index }, cb);"
    );
    let net = file(&node, "lib/net.js");
    assert_eq!(
        line(&net, 1899),
        "  this._handle.onconnection = onconnection;"
    );
}

/// In 24.22.3 the key carries the index only for port 0, and a stored handle is reused
/// only for a worker it does not hold yet (the lines `/work/shared/reference` names).
#[test]
fn v24_keys_by_index_only_for_port_0() {
    let Some(node) = node(exact(24, 22, 3)) else {
        return;
    };
    let primary = file(&node, PRIMARY);
    assert_eq!(
        line(&primary, 268),
        "function queryServer(worker, message) {"
    );
    assert_eq!(
        line(&primary, 273),
        "  const key = `${message.address}:${message.port}:${message.addressType}:` +"
    );
    assert_eq!(
        line(&primary, 274),
        "              `${message.fd}` + (message.port === 0 ? `:${message.index}` : '');"
    );
    assert_eq!(
        line(&primary, 277),
        "  if (cachedHandle && !cachedHandle.has(worker)) {"
    );
    assert_eq!(
        line(&primary, 315),
        "      handles.set(key, handle);  // Update in case it was replaced."
    );
}

/// What `node --expose-internals` says the binary holds for `id`, asked directly here so
/// the test does not trust the code under test.
fn from_loader(node: &NodeBinary, id: &str) -> String {
    let mut cmd = Command::new(&node.path);
    cmd.args([
        "--expose-internals",
        "-e",
        "const { internalBinding } = require('internal/test/binding');\
         process.stdout.write(internalBinding('builtins').natives[process.argv[1]]);",
        id,
    ])
    .env_remove("NODE_OPTIONS");
    let run = common::run(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{}: {}", node.version, run.stderr);
    run.stdout
}

/// Every anchor still finds its file, and the run it cuts is byte for byte what Node's own
/// builtin loader holds.
#[test]
fn every_anchor_cuts_exactly_what_node_loads() {
    for major in [20, 22, 24, 26] {
        let Some(node) = node(Want::Major(major)) else {
            continue;
        };
        for &(path, anchor) in ANCHORS {
            let f = file(&node, path);
            assert_eq!(
                f.found_by,
                FoundBy::Anchor(anchor),
                "{path} in {}",
                node.version
            );
            let id = &path["lib/".len()..path.len() - ".js".len()];
            assert!(
                f.text == from_loader(&node, id),
                "{path} in {}: the anchored run differs from what Node loads",
                node.version
            );
        }
    }
}

/// A file without an anchor comes from the builtin loader, checked against the binary.
#[test]
fn a_file_without_an_anchor_comes_from_the_loader() {
    let Some(node) = node(Want::Major(20)) else {
        return;
    };
    let f = file(&node, "lib/internal/streams/utils.js");
    assert_eq!(f.found_by, FoundBy::Loader);
    assert!(f.text.starts_with("'use strict';\n"));
}

#[test]
fn a_missing_version_says_how_to_install_it() {
    let e = node_source::find_node(Want::Major(99)).expect_err("there is no Node 99");
    assert!(matches!(e, Error::NotInstalled { .. }), "{e}");
    assert!(
        e.to_string().contains("scripts/install-node-versions 99"),
        "{e}"
    );
    assert!(e.to_string().contains("CLUSTER_WALKTHROUGH_NODE_99"), "{e}");
    assert_eq!(
        e.skip_line().as_deref(),
        Some("skipped: node 99 not installed (scripts/install-node-versions)")
    );
}

#[test]
fn a_file_not_in_the_binary_is_an_error() {
    let Some(node) = node(Want::Major(20)) else {
        return;
    };
    let e = node
        .source("lib/internal/no/such/file.js")
        .expect_err("no such file");
    assert!(matches!(e, Error::FileNotFound { .. }), "{e}");
    assert!(e.skip_line().is_none());
    let e = node.source("src/tcp_wrap.cc").expect_err("not a lib/ file");
    assert!(matches!(e, Error::NotALibPath(_)), "{e}");
}

#[test]
fn the_cli_prints_a_range_with_line_numbers() {
    let Some(node) = node(Want::Major(20)) else {
        return;
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cluster-walkthrough"));
    cmd.args(["node-source", "20", PRIMARY, "--lines", "268-269"]);
    let run = common::run(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "  268  function queryServer(worker, message) {\n  \
           269    // Stop processing if worker already disconnecting\n"
    );
    assert!(
        run.stderr.contains(&node.version.to_string()),
        "{}",
        run.stderr
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cluster-walkthrough"));
    cmd.args(["node-source", "99", PRIMARY]);
    let run = common::run(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("scripts/install-node-versions 99"),
        "{}",
        run.stderr
    );
}
