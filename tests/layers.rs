//! Tidy-style architecture checks (like rust-analyzer's `tidy.rs`), read from the source text
//! alone: the agent's top-level modules keep to their layers, no crate has an import cycle
//! between sibling modules, and Cargo.lock keeps the crate arrows pointing one way.
//!
//! Text, not a parser: comments and literals are blanked, `#[cfg(test)]` items dropped (tests
//! may use any layer), then `use` trees and inline `crate::`/`super::`/`self::`/`child::` paths
//! are resolved to modules, following `use` bindings so that a parent's re-export leads to the
//! module that defines the item.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// The agent's top-level modules, bottom layer first: a module uses its own layer or lower ones.
const LAYERS: &[&[&str]] = &[
    &["error", "clock", "stats"],
    &["transport"],
    &["session"],
    &["drivers"],
    &["config", "store"],
    &["analysis", "report"],
    &["custody"],
    &["supervisor"],
    &["sequence"],
    &["sealing", "control", "upload"],
    &["daemon"],
    &["cli"],
];

/// The coordinator's modules, bottom layer first: storage (embedded, and PostgreSQL and S3 on a
/// runtime of their own) under the log, the log under the intake, the intake under the HTTP server.
const COORDINATOR_LAYERS: &[&[&str]] = &[
    &["runtime"],
    &["config", "blobs", "index", "blobs_s3", "index_pg"],
    &["log"],
    &["intake", "check"],
    &["server"],
];

/// Packages the coordinator must never reach: it receives bundles, it drives no instrument.
const COORDINATOR_NEVER: &str = "tokio-serial serialport scpi nix clap tsagent tsagent-sim";

/// Packages tsagent-bundle must never reach: a coordinator needs the bundle format alone.
const BUNDLE_NEVER: &str = "tokio tokio-serial serialport rusqlite scpi nix clap \
                            tsagent tsagent-sim";

/// Packages tsagent-sim must never reach: the simulators are the agent's oracle, not part of it.
const SIM_NEVER: &str = "tsagent tsagent-bundle";

/// A module as its path from the crate root (empty for the root itself).
type ModPath = Vec<String>;

/// One scanned file: its module, its name in messages, the paths it refers to with their lines.
struct SourceFile {
    module: ModPath,
    shown: String,
    refs: Vec<(usize, ModPath)>,
}

/// A crate as read from its text.
#[derive(Default)]
struct Crate {
    files: Vec<SourceFile>,
    /// Every module that has a file, and their ancestors.
    modules: BTreeSet<ModPath>,
    /// Modules declared `#[cfg(test)] mod x;`: not scanned, and references into them ignored.
    test_only: BTreeSet<ModPath>,
    /// The names each module brings in with `use`, to the absolute paths they stand for.
    bindings: BTreeMap<(ModPath, String), ModPath>,
    /// Each module's (first) `pub use x::*`: where names found nowhere else are looked for.
    globs: BTreeMap<ModPath, ModPath>,
}

/// One leaf of a `use` tree: the path as written and the name it binds (None for a glob).
type UseLeaf = (Vec<String>, Option<String>);

/// True for bytes of identifiers (and of numbers, which never precede `::`).
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The module `name` under `parent`.
fn child(parent: &[String], name: &str) -> ModPath {
    [parent, &[name.to_owned()]].concat()
}

/// A file's module from its path under src: `a/b.rs` → a::b, `a/mod.rs` → a, `lib.rs` → root.
fn module_of(rel: &Path) -> ModPath {
    let mut parts: ModPath = rel.iter().map(|p| p.to_string_lossy().into()).collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && (stem == "lib" || stem == "main")) {
        parts.push(stem.to_owned());
    }
    parts
}

/// All `.rs` files under `dir`, recursively.
fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Replaces every byte but newlines with a space, so offsets keep their lines.
fn blank(bytes: &mut [u8]) {
    for c in bytes.iter_mut().filter(|c| **c != b'\n') {
        *c = b' ';
    }
}

/// Blanks comments (nested, doc), strings (byte, raw) and char literals; lifetimes stay.
fn blank_noise(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        match noise_end(b, i) {
            Some(end) => {
                blank(&mut out[i..end]);
                i = end;
            }
            None => i += 1,
        }
    }
    utf8(out)
}

/// Text again after blanking, which only ever replaces whole characters.
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("blanked ranges start and end at ASCII")
}

/// End of the comment or literal starting at `i`, if one does (`'a` starts a lifetime, not one).
fn noise_end(b: &[u8], i: usize) -> Option<usize> {
    let rest = &b[i..];
    if rest.starts_with(b"//") {
        let len = rest.iter().take_while(|&&c| c != b'\n').count();
        return Some(i + len);
    }
    if rest.starts_with(b"/*") {
        let (mut depth, mut j) = (0, i);
        while j + 1 < b.len() {
            depth += match &b[j..j + 2] {
                b"/*" => 1,
                b"*/" => -1,
                _ => {
                    j += 1;
                    continue;
                }
            };
            j += 2;
            if depth == 0 {
                return Some(j);
            }
        }
        return Some(b.len());
    }
    // A prefix (`b`, `r`, `br`, `r#`…) must start a token: `bar"` is no raw string.
    let starts = i == 0 || !is_ident(b[i - 1]);
    match rest[0] {
        b'"' => Some(string_end(b, i + 1, None)),
        b'b' | b'c' if starts && rest.get(1) == Some(&b'r') => raw_end(b, i + 1),
        b'r' if starts => raw_end(b, i),
        b'\'' if rest.get(1) == Some(&b'\\') => {
            // `'\n'`, `'\''`, `'\u{1F600}'`: the closing quote comes after the escaped byte.
            let close = rest.iter().skip(3).take(10).position(|&c| c == b'\'')?;
            Some(i + 4 + close)
        }
        b'\'' => {
            let len = rest.get(1)?.leading_ones().max(1) as usize; // one UTF-8 character
            (rest.get(1 + len) == Some(&b'\'')).then_some(i + 2 + len)
        }
        _ => None,
    }
}

/// End of the raw string `r#…"…"#…` whose `r` is at `i`, or None when it is none.
fn raw_end(b: &[u8], i: usize) -> Option<usize> {
    let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
    (b.get(i + 1 + hashes) == Some(&b'"')).then(|| string_end(b, i + 2 + hashes, Some(hashes)))
}

/// End of a string whose body starts at `i`: escaped, or raw closed by `"` and `raw` hashes.
fn string_end(b: &[u8], mut i: usize, raw: Option<usize>) -> usize {
    while i < b.len() {
        match (b[i], raw) {
            (b'\\', None) => i += 1,
            (b'"', None) => return i + 1,
            (b'"', Some(n)) if i + n < b.len() && b[i + 1..=i + n].iter().all(|&c| c == b'#') => {
                return i + 1 + n;
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// End of the item from `i` on: after its `;` or its block at depth 0 (attributes and all), or
/// before an unmatched closing bracket (an attribute on a last field or arm).
fn item_end(b: &[u8], i: usize) -> usize {
    let mut depth = 0;
    for (j, &c) in b.iter().enumerate().skip(i) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return j,
            b'}' if depth == 1 => return j + 1,
            b')' | b']' | b'}' => depth -= 1,
            b';' if depth == 0 => return j + 1,
            _ => {}
        }
    }
    b.len()
}

/// Blanks each `#[cfg(test)]` item; returns the text and the test-only `mod x;` it declares.
fn strip_tests(text: &str) -> (String, Vec<String>) {
    let mut out = text.as_bytes().to_vec();
    let mut test_mods = Vec::new();
    for (at, attr) in text.match_indices("#[cfg(test)]") {
        let end = item_end(text.as_bytes(), at + attr.len());
        test_mods.extend(declared_mod(&text[at + attr.len()..end]));
        blank(&mut out[at..end]);
    }
    (utf8(out), test_mods)
}

/// The `x` of an item `mod x;` (with any visibility and after any attributes).
fn declared_mod(item: &str) -> Option<String> {
    let item = item.rsplit_once(']').map_or(item, |(_, after)| after);
    let words: Vec<&str> = item.split_whitespace().collect();
    let visible = words.len() == 2 || (words.len() == 3 && words[0].starts_with("pub"));
    match words[..] {
        [.., "mod", name] if visible => name.strip_suffix(';').map(str::to_owned),
        _ => None,
    }
}

/// Finds each `use` declaration, expands its tree and blanks it out of the returned text;
/// each leaf comes with the offset of its `use` and whether that is a `pub` (re-export) one.
fn take_uses(text: &str) -> (String, Vec<(usize, UseLeaf, bool)>) {
    let mut out = text.as_bytes().to_vec();
    let mut items = Vec::new();
    for (at, _) in text.match_indices("use ") {
        let end = at + text[at..].find(';').unwrap_or(text.len() - at);
        if at > 0 && is_ident(text.as_bytes()[at - 1]) {
            continue;
        }
        // `pub use`, `pub(crate) use`: only a re-exported glob is a place to look names up.
        let before = text[..at].trim_end();
        let vis = before.strip_suffix(')').and_then(|v| v.rsplit_once('('));
        let public = vis.map_or(before, |(v, _)| v).ends_with("pub");
        let mut tree = text[at + 4..end].replace("::", " ");
        for c in ["{", "}", ",", "*"] {
            tree = tree.replace(c, &format!(" {c} "));
        }
        items.extend(expand_use(&tree).into_iter().map(|leaf| (at, leaf, public)));
        blank(&mut out[at..end]);
    }
    (utf8(out), items)
}

/// Expands a use tree split into words (`super { a , b { C , D as E } , self }`) into leaves.
fn expand_use(tree: &str) -> Vec<UseLeaf> {
    // `bases` holds the path length where each open `{` group starts.
    let (mut leaves, mut path, mut bases, mut alias) = (Vec::new(), Vec::new(), vec![0], None);
    let mut words = tree.split_whitespace().chain([","]);
    while let Some(word) = words.next() {
        let base = bases.last().copied().unwrap_or(0);
        match word {
            "{" => bases.push(path.len()),
            "*" => {
                leaves.push((path.clone(), None));
                path.truncate(base);
            }
            "as" => alias = words.next().map(str::to_owned),
            "," | "}" => {
                if path.len() > base {
                    let mut leaf = path.clone();
                    if leaf.last().is_some_and(|s| s == "self") {
                        leaf.pop();
                    }
                    let name = alias.take().or_else(|| leaf.last().cloned());
                    leaves.push((leaf, name));
                }
                if word == "}" {
                    bases.pop();
                }
                path.truncate(bases.last().copied().unwrap_or(0));
            }
            segment => path.push(segment.to_owned()),
        }
    }
    leaves
}

/// Inline paths whose first segment passes `starts`, not preceded by `::` or `$`, with offsets.
fn inline_paths(text: &str, starts: impl Fn(&str) -> bool) -> Vec<(usize, Vec<String>)> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || (i >= 2 && &b[i - 2..i] == b"::") || (i > 0 && b[i - 1] == b'$') {
            i += 1;
            continue;
        }
        let (start, mut segments) = (i, Vec::new());
        loop {
            let len = b[i..].iter().take_while(|&&c| is_ident(c)).count();
            segments.push(text[i..i + len].to_owned());
            i += len;
            if !(b[i..].starts_with(b"::") && b.get(i + 2).is_some_and(|&c| is_ident(c))) {
                break;
            }
            i += 2;
        }
        if segments.len() > 1 && starts(&segments[0]) {
            found.push((start, segments));
        }
    }
    found
}

/// Makes a written path absolute from `module`; None when it leaves the crate (std, deps).
fn absolute(module: &[String], written: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let (first, mut rest) = written.split_first()?;
    let mut base = module.to_vec();
    match first.as_str() {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop()?;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        // 2018-style: a path may start at a child module of the current one.
        name if modules.contains(&child(module, name)) => base.push(name.to_owned()),
        _ => return None,
    }
    Some([base.as_slice(), rest].concat())
}

/// Reads every `.rs` file under `repo/src_dir`: modules, bindings and references.
fn read_crate(repo: &Path, src_dir: &str) -> Crate {
    let root = repo.join(src_dir);
    let mut paths = Vec::new();
    collect_rs(&root, &mut paths);
    paths.sort();
    // First the whole module tree, which relative paths and test-only subtrees need.
    let mut krate = Crate::default();
    let mut texts = Vec::new();
    for path in paths {
        let rel = path.strip_prefix(&root).unwrap();
        let module = module_of(rel);
        let (text, test_mods) = strip_tests(&blank_noise(&fs::read_to_string(&path).unwrap()));
        krate
            .test_only
            .extend(test_mods.iter().map(|name| child(&module, name)));
        for k in 0..=module.len() {
            krate.modules.insert(module[..k].to_vec());
        }
        let shown = format!("{src_dir}/{}", rel.to_string_lossy().replace('\\', "/"));
        texts.push((module, shown, text));
    }
    let in_tests = |m: &ModPath| (0..=m.len()).any(|k| krate.test_only.contains(&m[..k]));
    texts.retain(|(module, ..)| !in_tests(module));
    krate.modules.retain(|m| !in_tests(m));
    // Then `use` trees (each leaf also binds a name) and the inline paths left in the code.
    for (module, shown, text) in texts {
        let line = |at: usize| text[..at].matches('\n').count() + 1;
        let (code, uses) = take_uses(&text);
        let mut refs = Vec::new();
        for (at, (written, name), public) in uses {
            let Some(path) = absolute(&module, &written, &krate.modules) else {
                continue;
            };
            if let Some(name) = name {
                krate.bindings.insert((module.clone(), name), path.clone());
            } else if public {
                krate.globs.entry(module.clone()).or_insert(path.clone());
            }
            refs.push((line(at), path));
        }
        let starts = |s: &str| {
            matches!(s, "crate" | "super" | "self") || krate.modules.contains(&child(&module, s))
        };
        for (at, written) in inline_paths(&code, starts) {
            refs.extend(absolute(&module, &written, &krate.modules).map(|path| (line(at), path)));
        }
        refs.sort();
        krate.files.push(SourceFile {
            module,
            shown,
            refs,
        });
    }
    krate
}

impl Crate {
    /// The module an absolute path lands in: its longest prefix that is a module, then through
    /// that module's bindings (and glob re-exports) for the next segment; None in test-only code.
    fn resolve(&self, path: &[String], depth: usize) -> Option<ModPath> {
        let is_module = |&k: &usize| self.modules.contains(&path[..k]);
        let (module, rest) = path.split_at((0..=path.len()).rfind(is_module)?);
        let Some(name) = rest.first() else {
            return Some(module.to_vec());
        };
        if self.test_only.contains(&child(module, name)) {
            return None;
        }
        let via = match self.bindings.get(&(module.to_vec(), name.clone())) {
            Some(target) => Some([target, &rest[1..]].concat()),
            None => self.globs.get(module).map(|glob| [glob, rest].concat()),
        };
        // The depth limit stops bindings that (in broken code) lead round in a circle.
        match via {
            Some(via) if depth < 8 => self.resolve(&via, depth + 1),
            _ => Some(module.to_vec()),
        }
    }

    /// Edges between the direct children of `folder`, each with its first example `file:line`.
    fn edges(&self, folder: &[String]) -> BTreeMap<(String, String), String> {
        let below = |m: &[String]| m.len() > folder.len() && m.starts_with(folder);
        let mut edges = BTreeMap::new();
        // The folder's own mod.rs/lib.rs is no node, and references to its items no edge.
        for file in self.files.iter().filter(|f| below(&f.module)) {
            let from = &file.module[folder.len()];
            for (line, path) in &file.refs {
                let Some(target) = self.resolve(path, 0).filter(|t| below(t)) else {
                    continue;
                };
                let to = &target[folder.len()];
                if to != from {
                    let example = format!("{}:{line}", file.shown);
                    edges.entry((from.clone(), to.clone())).or_insert(example);
                }
            }
        }
        edges
    }
}

/// Layer violations and unlisted top-level modules in the crate at `repo/src_dir`, whose layers
/// are `layers`, bottom first.
fn layer_problems(repo: &Path, src_dir: &str, layers: &[&[&str]]) -> Vec<String> {
    let krate = read_crate(repo, src_dir);
    let layer = |name: &str| layers.iter().position(|l| l.contains(&name));
    let mut problems = Vec::new();
    let mut unlisted = BTreeSet::new();
    // lib.rs and main.rs (the root, an empty module path) declare everything: exempt.
    for file in krate.files.iter().filter(|f| !f.module.is_empty()) {
        let top = &file.module[0];
        let Some(own) = layer(top) else {
            if unlisted.insert(top) {
                let shown = &file.shown;
                problems.push(format!(
                    "{shown}: module `{top}` has no layer: add it to LAYERS"
                ));
            }
            continue;
        };
        for (line, path) in &file.refs {
            let Some(used) = krate.resolve(path, 0).and_then(|t| t.first().cloned()) else {
                continue;
            };
            if let Some(theirs) = layer(&used).filter(|&theirs| theirs > own) {
                let at = format!("{}:{line}", file.shown);
                let message = format!(
                    "{at}: `{top}` (layer {own}) uses `{used}` (layer {theirs}), a higher layer"
                );
                if problems.last() != Some(&message) {
                    problems.push(message);
                }
            }
        }
    }
    problems
}

/// Import cycles among sibling modules, in every module folder of the crate at `repo/src_dir`.
fn cycle_problems(repo: &Path, src_dir: &str) -> Vec<String> {
    let krate = read_crate(repo, src_dir);
    let mut problems = Vec::new();
    for folder in &krate.modules {
        let edges = krate.edges(folder);
        let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (from, to) in edges.keys() {
            next.entry(from.as_str()).or_default().push(to.as_str());
        }
        let mut reported = BTreeSet::new();
        for &start in next.keys() {
            // `start`'s strongly connected component: what it reaches that reaches it back.
            let back = |m: &&str| reach(&next, m).contains(&start);
            let component: BTreeSet<&str> = reach(&next, start).into_iter().filter(back).collect();
            if component.len() < 2 || !reported.insert(component.clone()) {
                continue;
            }
            let cycle = shortest_cycle(&next, start);
            let shown = [&[src_dir.to_owned()][..], folder].concat().join("/");
            let mut text = format!("cycle in {shown}: {start}");
            for pair in cycle.windows(2) {
                let example = &edges[&(pair[0].to_owned(), pair[1].to_owned())];
                text += &format!(" → {} ({example})", pair[1]);
            }
            if component.len() + 1 > cycle.len() {
                let all: Vec<&str> = component.into_iter().collect();
                text += &format!(" (component: {})", all.join(", "));
            }
            problems.push(text);
        }
    }
    problems
}

/// The nodes reachable from `start` in one step or more.
fn reach<'a>(next: &BTreeMap<&'a str, Vec<&'a str>>, start: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(at) = stack.pop() {
        for &to in next.get(at).into_iter().flatten() {
            if seen.insert(to) {
                stack.push(to);
            }
        }
    }
    seen
}

/// A shortest cycle through `start` (breadth first), as its nodes with `start` first and last.
fn shortest_cycle<'a>(next: &BTreeMap<&'a str, Vec<&'a str>>, start: &'a str) -> Vec<&'a str> {
    let mut paths = BTreeMap::from([(start, vec![start])]);
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for &to in next.get(at).into_iter().flatten() {
            let path = [paths[at].as_slice(), &[to]].concat();
            if to == start {
                return path;
            }
            if let Entry::Vacant(e) = paths.entry(to) {
                e.insert(path);
                queue.push_back(to);
            }
        }
    }
    vec![start]
}

/// Packages that the dependency closures recorded in a Cargo.lock's text must never contain.
fn lock_problems(lock: &str) -> Vec<String> {
    let lock: toml::Table = lock.parse().expect("Cargo.lock is TOML");
    let mut packages = Vec::new(); // (name, version, dependencies)
    for p in lock["package"].as_array().into_iter().flatten() {
        let deps = p.get("dependencies").and_then(|d| d.as_array());
        let deps: Vec<&str> = deps
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .collect();
        let (name, version) = (p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
        packages.push((name, version, deps));
    }
    // A lock entry names a dependency "name" (one version locked) or "name version (source)".
    let find = |spec: &str| {
        let mut words = spec.split_whitespace();
        let (name, version) = (words.next()?, words.next());
        packages
            .iter()
            .position(|p| p.0 == name && version.is_none_or(|v| p.1 == v))
    };
    let mut problems = Vec::new();
    for (start, never) in [
        ("tsagent-bundle", BUNDLE_NEVER),
        ("tsagent-sim", SIM_NEVER),
        ("tsagent-coordinator", COORDINATOR_NEVER),
    ] {
        let Some(first) = find(start) else {
            problems.push(format!(
                "Cargo.lock has no package `{start}` (is it up to date?)"
            ));
            continue;
        };
        // Breadth first, so the path shown to a forbidden package is a shortest one.
        let mut paths = BTreeMap::from([(first, vec![start])]);
        let mut queue = VecDeque::from([first]);
        while let Some(at) = queue.pop_front() {
            for dep in packages[at].2.iter().filter_map(|spec| find(spec)) {
                let path = [paths[&at].as_slice(), &[packages[dep].0]].concat();
                if let Entry::Vacant(e) = paths.entry(dep) {
                    e.insert(path);
                    queue.push_back(dep);
                }
            }
        }
        for (&found, path) in &paths {
            let name = packages[found].0;
            if never.split_whitespace().any(|n| n == name) {
                problems.push(format!("`{start}` reaches `{name}`: {}", path.join(" → ")));
            }
        }
    }
    problems.dedup();
    problems
}

/// The repository: this package's manifest folder.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails listing every problem, one a line.
fn assert_none(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn agent_layers_hold() {
    assert_none(&layer_problems(repo(), "src", LAYERS));
}

#[test]
fn coordinator_layers_hold() {
    assert_none(&layer_problems(
        repo(),
        "crates/coordinator/src",
        COORDINATOR_LAYERS,
    ));
}

#[test]
fn no_import_cycles() {
    let crates = [
        "src",
        "crates/bundle/src",
        "crates/sim/src",
        "crates/coordinator/src",
    ];
    let problems: Vec<String> = crates
        .iter()
        .flat_map(|src| cycle_problems(repo(), src))
        .collect();
    assert_none(&problems);
}

#[test]
fn crate_arrows_hold() {
    let lock = fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    assert_none(&lock_problems(&lock));
}

// The checker checked, on small crates written to a temporary folder.

/// Writes `files` (path, text) into a fresh temporary folder.
fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

/// Layer problems of a crate with `session` (layer 2) and a `transport/link.rs` (layer 1) as
/// given, beside a test-only `transport/testdev.rs` that uses `session` freely.
fn layers_with_link(link: &str) -> Vec<String> {
    let dir = fixture(&[
        ("src/lib.rs", "pub mod session;\npub mod transport;\n"),
        ("src/session/mod.rs", "pub struct Session;\n"),
        (
            "src/transport/mod.rs",
            "mod link;\n#[cfg(test)]\npub(crate) mod testdev;\n",
        ),
        ("src/transport/testdev.rs", "use crate::session::Session;\n"),
        ("src/transport/link.rs", link),
    ]);
    layer_problems(dir.path(), "src", LAYERS)
}

#[test]
fn checker_flags_a_higher_layer() {
    let problems = layers_with_link("//! Links.\n\nuse crate::session::Session;\n");
    let expected = "src/transport/link.rs:3: `transport` (layer 1) uses `session` (layer 2), \
                    a higher layer";
    assert_eq!(problems, [expected]);
    // An inline path counts as much as a `use`.
    let problems = layers_with_link("fn f<'a>(_: &'a str) {\n    crate::session::Session;\n}\n");
    assert_eq!(problems, [expected.replace(":3:", ":2:")]);
}

#[test]
fn checker_skips_tests_comments_and_strings() {
    let hidden = "#[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use crate::session::Session;\n\
                  fn f() -> char { '}' }\n}\n\
                  // use crate::session::Session;\n\
                  /* crate::session::S /* */ crate::session::S */\n\
                  const A: &str = \"use crate::session::Session; \\\" crate::session::S\";\n\
                  const B: &str = r#\"crate::session::S \" \"#;\n\
                  fn g<'a>(_: &'a str) -> char { '\"' }\n";
    assert_eq!(layers_with_link(hidden), Vec::<String>::new());
    // What follows them is still read, and on the right line.
    let after = format!("{hidden}use crate::session::Session;\n");
    let problems = layers_with_link(&after);
    let at = format!("src/transport/link.rs:{}: ", after.lines().count());
    assert!(
        problems.len() == 1 && problems[0].starts_with(&at),
        "{problems:?}"
    );
}

#[test]
fn checker_wants_every_module_in_the_table() {
    let dir = fixture(&[("src/lib.rs", "pub mod outbox;\n"), ("src/outbox.rs", "")]);
    let expected = "src/outbox.rs: module `outbox` has no layer: add it to LAYERS";
    assert_eq!(layer_problems(dir.path(), "src", LAYERS), [expected]);
}

#[test]
fn checker_flags_sibling_cycles() {
    let dir = fixture(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a.rs", "use super::b::X;\npub struct Y;\n"),
        ("src/b.rs", "use super::a::Y;\npub struct X;\n"),
    ]);
    let expected = "cycle in src: a → b (src/a.rs:1) → a (src/b.rs:1)";
    assert_eq!(cycle_problems(dir.path(), "src"), [expected]);
}

#[test]
fn checker_follows_parent_reexports() {
    let dir = fixture(&[
        ("src/lib.rs", "mod p;\n"),
        ("src/p/mod.rs", "mod a;\nmod b;\npub use b::X;\n"),
        ("src/p/a.rs", "use super::X;\npub struct Y;\n"),
        ("src/p/b.rs", "use super::a::Y;\npub struct X;\n"),
    ]);
    let expected = "cycle in src/p: a → b (src/p/a.rs:1) → a (src/p/b.rs:1)";
    assert_eq!(cycle_problems(dir.path(), "src"), [expected]);
    // The parent's own items and its `mod`/`pub use` lines make no edge.
    let dir = fixture(&[
        ("src/lib.rs", "mod p;\n"),
        (
            "src/p/mod.rs",
            "mod a;\nmod b;\npub use a::Y;\npub use b::X;\npub struct Z;\n",
        ),
        ("src/p/a.rs", "use super::{X, Z};\npub struct Y;\n"),
        ("src/p/b.rs", "use super::Z;\npub struct X;\n"),
    ]);
    assert_eq!(cycle_problems(dir.path(), "src"), Vec::<String>::new());
}

#[test]
fn checker_flags_forbidden_packages() {
    let lock = r#"
        version = 4
        package = [
            { name = "tsagent-bundle", version = "0.1", dependencies = ["middle 1.0.0", "serde"] },
            { name = "tsagent-sim", version = "0.1", dependencies = ["middle 2.0.0"] },
            { name = "tsagent-coordinator", version = "0.1", dependencies = ["tsagent-bundle"] },
            { name = "middle", version = "1.0.0", dependencies = ["tokio"] },
            { name = "middle", version = "2.0.0" },
            { name = "serde", version = "1.0.0" },
            { name = "tokio", version = "1.0.0" },
        ]
    "#;
    let expected = "`tsagent-bundle` reaches `tokio`: tsagent-bundle → middle → tokio";
    assert_eq!(lock_problems(lock), [expected]);
    let clean = lock.replace("\"middle 1.0.0\"", "\"middle 2.0.0\"");
    assert_eq!(lock_problems(&clean), Vec::<String>::new());
}
