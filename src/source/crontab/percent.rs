//! Vixie cron's `%` rule: where a crontab command ends and its standard input begins.

/// Vixie's `%` rule: the first unescaped `%` ends the command and the rest is
/// standard input, where each further unescaped `%` becomes a newline and a final
/// newline is added when missing. `\%` becomes `%` in both parts; any other
/// backslash is kept. Returns the command and the standard input (`Some("")` for
/// a command ending in `%`: cron then gives the job an empty pipe).
/// See: https://github.com/vixie/cron/blob/master/do_command.c (child_process)
pub(super) fn split_percent(raw: &str) -> (String, Option<String>) {
    let mut command = String::with_capacity(raw.len());
    let mut escaped = false;
    let mut input = None;
    for (index, c) in raw.char_indices() {
        if escaped {
            if c == '%' {
                command.pop();
            }
            command.push(c);
            escaped = false;
            continue;
        }
        if c == '\\' {
            command.push(c);
            escaped = true;
            continue;
        }
        if c == '%' {
            input = Some(&raw[index + 1..]);
            break;
        }
        command.push(c);
    }
    let Some(input) = input else {
        return (command, None);
    };
    let mut stdin = String::with_capacity(input.len() + 1);
    let mut escaped = false;
    let mut need_newline = false;
    for c in input.chars() {
        let mut c = c;
        if escaped {
            if c != '%' {
                stdin.push('\\');
            }
        } else if c == '%' {
            c = '\n';
        }
        escaped = c == '\\';
        if !escaped {
            stdin.push(c);
            need_newline = c != '\n';
        }
    }
    if escaped {
        stdin.push('\\');
    }
    if need_newline {
        stdin.push('\n');
    }
    (command, Some(stdin))
}
