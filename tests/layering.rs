//! `layering`: the modules of `src/` depend only downwards, in the order `ARCHITECTURE.md`
//! declares. The test reads every source file, finds every path into the crate (`crate::…`,
//! `super::…`, and `gru::…` in the binary), resolves it to the module it names, and fails on
//! any that points up, or sideways between siblings whose order is declared.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The layers, bottom first, each with the declared order of its sub-modules (bottom first).
/// A layer without a sub-order is one unit whose modules may use each other. The binary's
/// modules (`main.rs`, `cli/`) form the top layer, `cli`.
const LAYERS: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("config", &[]),
    ("net", &["tls", "grpc", "redis", "gossip"]),
    ("raft", &[]),
    (
        "services",
        &[
            "metrics", "channel", "auth", "idgen", "spear", "relay", "history", "publish", "stat",
            "ticket",
        ],
    ),
    ("api", &["serve", "http", "grpc", "socketio"]),
    ("node", &[]),
    ("cli", &[]),
];

/// Where a module sits: its layer's rank and, inside a layer with a declared sub-order, the
/// rank of its sub-module (`None` for the layer's own root file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    layer: usize,
    sub: Option<usize>,
}

fn place(module: &[String]) -> Result<Place, String> {
    let top = module.first().map_or("", String::as_str);
    let layer = LAYERS
        .iter()
        .position(|(name, _)| *name == top)
        .ok_or_else(|| format!("`{top}` is not a declared layer"))?;
    let subs = LAYERS[layer].1;
    let sub = match (subs.is_empty(), module.get(1)) {
        (true, _) | (false, None) => None,
        (false, Some(name)) => Some(
            subs.iter()
                .position(|s| s == name)
                .ok_or_else(|| format!("`{top}::{name}` is not in {top}'s declared order"))?,
        ),
    };
    Ok(Place { layer, sub })
}

/// Whether code in `from` may name `to`.
fn allowed(from: Place, to: Place) -> bool {
    if to.layer != from.layer {
        return to.layer < from.layer;
    }
    match (from.sub, to.sub) {
        (_, None) | (None, _) => true,
        (Some(a), Some(b)) => b <= a,
    }
}

/// One path that breaks the order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    path: String,
    why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.file, self.line, self.path, self.why
        )
    }
}

/// The module a file defines, from its path under `src/` (`api/http/mod.rs` → `api::http`);
/// the binary's files are the `cli` layer.
fn file_module(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    if rel == "main" || rel == "cli" {
        return vec!["cli".into()];
    }
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// `text` with comments, string and char literals blanked out (newlines kept for line numbers).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !prev_is_ident(&b, i) {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &ch in &b[i..=end] {
                        out.push(blank(ch));
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// The paths a use-tree starting at `s` names, each cut to its first `keep` segments
/// (`{config::X, net::{grpc, redis}}` → `config::X`, `net::grpc`, `net::redis`).
fn expand(s: &str, keep: usize) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut start = 0;
        for (k, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&inner[start..k]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&inner[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .filter(|i| !i.trim().is_empty())
            .flat_map(|i| expand(i, keep))
            .collect();
    }
    let ident: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() || ident == "self" {
        return vec![Vec::new()];
    }
    let rest = &s[ident.len()..];
    let tails = match rest.trim_start().strip_prefix("::") {
        Some(more) if keep > 1 => expand(more, keep - 1),
        _ => vec![Vec::new()],
    };
    tails
        .into_iter()
        .map(|mut t| {
            t.insert(0, ident.clone());
            t
        })
        .collect()
}

/// Every violation in one file, `rel` being its path under `src/`.
fn check_file(rel: &str, text: &str) -> Vec<Violation> {
    let module = file_module(rel);
    if module.is_empty() {
        // `lib.rs` declares the layers and re-exports from them; it is above them all.
        return Vec::new();
    }
    let code = code_only(text);
    let in_bin = module == ["cli"];
    let mut found = Vec::new();
    let from = match place(&module) {
        Ok(p) => p,
        Err(why) => {
            return vec![Violation {
                file: rel.into(),
                line: 1,
                path: module.join("::"),
                why: format!("file outside the declared layers: {why}"),
            }]
        }
    };
    // Inline modules (`mod tests { … }`) deepen `super::`.
    let mut inline: Vec<usize> = Vec::new(); // brace depth at which each inline module opened
    let mut depth = 0usize;
    let bytes = code.as_bytes();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        let ch = bytes[i] as char;
        match ch {
            '\n' => line += 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        let boundary = i == 0
            || !matches!(bytes[i - 1] as char, 'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | ':');
        if !boundary {
            i += 1;
            continue;
        }
        let Some(rest) = code.get(i..) else {
            i += 1; // inside a multi-byte character
            continue;
        };
        if let Some(after) = rest.strip_prefix("mod ") {
            let after = after.trim_start();
            let name_len = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .count();
            if after[name_len..].trim_start().starts_with('{') {
                inline.push(depth);
            }
        }
        let target: Option<(Vec<String>, String)> = if let Some(tail) = rest
            .strip_prefix("crate::")
            .filter(|_| !in_bin)
            .or_else(|| rest.strip_prefix("gru::").filter(|_| in_bin))
        {
            Some((Vec::new(), tail.to_string()))
        } else if rest.starts_with("super::") {
            let mut tail = rest;
            let mut ups = 0usize;
            while let Some(t) = tail.strip_prefix("super::") {
                ups += 1;
                tail = t;
            }
            // Each `super` first leaves the inline modules, then the file's own module path.
            let file_ups = ups.saturating_sub(inline.len());
            let base_len = module.len().saturating_sub(file_ups);
            Some((module[..base_len].to_vec(), tail.to_string()))
        } else {
            None
        };
        if let Some((base, tail)) = target {
            let end = statement_end(&tail);
            for mut path in expand(&tail[..end], 2) {
                let mut full = base.clone();
                full.append(&mut path);
                if full.is_empty() || (in_bin && full.first().map(String::as_str) == Some("cli")) {
                    continue;
                }
                let shown = full.join("::");
                match place(&full) {
                    Ok(to) if allowed(from, to) => {}
                    Ok(_) => found.push(Violation {
                        file: rel.into(),
                        line,
                        path: shown,
                        why: format!("`{}` may not depend on it", module.join("::")),
                    }),
                    // Items re-exported at the crate root (`crate::start_node`) and names
                    // outside any layer are refused: name the module that owns them.
                    Err(why) => found.push(Violation {
                        file: rel.into(),
                        line,
                        path: shown,
                        why,
                    }),
                }
            }
        }
        i += 1;
    }
    found
}

/// Where a path in code ends: a use-tree's closing brace, or the first character that cannot
/// continue a path.
fn statement_end(s: &str) -> usize {
    let mut depth = 0;
    for (k, ch) in s.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => return k,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => return k,
            _ => {}
        }
    }
    s.len()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn layering() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 20,
        "found only {} files under {src:?}",
        files.len()
    );
    let mut violations = Vec::new();
    let mut per_layer: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).expect("readable source");
        if let Some(layer) = file_module(&rel).first() {
            *per_layer.entry(layer.clone()).or_default() += 1;
        }
        violations.extend(check_file(&rel, &text));
    }
    // Every declared layer exists, so the order is not describing code that is gone.
    for (layer, _) in LAYERS {
        assert!(
            per_layer.contains_key(*layer),
            "no files in layer `{layer}`"
        );
    }
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "{} path(s) against the layer order of ARCHITECTURE.md:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn catches_planted_violations() {
    // Upwards: a transport naming Raft.
    let v = check_file("net/redis.rs", "use crate::raft::GruRaft;\n");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].path, "raft::GruRaft");
    // Sideways against the declared order, inside a use-tree, on line 3.
    let v = check_file(
        "services/stat/presence.rs",
        "//! doc\n\nuse crate::{config::NodeId, services::{auth::Claims, ticket::Ticket}};\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!((v[0].line, v[0].path.as_str()), (3, "services::ticket"));
    // A path in an expression, not a `use`.
    let v = check_file(
        "raft/control.rs",
        "fn f() { let x = crate::api::http::router; }",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    // `super::super` out of a file reaches the parent's siblings.
    let v = check_file("services/stat/keys.rs", "use super::super::ticket::Ticket;");
    assert_eq!(v.len(), 1, "{v:?}");
    // A crate-root re-export hides the owner: refused.
    assert_eq!(
        check_file("api/http/node.rs", "use crate::start_node;").len(),
        1
    );
    // The binary sees the library as `gru::`; everything is below it.
    assert!(check_file("cli.rs", "use gru::node::start_node; use crate::cli::Cli;").is_empty());
    // Allowed: downwards, within one unit, own sub-module, and `super` out of an inline module.
    let ok = "use crate::config::NodeId;\nuse crate::services::auth::Claims;\n\
              use super::reader::Presence;\nmod tests { use super::*; use super::super::keys::Keys; }\n\
              // use crate::api::http::router; (a comment)\nconst S: &str = \"crate::node\";\n";
    assert!(check_file("services/stat/presence.rs", ok).is_empty());
    assert!(check_file("raft/control.rs", "use crate::raft::store::StateHandle;").is_empty());
}
