//! One cheap pass over a YAML file's text before the parser sees it: how deep
//! it nests and how much its aliases repeat, refused with the line where a
//! limit ([`crate::limits`]) is passed.
//!
//! Why before: the parser's work grows with the square of the nesting (a
//! flow-style file 50,000 levels deep took 7 s), and aliases are expanded
//! while deserialising (one 100 KB string aliased 1,000 times is 100 MB).
//! Both are only known cheaply from the text. The scan is a tokenizer for
//! those two questions, not a YAML parser: it counts brackets outside quoted
//! scalars, block scalars and comments, indentation levels, and the bytes an
//! anchor spans (over-estimated: the rest of its line and the lines indented
//! under it), so what it refuses is always really deep or really repeated.
//!
//! Knows the YAML text only, not what a job is.

use std::collections::HashMap;

use crate::limits::{YAML_ALIASES_MAX, YAML_ALIAS_BYTES_MAX, YAML_DEPTH_MAX};

/// Where a limit was passed: a 1-based line and the message.
pub type ScanError = (usize, String);

/// Checks nesting depth and alias expansion of `text`.
pub fn scan(text: &str) -> Result<(), ScanError> {
    let mut scanner = Scanner::default();
    let mut offset = 0;
    for (index, line) in text.split('\n').enumerate() {
        scanner.line(index + 1, offset, line)?;
        offset += line.len() + 1;
    }
    Ok(())
}

/// An anchor whose node has not ended yet.
struct OpenAnchor {
    name: String,
    indent: usize,
    /// Offset of the `&` in the text.
    start: usize,
    /// [`Scanner::expanded`] when it opened: aliases used inside it count
    /// into its size too (an alias of an alias).
    expanded_at_start: usize,
}

#[derive(Default)]
struct Scanner {
    /// Depth of `[`/`{` collections.
    flow: usize,
    /// Indentation of each enclosing block level.
    indents: Vec<usize>,
    /// Inside a block scalar (`|`, `>`) opened on a line with this indent.
    block_scalar: Option<usize>,
    /// Inside a quoted scalar that runs over lines.
    quote: Option<u8>,
    open: Vec<OpenAnchor>,
    /// Size of each closed anchor, expansion included.
    sizes: HashMap<String, usize>,
    aliases: usize,
    /// Bytes all aliases so far repeat.
    expanded: usize,
}

impl Scanner {
    fn line(&mut self, number: usize, offset: usize, raw: &str) -> Result<(), ScanError> {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank = line.trim().is_empty();
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        let comment_only = line.trim_start().starts_with('#');
        if self.quote.is_none() && self.flow == 0 && !blank && !comment_only {
            while self.open.last().is_some_and(|a| indent <= a.indent) {
                if let Some(a) = self.open.pop() {
                    let size = self.size_of_open(&a, offset);
                    self.sizes.insert(a.name, size);
                }
            }
            while self.indents.last().is_some_and(|&top| top > indent) {
                self.indents.pop();
            }
            if self.indents.last() != Some(&indent) {
                self.indents.push(indent);
            }
        }

        let mut dashes = 0;
        let mut value_start = true;
        let mut i = indent;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(q) = self.quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                    value_start = false;
                }
                i += 1;
                continue;
            }
            let spaced_after = bytes.get(i + 1).is_none_or(|b| matches!(b, b' ' | b'\t'));
            match c {
                b' ' | b'\t' => {
                    i += 1;
                    continue;
                }
                b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t') => break,
                b'*' if value_start => {
                    let name = token(&bytes[i + 1..]);
                    // Measured to the alias itself: an anchor opened earlier on
                    // this line starts after the line's start.
                    self.alias(number, offset + i, name)?;
                    i += 1 + name.len();
                    value_start = false;
                    continue;
                }
                b'&' if value_start => {
                    let name = token(&bytes[i + 1..]);
                    self.open.push(OpenAnchor {
                        name: String::from_utf8_lossy(name).into_owned(),
                        indent,
                        start: offset + i,
                        expanded_at_start: self.expanded,
                    });
                    i += 1 + name.len();
                    continue;
                }
                b'!' if value_start => {
                    i += 1 + token(&bytes[i + 1..]).len();
                    continue;
                }
                b'"' | b'\'' if value_start => {
                    self.quote = Some(c);
                    i += 1;
                    continue;
                }
                b'[' | b'{' if self.flow > 0 || value_start => {
                    self.flow += 1;
                    self.check_depth(number, dashes)?;
                    value_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    value_start = false;
                }
                b',' if self.flow > 0 => value_start = true,
                b':' if spaced_after || (self.flow > 0 && !value_start) => value_start = true,
                b'-' | b'?' if self.flow == 0 && value_start && spaced_after => dashes += 1,
                b'|' | b'>' if self.flow == 0 && value_start => {
                    self.block_scalar = Some(indent);
                    break;
                }
                _ => value_start = false,
            }
            i += 1;
        }
        self.check_depth(number, dashes)
    }

    fn check_depth(&self, number: usize, dashes: usize) -> Result<(), ScanError> {
        let depth = self.indents.len() + dashes + self.flow;
        if depth > YAML_DEPTH_MAX {
            return Err((
                number,
                format!(
                    "nesting: more than {YAML_DEPTH_MAX} levels is too deep; at most \
                     {YAML_DEPTH_MAX} (a job file needs about 5)"
                ),
            ));
        }
        Ok(())
    }

    fn size_of_open(&self, a: &OpenAnchor, offset: usize) -> usize {
        offset
            .saturating_sub(a.start)
            .saturating_add(self.expanded - a.expanded_at_start)
    }

    fn alias(&mut self, number: usize, offset: usize, name: &[u8]) -> Result<(), ScanError> {
        self.aliases += 1;
        if self.aliases > YAML_ALIASES_MAX {
            return Err((
                number,
                format!(
                    "aliases: more than {YAML_ALIASES_MAX} uses of `*name` is too many; at most \
                     {YAML_ALIASES_MAX}"
                ),
            ));
        }
        let name = String::from_utf8_lossy(name);
        let size = match self.sizes.get(name.as_ref()) {
            Some(&size) => size,
            None => self
                .open
                .iter()
                .rev()
                .find(|a| a.name == name)
                .map_or(0, |a| self.size_of_open(a, offset)),
        };
        self.expanded = self.expanded.saturating_add(size);
        if self.expanded > YAML_ALIAS_BYTES_MAX {
            return Err((
                number,
                format!(
                    "aliases: `*{name}` makes the aliases repeat more than {YAML_ALIAS_BYTES_MAX} \
                     bytes (1 MiB) of the file, too much; at most that: write shared values once \
                     (defaults:) or in a file"
                ),
            ));
        }
        Ok(())
    }
}

/// An anchor, alias or tag name: up to a blank or a flow indicator.
fn token(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b',' | b'[' | b']' | b'{' | b'}'))
        .unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_files_pass() {
        for text in [
            include_str!("../../jobs.example.yaml"),
            "jobs:\n  - name: a\n    command: |\n      if [ -x x ]; then { [[[[ ; fi\n      {{{{{\n    env: {A: '[[[', B: \"{{\\\"\"}\n",
            "defaults:\n  env: &common {A: 1}\njobs:\n  - {name: a, command: x, env: *common}\n  - {name: b, command: y, env: *common}\n",
            "jobs: [[[[[[[[]]]]]]]]\n",
            "a: [&x 1, *x, {b: &y [*x, *y]}]\n",
            "- name: a\n  command: echo {a,b} [x] # { [\n",
        ] {
            assert_eq!(scan(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn deep_flow_nesting_is_refused_on_its_line_without_reading_it_all() {
        let deep = format!(
            "jobs: []\nx: {}{}\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let (line, message) = scan(&deep).expect_err("too deep");
        assert_eq!(line, 2);
        assert!(message.contains("too deep; at most 64"), "{message}");
        let maps = format!("x: {}1{}\n", "{a: ".repeat(100), "}".repeat(100));
        assert_eq!(scan(&maps).map_err(|e| e.0), Err(1));
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let mut text = String::new();
        for level in 0..100 {
            text.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert_eq!(scan(&text).map_err(|e| e.0), Err(65));
        let dashes = format!("x:\n  {}1\n", "- ".repeat(100));
        assert_eq!(scan(&dashes).map_err(|e| e.0), Err(2));
    }

    #[test]
    fn aliases_that_repeat_a_large_value_are_refused() {
        let big = "x".repeat(100 * 1024);
        let mut text = format!("defaults:\n  env:\n    A: &big {big}\n");
        for i in 0..1000 {
            text.push_str(&format!("    V{i}: *big\n"));
        }
        let (line, message) = scan(&text).expect_err("too much");
        assert_eq!(line, 4 + 10, "the 11th alias passes 1 MiB");
        assert!(message.contains("`*big`"), "{message}");
    }

    #[test]
    fn nested_aliases_count_what_they_expand_to() {
        // Each level repeats the one below ten times (a "billion laughs").
        let mut text = format!("l0: &l0 [{}]\n", ["xxxxxxxxxx"; 10].join(", "));
        for level in 1..8 {
            let refs = vec![format!("*l{}", level - 1); 10].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
        }
        let (line, _) = scan(&text).expect_err("too much");
        assert_eq!(line, 5, "l4 repeats about 1.4 MB");
        let many = format!("a: &a 1\nb: [{}]\n", ["*a"; 1001].join(", "));
        let (_, message) = scan(&many).expect_err("too many");
        assert!(message.contains("at most 1000"), "{message}");
    }

    #[test]
    fn any_text_of_yaml_punctuation_scans_without_a_panic() {
        // A small deterministic generator (xorshift) over the characters the
        // scanner acts on: every mix of them ends in Ok or a located error.
        let alphabet: [&str; 20] = [
            " ", "\t", "\n", "\r", "- ", "? ", ": ", ",", " #", "&a ", "*a", "!t ", "|", ">", "'",
            "\"", "\\", "[", "]", "{",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            if let Err((line, _)) = scan(&text) {
                assert!(line >= 1 && line <= text.split('\n').count(), "{text:?}");
            }
        }
    }
}
