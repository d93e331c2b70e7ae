//! The two functions of Node's `lib/path.js` (POSIX:
//! [`resolve`](https://github.com/nodejs/node/blob/v24.22.3/lib/path.js#L1245),
//! [`relative`](https://github.com/nodejs/node/blob/v24.22.3/lib/path.js#L1353)) that the
//! cluster uses on a pipe's path: the worker makes it absolute (`path.resolve`, `child.js`
//! L70–73), and the primary binds the shorter of it and its form relative to the primary's
//! working directory (`path.relative`, `primary.js` L284–292 at v24.22.3), because
//! `sun_path` holds only ~100 bytes.
//!
//! Both work on the text alone, as Node's do: nothing is looked up on disk. A name may hold
//! a NUL byte (Node spells an abstract socket `\0name`), which is just another character here.

/// `path.resolve(cwd, p)`: `p` made absolute against `cwd`, with `.`, `..` and repeated or
/// trailing slashes folded away.
pub(crate) fn resolve(cwd: &str, p: &str) -> String {
    let joined = match p.starts_with('/') {
        true => p.to_string(),
        false => format!("{cwd}/{p}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `path.relative(from, to)`: the way from `from` to `to`, both resolved first; `""` when
/// they are the same place.
pub(crate) fn relative(from: &str, to: &str) -> String {
    let (from, to) = (resolve("/", from), resolve("/", to));
    let from: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..", from.len() - common);
    let downs = to[common..].iter().copied();
    ups.chain(downs).collect::<Vec<&str>>().join("/")
}

// ANCHOR: shortest
/// The name the primary binds for a pipe: `address` relative to its working directory when
/// that is not longer (`primary.js` L284–292; JavaScript counts UTF-16 units). A worker's
/// abstract name (`/cwd/\0name` after its `path.resolve`) comes out as `\0name` here.
pub(crate) fn shortest(address: &str, cwd: &str) -> String {
    let rel = relative(cwd, address);
    match address.encode_utf16().count() < rel.encode_utf16().count() {
        true => address.to_string(),
        false => rel,
    }
}
// ANCHOR_END: shortest

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_as_node_does() {
        // Each checked with `node -p "path.resolve('/w', p)"`.
        assert_eq!(resolve("/w", "app.sock"), "/w/app.sock");
        assert_eq!(resolve("/w", "./a/../b//c/"), "/w/b/c");
        assert_eq!(resolve("/w", "/x/y"), "/x/y");
        assert_eq!(resolve("/w", "../../.."), "/");
        assert_eq!(resolve("/w/d", "\0name"), "/w/d/\0name");
    }

    #[test]
    fn relative_as_node_does() {
        assert_eq!(relative("/w", "/w/sock/app.sock"), "sock/app.sock");
        assert_eq!(relative("/w/d", "/w/e/f"), "../e/f");
        assert_eq!(relative("/w", "/w"), "");
        assert_eq!(relative("/", "/a"), "a");
    }

    #[test]
    fn the_primary_binds_the_shorter_name() {
        assert_eq!(shortest("/tmp/x/sock/app.sock", "/tmp/x"), "sock/app.sock");
        assert_eq!(shortest("/a.sock", "/very/deep/dir"), "/a.sock");
        assert_eq!(shortest("/w/d/\0name", "/w/d"), "\0name");
    }
}
