//! Where things are in a YAML job file's text: the line of each job item
//! and of its keys, of `defaults:` keys and of top-level keys. serde_yaml
//! keeps no positions for what it parsed, so findings made after parsing (a
//! bad zone, a bad schedule, a duplicate name) are located from the text.
//!
//! Knows the block layout of the text only, not what a key means.

use std::collections::HashMap;

/// Finds the lines of jobs and their keys in block-style YAML, so findings that
/// come after parsing (a bad zone, a bad schedule, a duplicate name) can still
/// name `path:line`. serde_yaml keeps no positions for values it parsed
/// successfully. Flow-style YAML (`{name: x}`) falls back to the item's line.
pub(super) struct Locator {
    /// Line of each job item (the line of its `-`).
    items: Vec<usize>,
    /// Keys of each job item and their lines.
    item_keys: Vec<HashMap<String, usize>>,
    defaults_keys: HashMap<String, usize>,
    top_keys: HashMap<String, usize>,
}

impl Locator {
    pub(super) fn new(text: &str) -> Locator {
        let mut loc = Locator {
            items: Vec::new(),
            item_keys: Vec::new(),
            defaults_keys: HashMap::new(),
            top_keys: HashMap::new(),
        };
        // Where the job sequence lives: after a top-level `jobs:` key, or at
        // the top level when the file is a bare list.
        let mut in_jobs = false;
        let mut in_defaults = false;
        let mut seq_indent: Option<usize> = None;
        let mut key_indent: Option<usize> = None;
        let mut defaults_indent: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            if indent == 0 && !trimmed.starts_with('-') {
                if let Some(k) = key_of(trimmed) {
                    loc.top_keys.entry(k.to_string()).or_insert(line_no);
                }
                in_jobs = key_of(trimmed) == Some("jobs");
                in_defaults = key_of(trimmed) == Some("defaults");
                seq_indent = None;
                key_indent = None;
                defaults_indent = None;
                continue;
            }
            if indent == 0 && trimmed.starts_with('-') && loc.items.is_empty() && !in_jobs {
                // A bare list of jobs at the top level.
                in_jobs = true;
            }
            if in_defaults {
                let di = *defaults_indent.get_or_insert(indent);
                if indent == di {
                    if let Some(k) = key_of(trimmed) {
                        loc.defaults_keys.entry(k.to_string()).or_insert(line_no);
                    }
                }
                continue;
            }
            if !in_jobs {
                continue;
            }
            let is_dash = trimmed == "-" || trimmed.starts_with("- ");
            let si = *seq_indent.get_or_insert(indent);
            if is_dash && indent == si {
                loc.items.push(line_no);
                loc.item_keys.push(HashMap::new());
                let rest = trimmed[1..].trim_start();
                let rest_indent = indent + (trimmed.len() - rest.len());
                key_indent = Some(rest_indent);
                if !rest.is_empty() {
                    loc.record_key(rest, line_no);
                }
            } else if indent > si {
                let ki = *key_indent.get_or_insert(indent);
                if indent == ki {
                    loc.record_key(trimmed, line_no);
                }
            }
        }
        loc
    }

    fn record_key(&mut self, text: &str, line: usize) {
        let Some(key) = key_of(text) else { return };
        if let Some(keys) = self.item_keys.last_mut() {
            keys.entry(key.to_string()).or_insert(line);
        }
    }

    pub(super) fn item_line(&self, index: usize) -> Option<usize> {
        self.items.get(index).copied()
    }

    pub(super) fn key_line(&self, index: usize, key: &str) -> Option<usize> {
        self.item_keys.get(index)?.get(key).copied()
    }

    pub(super) fn top_key_line(&self, key: &str) -> usize {
        self.top_keys.get(key).copied().unwrap_or(1)
    }

    pub(super) fn defaults_key_line(&self, key: &str) -> usize {
        self.defaults_keys.get(key).copied().unwrap_or(1)
    }
}

/// The key of a `key: value` or `key:` line, if it is one.
fn key_of(text: &str) -> Option<&str> {
    let colon = text.find(':')?;
    let key = text[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
    let after = &text[colon + 1..];
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (plain && (after.is_empty() || after.starts_with([' ', '\t']))).then_some(key)
}
