//! The word rules of derived names: what one crontab command line says the
//! job is. Reads the line as the shell splits it (quotes, `&&`, `||`, `;`,
//! pipes, subshells, `$(...)`), then looks through guards, wrappers and
//! interpreters to the program or script that does the work.
//!
//! Pure text in, a word out. Must not know jobs, origins, numbering or state.

/// What one command line says about the job.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Described {
    /// The first program or script that says what the job is.
    pub found: Option<String>,
    /// The first generic tool the line runs (`echo`, `find`, `cat`), for a
    /// line that runs nothing else.
    pub noise: Option<String>,
}

/// What one simple command gives.
enum Word {
    Found(String),
    Noise(String),
    Nothing,
}

/// Programs that run another program named by a later argument.
const WRAPPERS: &[&str] = &[
    "env", "nice", "ionice", "nohup", "chronic", "cronic", "timeout", "flock", "sudo", "setsid",
    "run-one", "time", "stdbuf", "chrt", "taskset", "nocache", "exec", "xargs",
];
/// Interpreters whose first non-option argument is the script that names the job.
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "php", "php-cli", "python", "python2", "python3", "perl",
    "ruby", "node", "nodejs", "bun", "deno", "lua", "Rscript",
];
/// Shells: `sh -c 'LINE'` is read as LINE.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh"];
/// Options that give an interpreter its code inline (`perl -e 'sleep 5'`):
/// the words after them are no script.
const INLINE_CODE: &[&str] = &["-e", "-E", "-r", "-c"];
/// Commands that guard, wait or prepare: they never say what the job is.
const GUARDS: &[&str] = &[
    "test", "[", "]", "[[", "]]", "cd", "pushd", "popd", "true", "false", ":", "sleep", "fi",
    "done", "esac", "}", ".", "source", "export", "set", "unset", "exit", "return", "umask",
    "ulimit", "trap", "read", "wait", "which", "type", "hash", "local", "shift",
];
/// Shell keywords that may stand before a command (`then /usr/bin/x`).
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "do", "while", "until", "!", "{",
];
/// Programs whose first argument names the work (`run-parts /etc/cron.daily`
/// gives `run-parts-cron.daily`, `periodic daily` gives `periodic-daily`).
const DISPATCHERS: &[&str] = &["run-parts", "periodic"];
/// Service managers: the service is the job (`invoke-rc.d anacron start`).
const SERVICES: &[&str] = &["invoke-rc.d", "service"];
/// Generic tools: a job that runs only these is named after its file.
const NOISE: &[&str] = &[
    "echo", "printf", "cat", "find", "rm", "mv", "cp", "ln", "mkdir", "rmdir", "touch", "chmod",
    "chown", "date", "sed", "awk", "gawk", "grep", "egrep", "tail", "head", "tee", "ts", "sort",
    "uniq", "wc", "cut", "tr", "ls", "du", "df", "logger", "mail", "mailx", "sendmail", "curl",
    "wget", "kill", "pkill", "killall",
];
/// Extensions stripped from a script's name (`backup.sh` gives `backup`;
/// `news.daily` and `uudemon.hr` keep theirs).
const SCRIPT_EXTENSIONS: &[&str] = &[
    "sh", "bash", "py", "php", "pl", "rb", "js", "mjs", "ts", "lua", "r", "cron",
];
/// How deep `sh -c '...'` is read into (a line cannot make the reading recurse without end).
const MAX_DEPTH: usize = 3;

/// What `line` says: the first program that says what the job is, and the
/// first generic tool it runs.
pub(super) fn describe(line: &str) -> Described {
    describe_at(line, 0)
}

fn describe_at(line: &str, depth: usize) -> Described {
    let mut out = Described::default();
    for words in simple_commands(line) {
        match word_of(&words, depth) {
            Word::Found(name) => {
                let clean = sanitize(&name);
                if !clean.is_empty() {
                    out.found = Some(clean);
                    return out;
                }
            }
            Word::Noise(name) => {
                if out.noise.is_none() {
                    out.noise = Some(sanitize(&name)).filter(|n| !n.is_empty());
                }
            }
            Word::Nothing => {}
        }
    }
    out
}

/// The simple commands of a shell line, each as its words with quotes
/// removed: split at unquoted `;`, `|`, `&` (not in `2>&1` or `&>`), `(`, `)`,
/// backquotes and newlines.
fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    let mut prev: Option<char> = None;
    let end_word = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('"') if c == '"' => quote = None,
            Some('"') if c == '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            Some(_) => word.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    if let Some(next) = chars.next() {
                        word.push(next);
                        in_word = true;
                    }
                }
                '&' if matches!(prev, Some('>' | '<')) || chars.peek() == Some(&'>') => {
                    word.push(c);
                    in_word = true;
                }
                ';' | '|' | '&' | '(' | ')' | '`' | '\n' => {
                    end_word(&mut words, &mut word, &mut in_word);
                    if !words.is_empty() {
                        commands.push(std::mem::take(&mut words));
                    }
                }
                c if c.is_whitespace() => end_word(&mut words, &mut word, &mut in_word),
                c => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
        prev = Some(c);
    }
    end_word(&mut words, &mut word, &mut in_word);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// The word one simple command gives. A loop, not recursion: each wrapper
/// (`env`, `nice`, `sudo -u x`) moves a slice's start forward, so
/// `env env ... env x` costs one pass over its words, whatever their count.
fn word_of(words: &[String], depth: usize) -> Word {
    let mut words = words;
    loop {
        let mut i = 0;
        // Assignments, keywords and redirections before the command
        // (`LANG=C foo`, `then foo`, `>/dev/null foo`).
        while i < words.len() {
            let w = words[i].as_str();
            if is_assignment(w) || KEYWORDS.contains(&w) {
                i += 1;
            } else if is_redirect(w) {
                i += if redirect_takes_target(w) { 2 } else { 1 };
            } else {
                break;
            }
        }
        let Some(program) = words.get(i) else {
            return Word::Nothing;
        };
        let rest = &words[i + 1..];
        let base = basename(program);
        // A number is no program: `$((60 + $RANDOM % 230))` read as words.
        // An option is no program either: `-le 7 ]` after `$(date +%d)`.
        let number = base.chars().all(|c| c.is_ascii_digit());
        if base.is_empty() || number || base.starts_with('-') || GUARDS.contains(&base) {
            return Word::Nothing;
        }
        if base == "command" {
            // `command -v X` asks whether X exists; `command X` runs it.
            if rest.first().is_some_and(|w| w == "-v" || w == "-V") {
                return Word::Nothing;
            }
            words = skip_options(rest);
            continue;
        }
        if base == "su" {
            // `su - user -c 'LINE'` runs LINE; without `-c`, a login shell.
            let line = rest
                .iter()
                .position(|w| w == "-c")
                .and_then(|c| rest.get(c + 1));
            return match line {
                Some(line) if depth < MAX_DEPTH => said(describe_at(line, depth + 1)),
                _ => Word::Nothing,
            };
        }
        if WRAPPERS.contains(&base) {
            words = skip_wrapper_args(base, rest);
            continue;
        }
        if is_bare_variable(program) {
            // `$VV $ROOT/scripts/worker`: a program held in a variable says
            // nothing; the next word, if any, is what it runs.
            if rest.iter().any(|w| !w.starts_with('-')) {
                words = skip_options(rest);
                continue;
            }
            return Word::Found(program.trim_matches(['$', '{', '}']).to_string());
        }
        if DISPATCHERS.contains(&base) {
            return Word::Found(match first_argument(rest) {
                Some(arg) => format!("{base}-{}", basename(arg)),
                None => base.to_string(),
            });
        }
        if SERVICES.contains(&base) {
            return Word::Found(
                first_argument(rest)
                    .map_or(base, |a| basename(a))
                    .to_string(),
            );
        }
        if INTERPRETERS.contains(&base) || base.starts_with("python") || base.starts_with("php") {
            if let Some(word) = interpreted(base, rest, depth) {
                return word;
            }
        }
        let name = strip_extension(base);
        return if NOISE.contains(&name) {
            Word::Noise(name.to_string())
        } else {
            Word::Found(name.to_string())
        };
    }
}

/// What an interpreter's arguments say: the script it runs, the line a shell
/// is given with `-c`, nothing for inline code (`perl -e 'sleep 5'`), or
/// `None` to name the job after the interpreter itself.
fn interpreted(base: &str, rest: &[String], depth: usize) -> Option<Word> {
    for (i, w) in rest.iter().enumerate() {
        if is_redirect(w) {
            return None;
        }
        if INLINE_CODE.contains(&w.as_str()) {
            let shell = SHELLS.contains(&base);
            return Some(match rest.get(i + 1) {
                Some(line) if shell && w == "-c" && depth < MAX_DEPTH => {
                    said(describe_at(line, depth + 1))
                }
                _ => Word::Nothing,
            });
        }
        if w == "-m" {
            // `python3 -m package.module`
            return rest.get(i + 1).map(|m| Word::Found(m.to_string()));
        }
        if !w.starts_with('-') && !is_assignment(w) {
            return Some(Word::Found(strip_extension(basename(w)).to_string()));
        }
    }
    None
}

/// What a line run by another (`sh -c LINE`, `su -c LINE`) says, as one word.
fn said(line: Described) -> Word {
    match (line.found, line.noise) {
        (Some(found), _) => Word::Found(found),
        (None, Some(noise)) => Word::Noise(noise),
        (None, None) => Word::Nothing,
    }
}

/// The words after the options (`-x`, `--flag`, `--key=value`).
fn skip_options(rest: &[String]) -> &[String] {
    let n = rest.iter().take_while(|w| w.starts_with('-')).count();
    &rest[n..]
}

fn first_argument(rest: &[String]) -> Option<&str> {
    rest.iter()
        .take_while(|w| !is_redirect(w))
        .find(|w| !w.starts_with('-'))
        .map(String::as_str)
}

/// The words after a wrapper that start the wrapped command (a sub-slice:
/// nothing is copied).
fn skip_wrapper_args<'w>(wrapper: &str, rest: &'w [String]) -> &'w [String] {
    let mut i = 0;
    while i < rest.len() && (rest[i].starts_with('-') || is_assignment(&rest[i])) {
        // Options that take a value: `sudo -u www-data`, `ionice -c 3`, `nice -n 10`
        // (but `flock -n` does not).
        let takes_value = matches!(
            (wrapper, rest[i].as_str()),
            ("nice", "-n")
                | ("ionice", "-c" | "-n" | "-p" | "-t")
                | (
                    "sudo",
                    "-u" | "-g" | "-C" | "-D" | "-h" | "-p" | "-r" | "-t" | "-U"
                )
                | ("flock", "-w" | "-E")
                | ("timeout", "-s" | "-k")
                | ("env", "-u" | "-C" | "-S")
                | ("stdbuf", "-i" | "-o" | "-e")
                | ("chrt", "-p")
                | ("taskset", "-p")
                | ("xargs", "-n" | "-I" | "-L" | "-P" | "-d" | "-s" | "-E")
        );
        i += if takes_value { 2 } else { 1 };
    }
    // `timeout 5m cmd`, `flock /tmp/lock cmd`: one positional argument before the command.
    if matches!(wrapper, "timeout" | "flock" | "chrt" | "taskset") && i < rest.len() {
        i += 1;
    }
    rest.get(i..).unwrap_or_default()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn is_redirect(word: &str) -> bool {
    word.trim_start_matches(|c: char| c.is_ascii_digit() || c == '&')
        .starts_with(['>', '<'])
}

/// `>` and `2>>` take the next word as their file; `>/dev/null` and `2>&1` do not.
fn redirect_takes_target(word: &str) -> bool {
    word.trim_start_matches(|c: char| c.is_ascii_digit() || c == '&')
        .trim_start_matches(['>', '<'])
        .is_empty()
}

/// `$NAME` or `${NAME}` alone.
fn is_bare_variable(word: &str) -> bool {
    let Some(name) = word.strip_prefix('$') else {
        return false;
    };
    let name = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn basename(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.rsplit('/').next().unwrap_or(path)
}

fn strip_extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && SCRIPT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) =>
        {
            stem
        }
        _ => name,
    }
}

/// Lowercase, `[a-z0-9_.-]` only, starting with a letter or digit (SPEC 1.1).
pub(super) fn sanitize(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_end_matches(['-', '.', '_'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_as_the_shell_splits_them() {
        assert_eq!(
            simple_commands("a 'b c' && d \"e;f\" 2>&1 | g; (h) `i` &> x"),
            vec![
                vec!["a", "b c"],
                vec!["d", "e;f", "2>&1"],
                vec!["g"],
                vec!["h"],
                vec!["i"],
                vec!["&>", "x"],
            ]
        );
    }

    #[test]
    fn noise_is_kept_apart_from_what_the_job_is() {
        let said = describe("find /tmp -delete; echo done");
        assert_eq!(said.found, None);
        assert_eq!(said.noise.as_deref(), Some("find"));
        assert_eq!(describe("sleep 5; test -x /x").noise, None);
        assert_eq!(
            describe("sh -c 'sleep 3; /usr/bin/report.sh'")
                .found
                .as_deref(),
            Some("report")
        );
    }
}
