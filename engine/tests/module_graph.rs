//! The engine's modules import each other without cycles: handlers call
//! into the shard's state core, never the other way round (issue #12). This
//! reads engine/src and fails naming the cycle when one appears.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules `src` names through `crate::m` or `crate::{m, ...}` paths,
/// outside comments and the unit-test module.
fn imports(src: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = src
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|n| n.trim().split("::").next().unwrap_or_default())
                .collect(),
            None => vec![rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()],
        };
        found.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(*n))
                .map(str::to_string),
        );
    }
    found
}

fn engine_graph() -> Graph {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            sources.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(m, src)| {
            let mut deps = imports(src, &modules);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect()
}

/// One import cycle of `g`, as the modules along it, if there is any.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &Graph,
        m: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|p| p == m).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(m.to_string(), Mark::Open);
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(m.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut marks, &mut Vec::new()))
}

#[test]
fn engine_modules_import_each_other_without_cycles() {
    let g = engine_graph();
    assert!(g.len() > 20, "read only {} modules", g.len());
    // the reader sees real imports: the state core uses the stream types
    assert!(g["shard"].contains("stream"), "{:?}", g["shard"]);
    assert!(g["tasks"].contains("forward"), "{:?}", g["tasks"]);
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle in engine/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_state_core_imports_no_connection_handler() {
    let g = engine_graph();
    for handler in ["rtmp", "http", "api", "forward", "upstream", "hls", "tasks"] {
        assert!(
            !g["shard"].contains(handler),
            "shard imports {handler}: {:?}",
            g["shard"]
        );
    }
}

#[test]
fn the_checker_finds_a_cycle_and_reads_groups() {
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let src = "use crate::{b::X, c};\n// crate::a in a comment\nfn f() { crate::b::g() }\n";
    let found = imports(src, &modules);
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["b", "c"]);
    let mut g = Graph::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.get_mut("c").unwrap().insert("a".into());
    assert_eq!(
        find_cycle(&g).unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
}
