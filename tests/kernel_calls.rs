//! Only `src/sys/` talks to the kernel. Every other file under `src/` and `chapters/` asks
//! `sys` for a socket, a wait or a signal, and names `sys::Errno` and `sys::Signal` instead
//! of `nix`'s, as Node's JavaScript asks libuv and never calls `socket(2)` itself. This test
//! reads every `.rs` file and names the file and line of any `nix::` or `libc::` outside
//! `src/sys/`.

use std::path::{Path, PathBuf};

/// Lines that may still name a kernel crate: (file, the exact text). None now; kept so an
/// exception, if one is ever needed, is named here with its reason.
const NOT_YET: &[(&str, &str)] = &[];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Whether `line` names `nix::` or `libc::` as a path of its own (not `unix::`).
fn names_kernel_crate(line: &str) -> bool {
    ["nix::", "libc::"].iter().any(|krate| {
        line.match_indices(krate).any(|(at, _)| {
            let before = line[..at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

/// `line` with the texts that `NOT_YET` allows in `file` taken out.
fn without_allowed(file: &str, line: &str) -> String {
    NOT_YET
        .iter()
        .filter(|(f, _)| *f == file)
        .fold(line.to_string(), |l, (_, text)| l.replace(text, ""))
}

#[test]
fn only_src_sys_names_nix_or_libc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("chapters"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let sys = root.join("src").join("sys");
    let mut found = Vec::new();
    for path in files.iter().filter(|p| !p.starts_with(&sys)) {
        let name = path.strip_prefix(root).expect("under the root").display();
        let name = name.to_string();
        let text = std::fs::read_to_string(path).expect("a readable source file");
        for (i, line) in text.lines().enumerate() {
            if names_kernel_crate(&without_allowed(&name, line)) {
                found.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "only src/sys/ may name nix or libc; add what you need to sys (and re-export it) instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_paths_not_words_that_end_in_nix() {
    assert!(names_kernel_crate("use nix::errno::Errno;"));
    assert!(names_kernel_crate("let r = unsafe { libc::close(3) };"));
    assert!(names_kernel_crate("f(::libc::EINTR)"));
    assert!(!names_kernel_crate(
        "use std::os::unix::process::CommandExt;"
    ));
    assert!(!names_kernel_crate("use crate::sys::Errno;"));
}
