//! One bad job must not hide the others, from one parse of the file.
//!
//! Each job (and `history:`) is read into a [`Slot`]: its text is taken as a
//! YAML value by the one pass over the file, then typed on its own, so a job
//! with an unknown key becomes an error while its neighbours are still read.
//! (Parsing the file a second time to salvage the good jobs doubled the work
//! of every broken file: issue 11.) A value keeps no positions, so the line of
//! an error is found from what it names ([`locate`]).
//!
//! Knows serde and the text's lines; not what a job means.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A value typed on its own, or why it could not be.
pub enum Slot<T> {
    Good(T),
    Bad {
        message: String,
        /// The job's `name:`, when it reads as a string.
        name: Option<String>,
    },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        let name = value
            .get("name")
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_owned);
        Ok(match T::deserialize(value) {
            Ok(t) => Slot::Good(t),
            Err(e) => Slot::Bad {
                message: e.to_string(),
                name,
            },
        })
    }
}

/// The line, among `lines[from - 1 .. to - 1]` (1-based, `to` exclusive),
/// that an error message points at: the first word it quotes in backticks
/// (serde's "unknown field `x`", "unknown variant `y`"), as a key, else
/// anywhere in a line. `None` when the message quotes nothing found there.
pub fn locate(lines: &[&str], from: usize, to: Option<usize>, message: &str) -> Option<usize> {
    let word = message.split('`').nth(1).filter(|w| !w.is_empty())?;
    let end = to.unwrap_or(lines.len() + 1).min(lines.len() + 1);
    let range = from.max(1)..end;
    let as_key = |line: &str| {
        let t = line.trim_start().trim_start_matches(['-', ' ']);
        t.strip_prefix(word)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    range
        .clone()
        .find(|&n| as_key(lines[n - 1]))
        .or_else(|| range.clone().find(|&n| lines[n - 1].contains(word)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quoted_word_is_found_as_a_key_first() {
        let lines = [
            "jobs:",
            "  - name: a",
            "    command: colour",
            "    colour: red",
            "  - name: b",
        ];
        let m = "unknown field `colour`, expected one of `name`";
        assert_eq!(locate(&lines, 2, Some(5), m), Some(4));
        assert_eq!(locate(&lines, 2, Some(4), m), Some(3), "else as text");
        assert_eq!(locate(&lines, 2, Some(5), "missing field `x`"), None);
        assert_eq!(locate(&lines, 2, None, "no word"), None);
    }
}
