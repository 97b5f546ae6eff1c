//! Architecture invariants that ARCHITECTURE.md states, checked so that breaking one fails the
//! build instead of going unnoticed in review:
//!
//! - a crate must not depend on what it must never know ([`FORBIDDEN_DEPENDENCIES`]);
//! - the ledger's state tables are read only inside the ledger (other crates read finalized
//!   snapshots or the role-checked `read` functions);
//! - no two modules of one crate import each other, directly or through others.
//!
//! Each failure names the offending file (and line) so that the fix is obvious.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `(crate, dependencies it must never have)`, in its normal (non-dev, non-build) dependency
/// tree, transitive ones included. Add a line to add an invariant.
const FORBIDDEN_DEPENDENCIES: &[(&str, &[&str])] = &[
    // The statistics protocol knows nothing of the chain, storage or an async runtime: the
    // service crate above it does.
    ("vigil-privstats", &["vigil-ledger", "rusqlite", "tokio"]),
    // The domain model, the contracts and the detector are pure: no runtime, no storage.
    ("vigil-core", &["tokio", "rusqlite", "vigil-ledger"]),
    ("vigil-contracts", &["tokio", "rusqlite", "vigil-ledger"]),
    ("vigil-ecg", &["tokio", "rusqlite", "vigil-ledger"]),
    // The ledger knows nothing of MQTT, the health record, the node or the statistics.
    (
        "vigil-ledger",
        &[
            "rumqttc",
            "rumqttd",
            "rusqlite",
            "vigil-ehr",
            "vigil-gateway",
            "vigil-node",
            "vigil-api",
            "vigil-privstats",
        ],
    ),
    // The statistics service is below the node and its HTTP layer.
    ("vigil-stats-service", &["vigil-node", "vigil-api"]),
    // The node's core never knows its HTTP layer: the binary wires them.
    ("vigil-node", &["vigil-api"]),
    // Notifications know events, not where they come from: no ledger, node, health record
    // or gateway (the node converts its live events), and they serve no HTTP.
    (
        "vigil-notify",
        &[
            "vigil-ledger",
            "vigil-contracts",
            "vigil-ehr",
            "vigil-gateway",
            "vigil-node",
            "vigil-api",
            "axum",
        ],
    ),
    // Certificates know nothing of Vigil: no domain model, no ledger, no MQTT, no HTTP.
    (
        "vigil-tls",
        &[
            "vigil-core",
            "vigil-ledger",
            "vigil-gateway",
            "vigil-node",
            "rumqttc",
            "rumqttd",
            "axum",
            "rusqlite",
        ],
    ),
];

/// Direct dependencies a crate must not declare, for what its tree brings in anyway (axum
/// reaches the node through commonware and rumqttd, but the node itself serves no HTTP).
const FORBIDDEN_DIRECT_DEPENDENCIES: &[(&str, &[&str])] = &[(
    "crates/node",
    &["axum", "tower", "tower-http", "hyper", "tokio-stream"],
)];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// Package names in the normal dependency tree of `package` (itself included).
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "-p", package])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The names in the `[dependencies]` table of a crate's manifest.
fn direct_dependencies(crate_dir: &str) -> BTreeSet<String> {
    let path = workspace_root().join(crate_dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("a crate manifest");
    let manifest: toml::Table = text.parse().expect("a valid manifest");
    manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|table| table.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn crates_do_not_declare_what_they_must_not_use() {
    let mut failures = Vec::new();
    for (crate_dir, forbidden) in FORBIDDEN_DIRECT_DEPENDENCIES {
        let declared = direct_dependencies(crate_dir);
        for name in forbidden.iter().filter(|name| declared.contains(**name)) {
            failures.push(format!("{crate_dir}/Cargo.toml declares {name}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn crates_do_not_depend_on_what_they_must_not_know() {
    let mut failures = Vec::new();
    for (package, forbidden) in FORBIDDEN_DEPENDENCIES {
        let tree = normal_dependencies(package);
        for name in forbidden.iter().filter(|name| tree.contains(**name)) {
            failures.push(format!(
                "crates/{}/Cargo.toml: {package} depends on {name} (see `cargo tree -p {package} -e normal -i {name}`)",
                package.trim_start_matches("vigil-")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The workspace's crate directories (`crates/*`), sorted.
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crates"))
        .expect("crates/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn ledger_tables_are_read_only_inside_the_ledger() {
    // Spelled in two pieces so that this file does not match itself.
    let call = concat!("tables", "()");
    let mut failures = Vec::new();
    for dir in crate_dirs().iter().filter(|d| !d.ends_with("ledger")) {
        for file in rust_files(dir) {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for (number, line) in text.lines().enumerate() {
                if line.contains(call) {
                    failures.push(format!(
                        "{}:{}: {}",
                        relative(&file),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the ledger's state tables are read outside the ledger (use its finalized snapshot or \
         the role-checked `read` functions):\n{}\n",
        failures.join("\n")
    );
}

/// A file's module path inside its crate (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`); `None`
/// for the crate root (`lib.rs`, `main.rs`), which declares and re-exports modules and so is
/// not one of the rooms a cycle is sought between.
fn module_path(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [] => None,
        [only] if only == "lib" || only == "main" => None,
        _ => Some(parts.join("::")),
    }
}

/// The text with `//` comments blanked (doc links such as [`crate::x`] are not imports), line
/// breaks kept so that offsets still give line numbers.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named after each `crate::` in `code`, with the line of each; a group
/// (`crate::{a::X, b::{c::Y, Z}}`) gives one path per item.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("crate::") {
        let start = from + found;
        from = start + "crate::".len();
        // `$crate::` in macros and `vigil_crate::` style names are not this crate's paths.
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        let mut out = Vec::new();
        expand(&code[from..], String::new(), &mut out);
        paths.extend(out.into_iter().map(|p| (p, line)));
    }
    paths
}

/// Reads one path (or group) at the start of `rest`, appending full paths under `prefix`.
fn expand(rest: &str, prefix: String, out: &mut Vec<String>) {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut item_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&group[item_start..i], prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&group[item_start..i], prefix.clone(), out);
                    item_start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident_end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let ident = &rest[..ident_end];
    if ident.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let path = if prefix.is_empty() {
        ident.to_owned()
    } else {
        format!("{prefix}::{ident}")
    };
    match rest[ident_end..].strip_prefix("::") {
        Some(more) => expand(more, path, out),
        None => out.push(path),
    }
}

/// The module a path names or lies in: its longest prefix that is a module of the crate.
fn owning_module<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

/// One `crate::` reference from a module to another: where it is written.
struct Edge {
    file: String,
    line: usize,
    path: String,
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, Edge>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeMap<String, Edge>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, node: &'g str) {
            let next = self.index.len();
            self.index.insert(node, next);
            self.low.insert(node, next);
            self.stack.push(node);
            self.on_stack.insert(node);
            let graph = self.graph;
            for target in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
                let target = target.as_str();
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[node].min(self.low[target]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(target) {
                    let low = self.low[node].min(self.index[target]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.to_owned());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.visit(node);
        }
    }
    tarjan.found
}

/// The import graph of one crate's modules: module → module → the first reference.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, Edge>> {
    let files: Vec<(String, PathBuf)> = rust_files(src)
        .into_iter()
        .filter_map(|file| module_path(src, &file).map(|module| (module, file)))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
    for (module, file) in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let edges = graph.entry(module.clone()).or_default();
        for (path, line) in crate_paths(&without_comments(&text)) {
            let Some(target) = owning_module(&path, &modules) else {
                continue;
            };
            if target != module {
                edges.entry(target.clone()).or_insert_with(|| Edge {
                    file: relative(file),
                    line,
                    path: format!("crate::{path}"),
                });
            }
        }
    }
    graph
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut failures = Vec::new();
    for dir in crate_dirs() {
        let graph = import_graph(&dir.join("src"));
        for component in cycles(&graph) {
            let mut lines = vec![format!(
                "{}: modules {} import each other:",
                relative(&dir),
                component.join(", ")
            )];
            for from in &component {
                for (to, edge) in &graph[from] {
                    if component.contains(to) {
                        lines.push(format!(
                            "  {}:{}: {from} uses {} ({to})",
                            edge.file, edge.line, edge.path
                        ));
                    }
                }
            }
            failures.push(lines.join("\n"));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

/// The checks above must be able to fail: a cycle, a group import and a doc link.
#[test]
fn the_import_parser_sees_groups_and_ignores_comments() {
    let code = without_comments(
        "use crate::{a::X, b::{c::Y, Z}};\n/// [`crate::d`]\nlet v = crate::e::f();\n$crate::g\n",
    );
    let paths: Vec<String> = crate_paths(&code).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["a::X", "b::c::Y", "b::Z", "e::f"]);
    let modules: BTreeSet<String> = ["a", "b", "b::c"].map(String::from).into();
    assert_eq!(
        owning_module("b::c::Y", &modules).map(String::as_str),
        Some("b::c")
    );
    assert_eq!(
        owning_module("b::Z", &modules).map(String::as_str),
        Some("b")
    );
    let edge = || Edge {
        file: String::new(),
        line: 0,
        path: String::new(),
    };
    let mut graph: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
    graph
        .entry("a".into())
        .or_default()
        .insert("b".into(), edge());
    graph
        .entry("b".into())
        .or_default()
        .insert("c".into(), edge());
    graph
        .entry("c".into())
        .or_default()
        .insert("a".into(), edge());
    graph
        .entry("d".into())
        .or_default()
        .insert("a".into(), edge());
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
}
