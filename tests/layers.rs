//! The architecture, enforced: every import in the engine points down its layers
//! (docs/ARCHITECTURE.md), no two files of a layer import each other in a circle, the bbolt
//! reader uses only the crate's public re-exports, and fault-injection's modules form no
//! circle either.
//!
//! An import is any `crate::a::b` or `super::b` path outside a comment, in a `use` or in the
//! code. The test reads the source files, so it fails the moment someone writes an upward
//! import, not when the design review next looks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The engine's layers, lowest first. A module may import its own layer's files (acyclically)
/// and any layer with a lower rank.
const LAYERS: &[(&str, u32)] = &[
    ("limits", 0),
    ("planted", 0),
    // Unit tests only: the seeded generator they share.
    ("testutil", 0),
    ("error", 1),
    ("storage", 2),
    ("format", 3),
    ("store", 4),
    ("tx", 5),
    ("cursor", 6),
    ("bucket", 7),
    ("batch", 8),
    ("db", 9),
    ("ops", 10),
    ("bolt", 11),
    ("fuzzing", 12),
];

/// Layers built on the public API only: they may name what lib.rs re-exports and the public
/// modules, nothing private.
const PUBLIC_API_ONLY: &[&str] = &["bolt", "fuzzing"];
const PUBLIC_MODULES: &[&str] = &["bolt", "error", "storage"];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file below `root` (`src/tx/commit.rs` -> ["tx", "commit"];
/// `src/tx/mod.rs` -> ["tx"]; `src/lib.rs` -> []).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Code lines of a file, comments removed (doc links such as [`crate::Db`] are not imports).
/// A line inside an inline module (`mod tests { ... }`) has its `super::` rewritten to
/// `self::`, since there `super` is the file's own module.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut inline: Vec<usize> = Vec::new(); // indents of the open inline modules
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let code = match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        };
        if code.trim().is_empty() {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        if inline
            .last()
            .is_some_and(|&d| indent <= d && code.trim_start().starts_with('}'))
        {
            inline.pop();
            continue;
        }
        let t = code.trim();
        let is_mod =
            t.starts_with("mod ") || t.starts_with("pub mod ") || t.starts_with("pub(crate) mod ");
        if is_mod && t.ends_with('{') {
            inline.push(indent);
            continue;
        }
        let code = if inline.is_empty() {
            code.to_string()
        } else {
            code.replacen("super::", "self::", 1)
        };
        out.push((i + 1, code));
    }
    out
}

/// Every path a line names: the segments after each `crate::` (resolved from the crate root)
/// and after each leading `super::` (resolved against `module`). `crate::{a, b}` names the
/// root's re-exports `a` and `b`; `crate::a::{b, c}` names module `a`.
fn paths_in(line: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (start, _) in line.match_indices("crate::") {
        if start > 0 && line[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `$crate::` or a longer identifier
        }
        let rest = &line[start + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let item = item.trim();
                let first = item.split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    out.push(vec![first.to_string()]);
                }
            }
            continue;
        }
        out.push(segments(rest));
    }
    if let Some(at) = line.find("super::") {
        let before = &line[..at];
        if !before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            let mut base: Vec<String> = module.to_vec();
            let mut rest = &line[at..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            base.extend(segments(rest));
            out.push(base);
        }
    }
    out
}

fn segments(rest: &str) -> Vec<String> {
    rest.split("::")
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty())
        .collect()
}

/// A directed graph with a cycle search that returns one cycle, if any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|s| s == n).unwrap();
                let mut cycle = stack[from..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn rank(layer: &str) -> Option<u32> {
    LAYERS.iter().find(|(l, _)| *l == layer).map(|&(_, r)| r)
}

/// The modules that exist under `root` (every file's module path and its prefixes).
fn modules(root: &Path, files: &[PathBuf]) -> BTreeSet<Vec<String>> {
    let mut set = BTreeSet::new();
    for f in files {
        let m = module_of(root, f);
        for i in 0..=m.len() {
            set.insert(m[..i].to_vec());
        }
    }
    set
}

/// The longest prefix of `path` that is a module.
fn module_prefix(path: &[String], mods: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|i| path[..i].to_vec())
        .find(|p| mods.contains(p))
        .unwrap_or_default()
}

#[test]
fn engine_imports_point_down_the_layers_and_name_the_defining_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let errors = layer_errors(&root);
    assert!(errors.is_empty(), "\n{}\n", errors.join("\n"));
}

/// Every violation of the layer rules in the source tree at `root`.
fn layer_errors(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rs_files(root, &mut files);
    files.sort();
    let mods = modules(root, &files);
    let mut errors = Vec::new();
    // File-level edges inside one layer: (layer, from file, to file).
    let mut inner: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let module = module_of(root, f);
        let Some(layer) = module.first() else {
            continue; // lib.rs: the re-exports
        };
        let own = rank(layer).unwrap_or_else(|| {
            panic!(
                "{}: module `{layer}` is in no layer of tests/layers.rs",
                f.display()
            )
        });
        let is_facade = f.ends_with("mod.rs");
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            for path in paths_in(&line, &module) {
                let target = module_prefix(&path, &mods);
                let at = format!("{}:{n}: {}", f.display(), line.trim());
                if PUBLIC_API_ONLY.contains(&layer.as_str()) {
                    let ok = target.is_empty()
                        || target.first() == Some(layer)
                        || PUBLIC_MODULES.contains(&target[0].as_str());
                    if !ok {
                        errors.push(format!("{at}\n  `{layer}` must use the public API only"));
                    }
                    continue;
                }
                let Some(to) = target.first() else {
                    errors.push(format!(
                        "{at}\n  imports a crate-root re-export: name the module that defines it"
                    ));
                    continue;
                };
                let to_rank = rank(to).unwrap_or(u32::MAX);
                if to == layer {
                    // Inside a layer: file to file (a folder's mod.rs only declares and
                    // re-exports, so its edges to its own files are not imports).
                    if let (Some(a), Some(b)) = (module.get(1), target.get(1)) {
                        if a != b && !is_facade {
                            inner
                                .entry(layer.clone())
                                .or_default()
                                .entry(a.clone())
                                .or_default()
                                .insert(b.clone());
                        }
                    }
                } else if to_rank > own {
                    errors.push(format!(
                        "{at}\n  `{layer}` (rank {own}) imports `{to}` (rank {to_rank}), a higher layer"
                    ));
                } else if to_rank == own {
                    errors.push(format!(
                        "{at}\n  `{layer}` imports `{to}` of the same rank: give one a lower rank"
                    ));
                }
            }
        }
    }
    for (layer, edges) in &inner {
        if let Some(c) = find_cycle(edges) {
            errors.push(format!(
                "layer `{layer}`: files import in a circle: {}",
                c.join(" -> ")
            ));
        }
    }
    errors
}

#[test]
fn every_engine_module_is_in_a_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter_map(|f| module_of(&root, f).first().cloned())
        .filter(|m| rank(m).is_none())
        .collect();
    assert!(missing.is_empty(), "modules in no layer: {missing:?}");
}

#[test]
fn fault_injection_modules_import_each_other_without_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fault-injection/src");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    files.sort();
    let mods = modules(&root, &files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = module_of(&root, f);
        // A folder is one module; its own files are checked below.
        let Some(from) = module.first() else { continue };
        let text = fs::read_to_string(f).unwrap();
        for (_, line) in code_lines(&text) {
            for path in paths_in(&line, &module) {
                let target = module_prefix(&path, &mods);
                match target.first() {
                    Some(to) if to != from => {
                        edges.entry(from.clone()).or_default().insert(to.clone());
                    }
                    _ => {}
                }
            }
        }
        edges.entry(from.clone()).or_default();
    }
    let cycle = find_cycle(&edges);
    assert!(
        cycle.is_none(),
        "fault-injection modules import in a circle: {}",
        cycle.unwrap_or_default().join(" -> ")
    );
}

/// The test can fail: an upward import and a circle are both found in a made-up graph.
#[test]
fn the_checker_finds_a_circle_and_parses_paths() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert!(find_cycle(&edges).is_none());
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    let m = vec!["tx".to_string(), "commit".to_string()];
    assert_eq!(
        paths_in("use crate::store::{Snapshot, Store};", &m),
        [["store".to_string()]]
    );
    assert_eq!(
        paths_in("    let x = super::node::Node::Leaf;", &m),
        [vec![
            "tx".to_string(),
            "node".into(),
            "Node".into(),
            "Leaf".into()
        ]]
    );
    assert_eq!(
        paths_in("use crate::{Db, Tx};", &m),
        [["Db".to_string()], ["Tx".to_string()]]
    );
    // Comments (doc links included) are not imports.
    let code = code_lines("/// [`crate::db::Db`]\nuse std::io; // crate::db::Db\n");
    assert_eq!(code.len(), 1);
    assert!(paths_in(&code[0].1, &m).is_empty());
}

/// The rules can fail: a made-up source tree with one violation of each kind.
#[test]
fn an_upward_import_a_circle_a_root_import_and_a_private_bolt_import_are_each_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let files: &[(&str, &str)] = &[
        ("lib.rs", "pub use db::Db;\n"),
        ("tx/mod.rs", "mod a;\nmod b;\nmod c;\n"),
        ("tx/a.rs", "use crate::db::Db; // upward\n"),
        ("tx/b.rs", "use crate::tx::c::C;\n"),
        (
            "tx/c.rs",
            "use super::b::B;\n/// [`crate::db::Db`] in a comment is fine\n",
        ),
        ("db.rs", "use crate::Db;\nuse crate::tx::a::A;\n"),
        (
            "bolt/mod.rs",
            "use crate::tx::a::A;\nuse crate::{Db, Error};\n",
        ),
        (
            "cursor.rs",
            "mod tests {\n    use super::*;\n    use crate::db::Db;\n}\n",
        ),
    ];
    for (name, text) in files {
        let p = src.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let errors = layer_errors(src);
    let has = |file: &str, what: &str| {
        errors
            .iter()
            .any(|e| e.contains(&format!("{file}:")) && e.contains(what))
    };
    assert!(has("tx/a.rs", "a higher layer"), "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains("circle: b -> c -> b")),
        "{errors:#?}"
    );
    assert!(has("db.rs", "crate-root re-export"), "{errors:#?}");
    assert!(has("bolt/mod.rs", "public API only"), "{errors:#?}");
    // Test modules are held to the same rule as the file they sit in.
    assert!(has("cursor.rs", "a higher layer"), "{errors:#?}");
    assert_eq!(errors.len(), 5, "{errors:#?}");
}
