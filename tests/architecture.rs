//! The rules of ARCHITECTURE.md that a reader of the source can check: no import circle between
//! files, `Metrics` known only inside `src/observe/`, one settings reader, and the store's names
//! and certificate ids formatted only in `config/src/layout.rs`.
//!
//! "Imports" are read from the source text: `crate::…`, `super::…`, `self::…` paths, a parent's
//! use of a child module (`child::…`), and `use super::*` (a child importing everything of its
//! parent). Comments and a file's inline `#[cfg(test)] mod tests` are left out; test files of
//! their own (`tests.rs`) are not part of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (crate folder, source folder) of each workspace crate.
const CRATES: [&str; 5] = [
    "src",
    "config/src",
    "actors/src",
    "material/src",
    "emulator/src",
];

type Module = (usize, Vec<String>);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file relative to its crate's source folder.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The source without comments and without an inline test module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `<prefix>::a::b::…` path in `code`, as its segments after the prefix.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{prefix}::");
    let mut from = 0;
    while let Some(i) = code[from..].find(&needle) {
        let at = from + i;
        from = at + needle.len();
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| is_ident(c) || c == ':')
        {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c}`: each item of the group (one level is enough here).
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_owned())
                    .take_while(|s| !s.is_empty() && s.chars().all(is_ident))
                    .collect();
                out.push(segs);
            }
            continue;
        }
        if rest.starts_with('*') {
            out.push(Vec::new());
            continue;
        }
        let segs: Vec<String> = rest
            .split("::")
            .map(|s| s.chars().take_while(|c| is_ident(*c)).collect::<String>())
            .scan(true, |go, s| {
                let keep = *go && !s.is_empty();
                *go = keep;
                keep.then_some(s)
            })
            .collect();
        out.push(segs);
    }
    out
}

struct Graph {
    modules: BTreeMap<Module, PathBuf>,
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

fn graph() -> Graph {
    let mut modules = BTreeMap::new();
    for (c, dir) in CRATES.iter().enumerate() {
        let dir = root().join(dir);
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for f in files {
            let rel = f.strip_prefix(&dir).unwrap().to_owned();
            if rel
                .file_name()
                .is_some_and(|n| n == "tests.rs" || n == "main.rs")
            {
                continue;
            }
            modules.insert((c, module_of(&rel)), f);
        }
    }
    let resolve = |c: usize, parts: &[String]| -> Option<Module> {
        (0..=parts.len())
            .rev()
            .map(|n| (c, parts[..n].to_vec()))
            .find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for ((c, m), path) in &modules {
        let code = code_of(path);
        let me = (*c, m.clone());
        let parent: Vec<String> = m[..m.len().saturating_sub(1)].to_vec();
        let mut targets = Vec::new();
        for segs in paths_after(&code, "crate") {
            targets.push(segs);
        }
        for segs in paths_after(&code, "super") {
            targets.push(parent.iter().cloned().chain(segs).collect());
        }
        for segs in paths_after(&code, "self") {
            targets.push(m.iter().cloned().chain(segs).collect());
        }
        // A parent using its child: `child::item`.
        for (cc, child) in modules.keys() {
            if cc == c && child.len() == m.len() + 1 && child.starts_with(m) {
                let name = &child[m.len()];
                if !paths_after(&code, name).is_empty() {
                    targets.push(child.clone());
                }
            }
        }
        for t in targets {
            if let Some(to) = resolve(*c, &t)
                && to != me
            {
                edges.entry(me.clone()).or_default().insert(to);
            }
        }
    }
    Graph { modules, edges }
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<Module>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit(t: &mut T<'_>, v: &Module) {
        t.index.insert(v.clone(), t.next);
        t.low.insert(v.clone(), t.next);
        t.next += 1;
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        let next: Vec<Module> = t.g.edges.get(v).into_iter().flatten().cloned().collect();
        for w in next {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let l = t.low[&w].min(t.low[v]);
                t.low.insert(v.clone(), l);
            } else if t.on.contains(&w) {
                let l = t.index[&w].min(t.low[v]);
                t.low.insert(v.clone(), l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for m in g.modules.keys() {
        if !t.index.contains_key(m) {
            visit(&mut t, m);
        }
    }
    t.out
}

#[test]
fn no_two_files_import_each_other() {
    let g = graph();
    assert!(g.modules.len() > 60, "{} files read", g.modules.len());
    let found: Vec<Vec<String>> = cycles(&g)
        .into_iter()
        .map(|c| {
            c.iter()
                .map(|m| g.modules[m].display().to_string())
                .collect()
        })
        .collect();
    assert!(found.is_empty(), "import circles: {found:#?}");
}

#[test]
fn the_circle_check_finds_a_parent_and_child_that_import_each_other() {
    // The check itself: a parent using its child and the child using the parent's item.
    let parent = "mod child;\nfn f() { child::g(); }\npub struct P;";
    let child = "use super::P;\npub fn g() {}";
    assert_eq!(paths_after(parent, "child"), [vec!["g".to_owned()]]);
    assert_eq!(paths_after(child, "super"), [vec!["P".to_owned()]]);
    assert_eq!(
        paths_after("use super::*;", "super"),
        [Vec::<String>::new()]
    );
    assert_eq!(
        paths_after("use crate::{a::B, c};", "crate"),
        [vec!["a".to_owned(), "B".to_owned()], vec!["c".to_owned()]]
    );
}

/// Files (relative to the workspace) whose code mentions `needle`.
fn files_mentioning(dirs: &[&str], needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for f in files {
            if code_of(&f).contains(needle) {
                out.push(f.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn metrics_are_known_only_inside_observe() {
    let outside: Vec<String> = files_mentioning(&["src"], "Metrics")
        .into_iter()
        .filter(|f| !f.starts_with("src/observe/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn the_settings_are_parsed_only_by_the_one_reader() {
    assert_eq!(
        files_mentioning(&["src"], "akv_sync_config::parse("),
        ["src/cli/settings_file.rs"]
    );
    assert_eq!(
        files_mentioning(&["src"], "akv_sync_config::decode("),
        ["src/cli/settings_file.rs"]
    );
}

#[test]
fn store_names_and_certificate_ids_are_formatted_only_in_the_layout_module() {
    let dirs = ["src", "actors/src", "config/src"];
    for needle in [
        "split_once('/')",
        "\"{}/{}\"",
        "\"{}.{}\"",
        "{vault}.{name}",
        "{stem}.",
    ] {
        let found: Vec<String> = files_mentioning(&dirs, needle)
            .into_iter()
            .filter(|f| f != "config/src/layout.rs")
            .collect();
        assert!(found.is_empty(), "{needle}: {found:?}");
    }
}
