//! The house rules, held for every crate of the workspace (loadtest and fuzz
//! included): no source file over 450 lines, no function over 80 lines, no
//! circle among a crate's top-level modules. Plain text scans of the
//! sources: no Redis, part of the fast tier.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 450;
const MAX_FN_LINES: usize = 80;

/// Every crate's source root: (crate, `src` directory) and its other Rust files.
const CRATES: [&str; 5] = [".", "actors", "actors/domain", "loadtest", "fuzz"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() && !matches!(name, "target" | ".git" | "node_modules") && !name.starts_with('.') {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["src", "tests", "actors", "loadtest", "fuzz", "build.rs"] {
        let p = root().join(dir);
        if p.is_file() {
            files.push(p);
        } else {
            rust_files(&p, &mut files);
        }
    }
    assert!(files.len() > 100, "the sources were found: {}", files.len());
    files
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn no_source_file_is_over_450_lines() {
    let long: Vec<String> = all_files()
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > MAX_FILE_LINES).then(|| format!("{} ({n} lines)", relative(p)))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_FILE_LINES} lines: {long:#?}");
}

/// A line without its string and character literals and its comment.
fn code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_str = false,
            (true, _) => {}
            (false, '"') => in_str = true,
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, '\'') => {
                // A character literal ('{', '\n'), not a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    while let Some(x) = chars.next() {
                        if x == '\\' {
                            chars.next();
                        } else if x == '\'' {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            (false, _) => out.push(c),
        }
    }
    out
}

/// (name, first line, lines) of every function with a body.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let t = ["pub(crate) ", "pub(super) ", "pub ", "async ", "const ", "unsafe "]
            .iter()
            .fold(t, |t, p| t.strip_prefix(p).unwrap_or(t));
        let t = t.strip_prefix("async ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let (mut depth, mut started) = (0i32, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            if !started && l.trim_end().ends_with(';') {
                break;
            }
            for c in l.chars() {
                match c {
                    '{' => (depth, started) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if started && depth <= 0 {
                found.push((name.clone(), i + 1, j - i + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn no_function_is_over_80_lines() {
    let mut long = Vec::new();
    for p in all_files() {
        for (name, line, n) in functions(&std::fs::read_to_string(&p).unwrap()) {
            if n > MAX_FN_LINES {
                long.push(format!("{}:{line} {name} ({n} lines)", relative(&p)));
            }
        }
    }
    assert!(long.is_empty(), "functions over {MAX_FN_LINES} lines: {long:#?}");
}

#[test]
fn the_function_scan_counts_bodies_not_braces_in_text() {
    let text = "fn a() {\n    let s = \"{{\";\n    let c = '{';\n}\nfn b();\npub async fn c<'x>(v: &'x str) {\n}\n";
    assert_eq!(functions(text), [("a".into(), 1, 4), ("c".into(), 6, 2)]);
}

/// A crate's top-level modules and which others each one names
/// (`crate::m`, or `super::m` from a top-level file).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let top = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs").to_string();
        (!matches!(first.as_str(), "lib" | "main")).then_some(first)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|p| top(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        // Test modules (`tests.rs`, `testing.rs`) are compiled for tests alone.
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(from) = top(p).filter(|_| !matches!(name, "tests.rs" | "testing.rs")) else { continue };
        let at_top = p.parent() == Some(src);
        let text = std::fs::read_to_string(p).unwrap();
        let text: String = text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).map(code).collect();
        let mut named = BTreeSet::new();
        for (prefix, allowed) in [("crate::", true), ("super::", at_top)] {
            for (i, _) in text.match_indices(prefix).filter(|_| allowed) {
                let name: String =
                    text[i + prefix.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                named.insert(name);
            }
        }
        // `use crate::{a, b::c}`
        for (i, _) in text.match_indices("crate::{") {
            let inner: String = text[i + 8..].chars().take_while(|c| *c != '}').collect();
            named.extend(inner.split(',').filter_map(|s| s.trim().split("::").next()).map(str::to_string));
        }
        let edges = graph.entry(from.clone()).or_default();
        edges.extend(named.into_iter().filter(|m| modules.contains(m) && *m != from));
    }
    graph
}

/// One circle of the graph, if there is any.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_circle_among_its_modules() {
    let mut circles = Vec::new();
    for krate in CRATES {
        let src = root().join(krate).join("src");
        let graph = module_graph(&src);
        assert!(!graph.is_empty(), "{krate}: modules found");
        if let Some(c) = circle(&graph) {
            circles.push(format!("{krate}: {}", c.join(" -> ")));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(circle(&g).unwrap(), ["a", "b", "c", "a"]);
}
