//! The house rules of STYLE.md, checked by reading the sources (as `just`
//! checks its own): data flows one way, so each room (a top-level module of
//! `src/`) may name only the rooms its row of [`ROOMS`] lists; a new room must
//! be given a row; every file opens with a `//!` doc saying what it is for; no
//! file holds more than ~600 lines of code besides its tests.
//!
//! The checker reads `crate::` and `super::` paths the way the compiler
//! resolves them (grouped imports, `super::super`, inline `mod` blocks), with
//! comments, strings and character literals blanked first, so neither a doc
//! that names a forbidden room nor a format string can fool it. The checker's
//! own tests feed it source text that breaks each rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each room and the rooms it may name: lower rooms first. A room is a
/// top-level module of `src/` (`src/NAME.rs` or `src/NAME/`). A row that
/// starts with [`ALL_BUT`] lists the rooms it may NOT name instead.
const ROOMS: &[(&str, &[&str])] = &[
    // Values and rules every room shares; pure.
    ("job_env", &[]),
    ("limits", &[]),
    // The passwd and group files, read as text (NSS only in dynamic builds).
    ("users", &[]),
    ("job", &["job_env", "limits"]),
    ("schedule", &["job", "limits"]),
    ("source", &["job", "job_env", "limits", "schedule", "users"]),
    ("plan", &["job", "job_env", "limits", "schedule", "source"]),
    ("health", &["job"]),
    // The machine: time, processes, directories.
    ("clock", &[]),
    ("procfs", &[]),
    ("private_dir", &[]),
    ("runner", &["clock", "procfs", "job_env", "limits", "users"]),
    // The state, behind its backend-neutral API: claims, history,
    // heartbeats, leases (SQLite's flocks in store/sqlite/lock.rs) and the
    // one "is this owner alive?" (store/owner.rs, through procfs).
    (
        "store",
        &["job", "limits", "private_dir", "clock", "procfs"],
    ),
    // One firing, composed of the rooms below it (readiness checks and
    // `signal:` jobs are parts of it: src/fire/readiness.rs, signal_job.rs).
    (
        "fire",
        &[
            "clock",
            "job",
            "job_env",
            "limits",
            "plan",
            "private_dir",
            "procfs",
            "runner",
            "schedule",
            "store",
            "users",
        ],
    ),
    // The status of a state directory, read once for `jobrun status` and
    // the daemon's `/status`.
    ("status", &["fire", "health", "job", "store"]),
    // `daemon --http`: read-only endpoints over what the daemon hands it
    // (the plan, the loop's liveness) and the run-event hook of `fire`.
    (
        "http",
        &[
            "clock", "fire", "health", "job", "limits", "plan", "schedule", "status", "store",
        ],
    ),
    // The composers: the daemon may name every room but the command line,
    // the command line every room.
    ("daemon", &[ALL_BUT, "cli"]),
    ("cli", &[ALL_BUT]),
];

/// At the head of a row: every room but the ones listed after it.
const ALL_BUT: &str = "*all but*";

/// Whether a room whose row is `row` may name `other`.
fn may_name(row: &[&str], other: &str) -> bool {
    match row.split_first() {
        Some((&ALL_BUT, denied)) => !denied.contains(&other),
        _ => row.contains(&other),
    }
}

/// Rooms that know no I/O at all: no SQLite, no tokio, no process, no clock.
const PURE: &[&str] = &[
    "job_env", "limits", "job", "schedule", "source", "plan", "health",
];
const IO_WORDS: &[&str] = &[
    "rusqlite",
    "tokio",
    "std::process",
    "Utc::now",
    "SystemTime::now",
    "Instant::now",
];

/// Each backend's crate and the only folder of `src/` that may name it: the
/// rest of `store` (its backend-neutral API) and every other room see the
/// store only through that API, never a backend's types.
const BACKEND_CRATES: &[(&str, &str)] = &[
    ("rusqlite", "store/sqlite/"),
    ("tokio_postgres", "store/postgres/"),
];

/// Lines of code (tests excluded: a `mod tests` block, or a whole
/// `tests.rs` / `*_tests.rs` file) a file may hold; STYLE says "about 600",
/// blank lines and comments not counted.
const MAX_CODE_LINES: usize = 650;

// ---------------------------------------------------------------- the checker

/// A source file: its path under `src/` (`fire/acquire.rs`) and its text.
struct Source {
    path: String,
    text: String,
}

/// The module path of a file under `src/`: `fire/acquire.rs` is
/// `["fire", "acquire"]`, `fire/mod.rs` and `fire.rs` are `["fire"]`, the
/// crate roots are `[]`.
fn module_path(path: &str) -> Vec<String> {
    let stem = path.strip_suffix(".rs").unwrap_or(path);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts
}

/// The text with comments, string and character literals replaced by spaces
/// (newlines kept, so line numbers hold).
fn blank_non_code(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
            && raw_string_hashes(&chars, i + 1).is_some()
        {
            let hashes = raw_string_hashes(&chars, i + 1).unwrap_or(0);
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body_start = i + 2 + hashes;
            for _ in i..body_start {
                out.push(' ');
            }
            i = body_start;
            while i < chars.len() && !chars[i..].starts_with(&end.chars().collect::<Vec<_>>()) {
                out.push(blank(chars[i]));
                i += 1;
            }
            for _ in 0..end.len().min(chars.len() - i) {
                out.push(' ');
            }
            i += end.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '{'), or a lifetime ('a).
            let len = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| p + 3)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(len) => {
                    for _ in 0..len {
                        out.push(' ');
                    }
                    i += len;
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

/// `r"` or `r#…#"` at `at` (just after the `r`): the number of hashes.
fn raw_string_hashes(chars: &[char], at: usize) -> Option<usize> {
    let hashes = chars[at..].iter().take_while(|&&c| c == '#').count();
    (chars.get(at + hashes) == Some(&'"')).then_some(hashes)
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, Token::Ident(chars[start..i].iter().collect())));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, Token::PathSep));
            i += 2;
        } else {
            out.push((line, Token::Punct(c)));
            i += 1;
        }
    }
    out
}

/// Every room a file names, with the line: `crate::X`, `crate::{X, Y::…}`,
/// and `super::…` chains that climb to the crate root.
fn named_rooms(path: &str, text: &str) -> Vec<(usize, String)> {
    let file_module = module_path(path);
    let toks = tokens(&blank_non_code(text));
    let mut named = Vec::new();
    // Inline `mod NAME {` blocks: their names and the brace depth inside them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].1 {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some((_, Token::Ident(name))), Some((_, Token::Punct('{')))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Token::Ident(word) if word == "crate" || word == "super" => {
                let previous_is_sep = i > 0 && toks[i - 1].1 == Token::PathSep;
                if !previous_is_sep {
                    let mut module: Vec<String> = file_module.clone();
                    module.extend(inline.iter().map(|(n, _)| n.clone()));
                    let mut j = i;
                    if word == "crate" {
                        module.clear();
                        j += 1;
                    } else {
                        while matches!(&toks.get(j), Some((_, Token::Ident(w))) if w == "super")
                            && toks.get(j + 1).map(|t| &t.1) == Some(&Token::PathSep)
                        {
                            module.pop();
                            j += 2;
                        }
                        j -= 1;
                    }
                    // `module` is where the path now stands; a room is named
                    // when it stands at the crate root.
                    if module.is_empty() && toks.get(j).map(|t| &t.1) == Some(&Token::PathSep) {
                        let line = toks[i].0;
                        match toks.get(j + 1).map(|t| &t.1) {
                            Some(Token::Ident(room)) => named.push((line, room.clone())),
                            Some(Token::Punct('{')) => named
                                .extend(group_heads(&toks[j + 2..]).into_iter().map(|r| (line, r))),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    named
}

/// The first identifier of each item of a `{…}` group (the tokens after `{`).
fn group_heads(toks: &[(usize, Token)]) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    for (_, tok) in toks {
        match tok {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') if depth == 0 => break,
            Token::Punct('}') => depth -= 1,
            Token::Punct(',') if depth == 0 => at_item_start = true,
            Token::Ident(word) if at_item_start && depth == 0 => {
                heads.push(word.clone());
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// Lines of code before the file's test module (`#[cfg(test)] mod tests`
/// with a body), blank lines and comments not counted.
fn code_lines(text: &str) -> usize {
    let mut count = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests {"))
        {
            break;
        }
        if !trimmed.is_empty() && !trimmed.starts_with("//") {
            count += 1;
        }
    }
    count
}

/// Every broken rule in a tree of sources, one message each.
fn check_tree(sources: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = ROOMS.iter().map(|(room, _)| *room).collect();
    for source in sources {
        let module = module_path(&source.path);
        if !source.text.trim_start().starts_with("//!") {
            problems.push(format!(
                "src/{}: opens without a `//!` doc saying what the file is for",
                source.path
            ));
        }
        let is_tests = source.path.ends_with("tests.rs");
        let lines = code_lines(&source.text);
        if !is_tests && lines > MAX_CODE_LINES {
            problems.push(format!(
                "src/{}: {lines} lines of code besides tests; split it by responsibility (at most {MAX_CODE_LINES})",
                source.path
            ));
        }
        let Some(room) = module.first() else {
            continue; // lib.rs and main.rs compose every room.
        };
        let Some((_, allowed)) = ROOMS.iter().find(|(r, _)| r == room) else {
            problems.push(format!(
                "src/{}: room `{room}` has no row in layout.rs ROOMS; say which rooms it may name",
                source.path
            ));
            continue;
        };
        for (line, named) in named_rooms(&source.path, &source.text) {
            if named == *room || may_name(allowed, &named) {
                continue;
            }
            if known.contains(named.as_str()) {
                problems.push(format!(
                    "src/{}:{line}: room `{room}` names `{named}`, which it may not (its row allows {allowed:?})",
                    source.path
                ));
            }
        }
        for (krate, home) in BACKEND_CRATES {
            if source.path.starts_with(home) {
                continue;
            }
            let code = blank_non_code(&source.text);
            if let Some(at) = code.find(krate) {
                let line = code[..at].lines().count().max(1);
                problems.push(format!(
                    "src/{}:{line}: names `{krate}`, which only src/{home} may (use the store's API)",
                    source.path
                ));
            }
        }
        if PURE.contains(&room.as_str()) {
            let code = blank_non_code(&source.text);
            for word in IO_WORDS {
                if let Some(at) = code.find(word) {
                    let line = code[..at].lines().count().max(1);
                    problems.push(format!(
                        "src/{}:{line}: the pure room `{room}` names `{word}`",
                        source.path
                    ));
                }
            }
        }
    }
    problems
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn crate_sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    rust_files(&src)
        .into_iter()
        .map(|file| Source {
            path: file
                .strip_prefix(&src)
                .expect("under src/")
                .to_string_lossy()
                .into_owned(),
            text: std::fs::read_to_string(&file).expect("reading a source file"),
        })
        .collect()
}

// ------------------------------------------------------------------ the rules

#[test]
fn the_crate_keeps_the_house_rules() {
    let problems = check_tree(&crate_sources());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_room_in_src_has_a_row_and_every_row_a_room() {
    let rooms: BTreeSet<String> = crate_sources()
        .iter()
        .filter_map(|s| module_path(&s.path).first().cloned())
        .collect();
    for (room, _) in ROOMS {
        assert!(
            rooms.contains(*room),
            "ROOMS names `{room}`, which src/ no longer has"
        );
    }
}

#[test]
fn no_helper_grab_bags() {
    for source in crate_sources() {
        let name = source.path.rsplit('/').next().unwrap_or_default();
        assert!(
            !["utils.rs", "helpers.rs", "misc.rs", "common.rs"].contains(&name),
            "src/{}: name a module for what it owns",
            source.path
        );
    }
}

// ------------------------------------------------------- the checker's tests

fn source(path: &str, text: &str) -> Source {
    Source {
        path: path.to_string(),
        text: text.to_string(),
    }
}

fn problems_of(path: &str, text: &str) -> Vec<String> {
    check_tree(&[source(path, text)])
}

#[test]
fn checker_catches_a_lower_room_naming_a_higher_one_in_a_grouped_import() {
    let found = problems_of(
        "plan.rs",
        "//! The plan.\nuse crate::{job::JobSpec, store::Store, daemon::DaemonOptions};\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("src/plan.rs:2: room `plan` names `store`"));
    assert!(found[1].contains("names `daemon`"));
    // Nested groups: the head of each item is what counts.
    let found = problems_of(
        "schedule/vixie.rs",
        "//! Vixie.\nuse crate::{job::{A, B}, fire::{self, X}};\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("names `fire`"), "{found:?}");
}

#[test]
fn checker_catches_runner_naming_fire() {
    let found = problems_of("runner.rs", "//! Runs.\nuse crate::fire::FireResult;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("room `runner` names `fire`"), "{found:?}");
    // Also a path in code, not only in a `use`.
    let found = problems_of(
        "runner/spawn.rs",
        "//! Spawns.\nfn f() { let _ = crate::fire::run(); }\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn checker_catches_the_store_naming_its_callers() {
    for room in ["fire", "daemon", "cli"] {
        let text = format!("//! Runs.\nuse crate::{room}::Thing;\n");
        let found = problems_of("store/sqlite/runs.rs", &text);
        assert_eq!(found.len(), 1, "{room}: {found:?}");
    }
}

#[test]
fn checker_catches_a_backend_type_outside_its_backend() {
    let text = "//! Errors.\npub enum E { Sql(rusqlite::Error) }\n";
    for path in ["store/mod.rs", "store/recorder.rs", "fire/record.rs"] {
        let found = problems_of(path, text);
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert!(found[0].contains("only src/store/sqlite/ may"), "{found:?}");
    }
    assert!(problems_of("store/sqlite/runs.rs", text).is_empty());
}

#[test]
fn checker_resolves_super_super_and_inline_modules() {
    // From src/plan/chains.rs, `super::super` is the crate root.
    let found = problems_of(
        "plan/chains.rs",
        "//! Chains.\nuse super::super::store::Store;\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    // Inside an inline `mod tests`, one more `super` is needed to climb out;
    // `super::super::Plan` from there is `plan::Plan`, the room itself.
    let found = problems_of(
        "plan/chains.rs",
        "//! Chains.\n#[cfg(test)]\nmod tests {\n    use super::super::Plan;\n}\n",
    );
    assert!(found.is_empty(), "{found:?}");
    let found = problems_of(
        "plan/chains.rs",
        "//! Chains.\nmod tests {\n    use super::super::super::daemon::X;\n}\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn checker_ignores_comments_docs_and_strings() {
    let found = problems_of(
        "runner.rs",
        "//! Unlike `crate::fire`, this runs one process.\n\
         /// See crate::store::Store.\n\
         // use crate::daemon;\n\
         /* crate::cli */\n\
         fn f() -> &'static str { let _c = '{'; \"crate::fire::x {\" }\n\
         fn g() -> &'static str { r#\"crate::store\"# }\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn checker_catches_a_room_missing_from_the_table() {
    let found = problems_of("metrics.rs", "//! Metrics.\nuse crate::job::Job;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("room `metrics` has no row"), "{found:?}");
}

#[test]
fn checker_catches_a_file_without_a_module_doc() {
    let found = problems_of("job.rs", "/// Not a module doc.\npub struct Job;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("opens without a `//!` doc"), "{found:?}");
}

#[test]
fn checker_catches_io_in_a_pure_room_and_an_oversized_file() {
    let found = problems_of(
        "schedule/mod.rs",
        "//! Schedules.\nfn now() { let _ = chrono::Utc::now(); }\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("schedule/mod.rs:2"), "{found:?}");
    let mut big = String::from("//! Big.\n");
    for i in 0..=MAX_CODE_LINES {
        big.push_str(&format!("const C{i}: u8 = 0;\n"));
    }
    big.push_str("#[cfg(test)]\nmod tests {\n");
    for i in 0..1000 {
        big.push_str(&format!("    const T{i}: u8 = 0;\n"));
    }
    big.push_str("}\n");
    let found = problems_of("job.rs", &big);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("split it"), "{found:?}");
}

#[test]
fn checker_lets_the_daemon_name_every_room_but_the_command_line() {
    let found = problems_of(
        "daemon/mod.rs",
        "//! The loop.\nuse crate::{fire::fire, store::Store, users::user_by_name};\n",
    );
    assert!(found.is_empty(), "{found:?}");
    let found = problems_of("daemon/mod.rs", "//! The loop.\nuse crate::cli::run;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("room `daemon` names `cli`"), "{found:?}");
}
