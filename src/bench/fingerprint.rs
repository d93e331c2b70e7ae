//! Which code a benchmark run measured: a fingerprint of the sources of the servers and of the
//! benchmark itself, recorded in the run's JSON. `tests/bench_fresh.rs` computes it again for
//! the run the book shows, and fails when the code has changed since: the book's numbers must
//! come from the code as it is.
//!
//! The hash is FNV-1a, 64 bits, written out here: it is defined by two constants, so it gives
//! the same value on every Rust version and every machine (the standard library's hashers
//! promise neither), and it needs no crate. It is not a defence against anyone: it only has to
//! notice that a file changed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The folders whose every file the fingerprint covers, relative to the crate's root: the
/// cluster (our primary and workers, the code on the hot path) and the benchmark.
pub const MEASURED: [&str; 2] = ["src/cluster", "src/bench"];

/// FNV-1a, 64 bits, of some bytes, continuing from `hash` (start from [`FNV_OFFSET`]).
pub fn fnv1a64(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Where FNV-1a 64 starts.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The fingerprint of some files: each file's hash, and one hash over all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Path (relative to the crate's root, with `/`) → `fnv1a64:` and 16 hex digits.
    pub files: BTreeMap<String, String>,
    /// Over every path and its file's hash, in path order.
    pub all: String,
}

impl Fingerprint {
    /// The fingerprint of every file under [`MEASURED`] in the crate at `root`.
    pub fn of_crate(root: &Path) -> io::Result<Fingerprint> {
        let mut paths = Vec::new();
        for dir in MEASURED {
            walk(&root.join(dir), &mut paths)?;
        }
        let mut files = BTreeMap::new();
        for path in paths {
            let bytes = std::fs::read(&path)?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.insert(rel.join("/"), hex(file_hash(&bytes)));
        }
        Ok(Fingerprint::of_files(files))
    }

    /// The crate this program was built from (`CARGO_MANIFEST_DIR`).
    pub fn of_this_crate() -> io::Result<Fingerprint> {
        Fingerprint::of_crate(&crate_root())
    }

    /// The fingerprint of files already hashed one by one.
    pub fn of_files(files: BTreeMap<String, String>) -> Fingerprint {
        let mut all = FNV_OFFSET;
        for (path, hash) in &files {
            all = fnv1a64(all, path.as_bytes());
            all = fnv1a64(all, &[0]);
            all = fnv1a64(all, hash.as_bytes());
            all = fnv1a64(all, &[0]);
        }
        Fingerprint {
            files,
            all: hex(all),
        }
    }

    /// What differs from `other`, file by file: `src/cluster/primary.rs changed`,
    /// `... is new`, `... is gone`.
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (path, hash) in &self.files {
            match other.files.get(path) {
                None => out.push(format!("{path} is new")),
                Some(h) if h != hash => out.push(format!("{path} changed")),
                Some(_) => {}
            }
        }
        for path in other.files.keys() {
            if !self.files.contains_key(path) {
                out.push(format!("{path} is gone"));
            }
        }
        out
    }
}

/// The crate's root, as Cargo built this program.
pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file's hash, over its code only: blank lines and lines that are only a comment (`//`,
/// `///`, `//!`) are skipped, so a doc comment or a link fixed in the measured files does not
/// call for a new run; any change to code does. A `\r` before `\n` is skipped too, so that a
/// checkout with Windows line endings has the same fingerprint.
fn file_hash(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let code = line.trim_ascii_start();
        if code.is_empty() || code.starts_with(b"//") {
            continue;
        }
        hash = fnv1a64(hash, line);
        hash = fnv1a64(hash, b"\n");
    }
    hash
}

fn hex(hash: u64) -> String {
    format!("fnv1a64:{hash:016x}")
}

/// Every file under `dir`, recursively (symbolic links are not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        // The reference values of the FNV authors' test suite.
        assert_eq!(fnv1a64(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn line_endings_do_not_count() {
        assert_eq!(file_hash(b"a\r\nb\r\n"), file_hash(b"a\nb\n"));
        assert_ne!(file_hash(b"a\rb"), file_hash(b"ab"));
    }

    #[test]
    fn comments_and_blank_lines_do_not_count() {
        let code = b"fn f() {\n    g();\n}\n";
        let documented = b"//! A module.\n\n/// Calls g.\nfn f() {\n    // why\n    g();\n}\n";
        assert_eq!(file_hash(code), file_hash(documented));
        assert_ne!(file_hash(code), file_hash(b"fn f() {\n    h();\n}\n"));
        assert_ne!(
            file_hash(b"let a = 1; // one\n"),
            file_hash(b"let a = 1;\n")
        );
    }

    #[test]
    fn every_file_counts_and_differences_are_named() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for d in MEASURED {
            std::fs::create_dir_all(dir.path().join(d).join("sub")).expect("mkdir");
        }
        let write = |p: &str, s: &str| std::fs::write(dir.path().join(p), s).expect("write");
        write("src/cluster/a.rs", "one");
        write("src/bench/sub/b.rs", "two");
        let before = Fingerprint::of_crate(dir.path()).expect("a fingerprint");
        assert_eq!(
            before.files.keys().collect::<Vec<_>>(),
            ["src/bench/sub/b.rs", "src/cluster/a.rs"]
        );
        write("src/cluster/a.rs", "one!");
        write("src/cluster/c.rs", "three");
        let after = Fingerprint::of_crate(dir.path()).expect("a fingerprint");
        assert_ne!(before.all, after.all);
        assert_eq!(
            after.differences(&before),
            ["src/cluster/a.rs changed", "src/cluster/c.rs is new"]
        );
        assert_eq!(
            Fingerprint::of_files(after.files.clone()),
            after,
            "the same files, the same fingerprint"
        );
    }
}
