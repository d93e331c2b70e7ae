//! Unit tests of `node_lines.rs`.

use super::*;

const V24: Version = super::super::NODE;

fn file(text: &str) -> SourceFile {
    SourceFile {
        path: "lib/x.js".into(),
        version: V24,
        binary: PathBuf::new(),
        text: text.into(),
        found_by: node_source::FoundBy::Loader,
    }
}

fn name(s: &str) -> Select {
    Select::Name(s.to_string())
}

#[test]
fn directives_are_found_and_parsed() {
    let page = "  {{#node 24 lib/net.js:listenInCluster}}\n\
                \\{{#node 24 lib/net.js:escaped}} {{#nodejs x}} {{#include x.rs}}\n\
                {{ #node v24 lib/internal/cluster/round_robin_handle.js:131-138 }}";
    let found = find_directives(page);
    assert_eq!(found.len(), 2, "{found:?}");
    let a = found[0].as_ref().expect("parses");
    assert_eq!(
        (a.version, a.path.as_str(), &a.select),
        (V24, "lib/net.js", &name("listenInCluster"))
    );
    assert_eq!(&page[a.span.0..a.span.1], a.text);
    assert_eq!(a.text, "{{#node 24 lib/net.js:listenInCluster}}");
    assert_eq!(a.indent, "  ", "in a list item, say");
    assert_eq!(
        indent_rest("<p>\n\n```js\nx\n```", "  "),
        "<p>\n\n  ```js\n  x\n  ```"
    );
    let b = found[1].as_ref().expect("parses");
    assert_eq!(b.select, Select::Lines(131, 138));
    assert!(b.text.starts_with("{{ #node") && b.text.ends_with("}}"));
}

#[test]
fn malformed_directives_say_what_is_wrong() {
    let why = |page: &str| match &find_directives(page)[..] {
        [Err((_, why))] => why.clone(),
        other => panic!("{page}: {other:?}"),
    };
    assert!(why("{{#node}}").contains("expected `{{#node 24"));
    assert!(why("{{#node 24 lib/net.js}}").contains("no `:NAME`"));
    assert!(why("{{#node 22 lib/net.js:x}}").contains("pins no release of node 22"));
    assert!(why("{{#node lts lib/net.js:x}}").contains("not a Node line"));
    assert!(why("{{#node 24 src/tcp_wrap.cc:x}}").contains("not a file of Node's lib/"));
    assert!(why("{{#node 24 lib/../x.js:x}}").contains("not a file of Node's lib/"));
    assert!(why("{{#node 24 lib/net.js:9-3}}").contains("not a line range"));
    assert!(why("{{#node 24 lib/net.js:a b}}").contains("expected"));
    assert!(why("{{#node 24 lib/net.js:f()}}").contains("neither a name"));
    assert!(why("{{#node 24 lib/net.js:x\n}}").contains("no closing `}}` on its line"));
    assert!(why("see {{#node 24 lib/net.js:x}}").contains("on a line of its own"));
    assert!(why("{{#node 24 lib/net.js:x}}.").contains("on a line of its own"));
}

#[test]
fn definitions_are_found_by_their_first_line() {
    for (line, n) in [
        (
            "function listenInCluster(server, address,",
            "listenInCluster",
        ),
        ("async function f() {", "f"),
        ("function* gen() {", "gen"),
        (
            "RoundRobinHandle.prototype.add = function(worker, send) {",
            "RoundRobinHandle.prototype.add",
        ),
        (
            "  function listenOnPrimaryHandle(err, handle) {",
            "listenOnPrimaryHandle",
        ),
        (
            "const onconnection = (message, handle) => {",
            "onconnection",
        ),
        ("class Worker extends EventEmitter {", "Worker"),
    ] {
        assert!(defines(line, n), "{line}");
    }
    for (line, n) in [
        ("  return this.all.has(worker.id);", "has"),
        (
            "RoundRobinHandle.prototype.addAll = function() {",
            "RoundRobinHandle.prototype.add",
        ),
        ("function listenInClusterX(", "listenInCluster"),
        ("this.handoff(worker);", "handoff"),
        ("x === y", "x"),
    ] {
        assert!(!defines(line, n), "{line}");
    }
}

#[test]
fn a_definition_ends_at_its_closing_brace() {
    let f = file(
        "'use strict';\n\
         function f(a,\n           b) {\n  if (a) {\n    return `}${ {a}.a }`;\n  }\n  \
         // } in a comment\n  const s = '}' + \"{\"; /* { */\n}\n\
         X.prototype.g = function() {\n  return 1;\n};\n\
         function H(key, { port, fd }) {\n  this.x = [{ a: 1 }];\n}\n",
    );
    let f_ = excerpt(&f, &name("f")).expect("f is found");
    assert_eq!((f_.first, f_.last), (2, 9));
    assert!(f_.text.ends_with("/* { */\n}\n"));
    let g = excerpt(&f, &name("X.prototype.g")).expect("g is found");
    assert_eq!(
        (g.first, g.last, g.text.as_str()),
        (10, 12, "X.prototype.g = function() {\n  return 1;\n};\n")
    );
    let h = excerpt(&f, &name("H")).expect("H is found");
    assert_eq!(
        (h.first, h.last),
        (13, 15),
        "a destructured parameter is not the body"
    );
    let lines = excerpt(&f, &Select::Lines(10, 11)).expect("in range");
    assert_eq!(lines.text, "X.prototype.g = function() {\n  return 1;\n");
}

#[test]
fn names_that_cannot_be_placed_are_errors() {
    let f = file(
        "function a() {\n}\nfunction a() {\n}\n\
         const re = /{/;\nfunction b() {\n  return /{/.test(x);\n}\n\
         function c() {\n  return 1; }\nconst d = 5;\n",
    );
    let err = |s: Select| excerpt(&f, &s).expect_err("an error");
    assert!(err(name("nope")).contains("no definition of `nope` in lib/x.js at node v24.22.3"));
    assert!(err(name("a")).contains("more than once in lib/x.js at node v24.22.3 (lines 1, 3)"));
    assert!(err(name("b")).contains("never close"), "{}", err(name("b")));
    assert!(err(name("c")).contains("does not start with `}`"));
    assert!(err(name("d")).contains("no body in braces"));
    assert!(err(Select::Lines(10, 20)).contains("which has 11 lines"));
}

#[test]
fn directives_render_as_a_caption_and_a_js_block_or_a_link() {
    let d = |select| Directive {
        span: (0, 0),
        indent: String::new(),
        text: String::new(),
        version: V24,
        path: "lib/net.js".into(),
        select,
    };
    let ex = Excerpt {
        first: 10,
        last: 11,
        text: "a = `x`;\nb = ```;\n".into(),
    };
    // (The URLs are built here so that the crate's link check does not take them for
    // links of the book's.)
    let net = format!("{NODE_REPO}/blob/v24.22.3/lib/net.js");
    assert_eq!(
        render(&d(name("a")), &ex),
        format!(
            "<p class=\"node-lines\">Node v24.22.3, <a href=\"{net}#L10-L11\">\
             <code>lib/net.js</code> lines 10–11</a>:</p>\n\n\
             ````js\na = `x`;\nb = ```;\n````"
        )
    );
    let missing = render_missing(&d(name("listenInCluster")));
    assert!(
        missing.contains(&format!(
            "<a href=\"{net}\"><code>listenInCluster</code> in <code>lib/net.js</code></a> \
             (not shown: this copy of the book was built without node 24.22.3)"
        )),
        "{missing}"
    );
    assert!(
        render_missing(&d(Select::Lines(5, 5)))
            .contains("/lib/net.js#L5\"><code>lib/net.js</code> line 5</a>")
    );
    assert_eq!(
        missing_note(V24),
        "node 24.22.3 not installed: Node's lines shown as links \
         (scripts/install-node-versions 24.22.3)"
    );
}
