//! Shell completions and the man page, generated from the CLI definition:
//! the scripts load in their shell and name the real subcommands.

use std::process::Command;

use crate::harness::Test;

/// Loads `jobrun completions bash` into a real bash, asks its completion
/// function to complete `words` (the last one being the word under the
/// cursor), and returns COMPREPLY.
fn bash_complete(t: &Test, words: &[&str]) -> Vec<String> {
    let script = t.run_args(["completions", "bash"]).expect_code(0).stdout;
    let path = t.path("jobrun.bash");
    std::fs::write(&path, script).expect("writing the completion script");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = words.join(" ");
    let driver = format!(
        "set -e\n\
         source '{path}'\n\
         complete -p jobrun\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE='{line}'\n\
         COMP_POINT={point}\n\
         \"$(complete -p jobrun | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\" jobrun '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path = path.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
        point = line.len(),
        cur = words[words.len() - 1],
        prev = words[words.len().saturating_sub(2)],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &driver])
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bash failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let registered = lines.next().unwrap_or_default();
    assert!(
        registered.starts_with("complete ") && registered.ends_with(" jobrun"),
        "the script does not register a completion for jobrun: {registered}"
    );
    lines.map(str::to_owned).collect()
}

#[test]
fn the_bash_completion_loads_in_bash_and_completes_subcommands() {
    let t = Test::new();
    let all = bash_complete(&t, &["jobrun", ""]);
    for sub in [
        "check",
        "list",
        "next",
        "daemon",
        "run",
        "history",
        "logs",
        "status",
        "prune",
        "completions",
    ] {
        assert!(all.iter().any(|w| w == sub), "{sub} missing from {all:?}");
    }
    let h = bash_complete(&t, &["jobrun", "h"]);
    assert!(h.iter().any(|w| w == "history"), "{h:?}");
    assert!(
        h.iter().all(|w| w.starts_with('h')),
        "`jobrun h` offers words not starting with h: {h:?}"
    );
    let d = bash_complete(&t, &["jobrun", "da"]);
    assert_eq!(d, ["daemon"]);
    let c = bash_complete(&t, &["jobrun", "ch"]);
    assert_eq!(c, ["check"]);
    // Options of a subcommand, after it.
    let opts = bash_complete(&t, &["jobrun", "daemon", "--st"]);
    assert!(opts.iter().any(|w| w == "--strict"), "{opts:?}");
}

#[test]
fn completions_exist_for_every_supported_shell() {
    let t = Test::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = t.run_args(["completions", shell]).expect_code(0);
        assert!(out.stdout.contains("jobrun"), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("history"), "{shell}: {}", out.stdout);
    }
    t.run_args(["completions", "tcsh"]).expect_code(2);
}
