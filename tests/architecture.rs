//! The shape of the code, checked: no module of src/ depends on one that
//! depends back on it, at the level of files. A dependency is any path a
//! file names into another: `crate::a::b`, `super::x`, or a child module
//! by its own name (`local::Local` in rooms/mod.rs). `mod x;` alone is
//! not one. The check reads the source as text; see ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module path (`rooms::state`, "" for the crate root) → its source.
fn modules() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    walk(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &[],
        &mut found,
    );
    found
}

fn walk(dir: &Path, prefix: &[String], found: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(stem);
            walk(&path, &inner, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if prefix.is_empty() && stem == "main" {
                continue; // the binary, not the library
            }
            let mut module = prefix.to_vec();
            if stem != "mod" && stem != "lib" {
                module.push(stem);
            }
            let code = fs::read_to_string(&path).unwrap();
            // A file's unit tests (its last item, by habit here) are not
            // part of its dependencies, and their `super` is the file.
            let tests = code.match_indices("#[cfg(test)]\n").find(|(at, attr)| {
                let next = code[at + attr.len()..].lines().next().unwrap_or("");
                next.ends_with("mod tests {")
            });
            let code = match tests {
                Some((at, _)) => code[..at].to_string(),
                None => code,
            };
            found.insert(module.join("::"), code);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `a::b::c` path in `code` (comments left out), as segments; a
/// `{x, y::z}` group gives one path per item.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let starts =
                is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':'));
            if starts {
                let (path, end) = read_path(&chars, i);
                found.extend(path);
                i = end.max(i + 1);
            } else {
                i += 1;
            }
        }
    }
    found.retain(|p: &Vec<String>| p.len() > 1);
    found
}

/// The path starting at `start`, expanded over one level of `{...}`.
fn read_path(chars: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let begin = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        segments.push(chars[begin..i].iter().collect::<String>());
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
            if chars.get(i) == Some(&'{') {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == '}')
                    .map_or(chars.len(), |p| i + p);
                let group: String = chars[i + 1..close].iter().collect();
                let expanded = group
                    .split(',')
                    .map(|item| {
                        let mut path = segments.clone();
                        path.extend(item.trim().split("::").map(|s| s.trim().to_string()));
                        path
                    })
                    .collect();
                return (expanded, close + 1);
            }
            continue;
        }
        return (vec![segments], i);
    }
}

/// Which module a path from `from` lands in, if it is one of ours.
fn resolve(from: &str, path: &[String], known: &BTreeMap<String, String>) -> Option<String> {
    let mut base: Vec<String> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").map(String::from).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some("self") => rest = &rest[1..],
        // A child module named by itself.
        Some(first) => {
            let mut child = base.clone();
            child.push(first.to_string());
            if !known.contains_key(&child.join("::")) {
                return None;
            }
        }
        None => return None,
    }
    let mut target = base;
    let mut best = None;
    for segment in rest {
        target.push(segment.clone());
        if known.contains_key(&target.join("::")) {
            best = Some(target.join("::"));
        } else {
            break;
        }
    }
    best.or_else(|| {
        (!target.is_empty())
            .then(|| target[..target.len() - 1].join("::"))
            .filter(|m| known.contains_key(m))
    })
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    let mut graph = BTreeMap::new();
    for (module, code) in &known {
        let mut deps = BTreeSet::new();
        for path in paths(code) {
            if let Some(target) = resolve(module, &path, &known) {
                if &target != module {
                    deps.insert(target);
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// A cycle through `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, done, stack) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_module_depends_on_one_that_depends_back_on_it() {
    let graph = dependencies();
    // The root only declares modules and re-exports; every file names it
    // implicitly, so it is no dependency.
    let graph: BTreeMap<_, BTreeSet<_>> = graph
        .into_iter()
        .filter(|(module, _)| !module.is_empty())
        .map(|(module, deps)| (module, deps.into_iter().filter(|d| !d.is_empty()).collect()))
        .collect();
    if let Some(found) = cycle(&graph) {
        panic!("import cycle: {}", found.join(" -> "));
    }
}

#[test]
fn the_graph_sees_dependencies_of_every_form() {
    let graph = dependencies();
    let depends = |from: &str, on: &str| graph[from].contains(on);
    assert!(depends("rooms", "rooms::local"), "a child by its own name");
    assert!(depends("rooms::local", "rooms::state"), "super::");
    assert!(depends("stream", "rooms"), "crate:: into a folder's mod.rs");
    assert!(depends("rooms::state", "rooms::admission"), "a {{group}}");
    assert!(
        !depends("rooms::admission", "rooms"),
        "unit tests are left out"
    );
}

#[test]
fn the_check_finds_a_cycle_and_names_its_files() {
    // Guard against a check that cannot fail: a made-up pair that name
    // each other, by `super::` and by child name.
    let mut known = BTreeMap::new();
    known.insert("rooms".to_string(), String::new());
    known.insert("rooms::local".to_string(), String::new());
    let parent = resolve("rooms", &["local".into(), "Local".into()], &known);
    let child = resolve(
        "rooms::local",
        &["super".into(), "RoomError".into()],
        &known,
    );
    assert_eq!(parent.as_deref(), Some("rooms::local"));
    assert_eq!(child.as_deref(), Some("rooms"));
    let graph = BTreeMap::from([
        (
            "rooms".to_string(),
            BTreeSet::from(["rooms::local".to_string()]),
        ),
        (
            "rooms::local".to_string(),
            BTreeSet::from(["rooms".to_string()]),
        ),
    ]);
    assert!(cycle(&graph).is_some());
    let paths = paths(
        "use crate::rooms::{state::Rooms, Registry};\nlet x = local::Local::open(); // crate::nope",
    );
    assert!(paths.contains(&vec![
        "crate".into(),
        "rooms".into(),
        "state".into(),
        "Rooms".into()
    ]));
    assert!(paths.contains(&vec!["local".into(), "Local".into(), "open".into()]));
    assert!(!paths.iter().any(|p| p.contains(&"nope".to_string())));
}
