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

/// The path of `tool` on `$PATH`, if it is installed.
fn installed(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Renders a roff page with `man -l -` (it must succeed) and with
/// `groff -ww` (which, unlike man, reports undefined macros and strings: it
/// must say nothing), each only when it is installed (tests install nothing).
fn renders_cleanly(page: &str) {
    if let Some(man) = installed("man") {
        let mut c = Command::new(man);
        c.args(["-l", "-"])
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80");
        feed(c, page, "man -l -");
    }
    if let Some(groff) = installed("groff") {
        let mut c = Command::new(groff);
        c.args(["-man", "-Tutf8", "-ww", "-z"]);
        feed(c, page, "groff -man -ww");
    }
}

fn feed(mut cmd: Command, page: &str, what: &str) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the man page renderer");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(page.as_bytes())
        .expect("feeding the page");
    let out = child.wait_with_output().expect("rendering the page");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{what} does not render the page cleanly ({}):\n{stderr}",
        out.status
    );
}

/// The `.TH` header: after clap_mangen's two-line preamble that defines the
/// quote string, before any section.
fn title(page: &str) -> &str {
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH ") || l.starts_with(".SH "))
        .unwrap_or_default();
    assert!(th.starts_with(".TH "), "no .TH header first:\n{page}");
    th
}

#[test]
fn the_man_page_is_roff_naming_jobrun_and_every_subcommand() {
    let t = Test::new();
    let page = t.run_args(["man"]).expect_code(0).stdout;
    assert!(title(&page).starts_with(".TH jobrun 1"), "{}", title(&page));
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
        "man",
    ] {
        // roff escapes the hyphen in the page names it refers to.
        assert!(
            page.contains(&format!("jobrun\\-{sub}(1)")),
            "{sub} is missing from the man page:\n{page}"
        );
        let sub_page = t.run_args(["man", sub]).expect_code(0).stdout;
        assert!(
            title(&sub_page).starts_with(&format!(".TH jobrun-{sub} 1")),
            "{}",
            title(&sub_page)
        );
        renders_cleanly(&sub_page);
    }
    renders_cleanly(&page);
    let unknown = t.run_args(["man", "frobnicate"]).expect_code(2);
    assert!(unknown.stderr.contains("check, list"), "{}", unknown.stderr);
}
