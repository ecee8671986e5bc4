//! Environment lines of a crontab (`NAME=value`), read as cronie's and Debian's
//! `load_env` reads them, and the hint for a line that was probably meant as one.

use super::next_word;

/// A line that failed as an entry but was probably meant as a variable: its first
/// word contains `=`, or the next word starts with one.
pub(super) fn looks_like_env_attempt(body: &str) -> bool {
    match next_word(body) {
        Some((first, rest)) => {
            first.contains('=') || next_word(rest).is_some_and(|(w, _)| w.starts_with('='))
        }
        None => false,
    }
}

/// C's `isspace` in the "C" locale, which `load_env` uses.
pub(super) fn c_isspace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// The state machine of `load_env` as in cronie and Debian: `NAME=value`, blanks
/// allowed around `=`, the name or the value optionally in single or double quotes
/// (the quotes are removed, nothing may follow the closing quote), an unquoted
/// value runs to the end of the line (a `#` in it is part of the value) with
/// trailing blanks removed, and nothing is expanded (`$HOME` stays `$HOME`).
/// See: https://github.com/cronie-crond/cronie/blob/master/src/env.c (load_env)
pub(super) fn parse_env(line: &str) -> Option<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        NameStart,
        Name,
        BeforeEq,
        AfterEq,
        ValueStart,
        Value,
        Done,
    }
    let mut name = String::new();
    let mut value = String::new();
    let mut state = State::NameStart;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match state {
            State::NameStart | State::ValueStart => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    chars.next();
                }
                state = if state == State::NameStart {
                    State::Name
                } else {
                    State::Value
                };
            }
            State::Name | State::Value => {
                match quote {
                    Some(q) if c == q => {
                        chars.next();
                        state = if state == State::Name {
                            State::BeforeEq
                        } else {
                            State::Done
                        };
                        continue;
                    }
                    Some(_) if state == State::Name && c == '=' => return None,
                    None if state == State::Name && c_isspace(c) => {
                        chars.next();
                        state = State::BeforeEq;
                        continue;
                    }
                    None if state == State::Name && c == '=' => {
                        state = State::BeforeEq;
                        continue;
                    }
                    _ => {}
                }
                if state == State::Name {
                    name.push(c);
                } else {
                    value.push(c);
                }
                chars.next();
            }
            State::BeforeEq => {
                if c == '=' {
                    state = State::AfterEq;
                    quote = None;
                } else if !c_isspace(c) {
                    return None;
                }
                chars.next();
            }
            State::AfterEq | State::Done => {
                if c_isspace(c) {
                    chars.next();
                } else if state == State::AfterEq {
                    state = State::ValueStart;
                } else {
                    return None;
                }
            }
        }
    }
    let complete = match state {
        State::Done | State::AfterEq => true,
        State::Value => quote.is_none(),
        _ => false,
    };
    // An empty name would pass Vixie's parser but can never be a variable.
    if !complete || name.is_empty() {
        return None;
    }
    if state == State::Value {
        let trimmed = value.trim_end_matches(c_isspace).len();
        value.truncate(trimmed);
    }
    Some((name, value))
}
