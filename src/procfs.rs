//! The one reader of `/proc/PID/stat`: a process's state, group and start
//! time, for telling a live process from a gone one or from a later program
//! that was given the same pid.
//!
//! Must not know jobs, runs, SQLite or tokio.

/// The fields of `/proc/PID/stat` after the command name, from the state on
/// (state, ppid, pgrp, ...). The name is in parentheses and may itself hold
/// spaces and parentheses, so it is cut at the last `)`. `None` when the
/// process is gone.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When process `pid` started, in seconds since the Unix epoch (to about a
/// second: the boot time is whole seconds), from its stat fields. `None` when
/// it is gone or is a zombie (it has exited).
pub fn started(fields: &[String]) -> Option<f64> {
    // state(3) ... starttime(22), as proc(5) counts them.
    let (state, start_ticks) = (fields.first()?, fields.get(19)?);
    if *state == "Z" {
        return None;
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return None;
    }
    Some(boot + start_ticks.parse::<f64>().ok()? / ticks_per_second as f64)
}

/// When the live process `pid` started (see [`started`]).
pub fn process_started(pid: u32) -> Option<f64> {
    started(&stat_fields(pid)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_started_recently_and_a_missing_pid_is_gone() {
        let me = process_started(std::process::id()).expect("this process is alive");
        #[allow(clippy::disallowed_methods)] // compared with the kernel's clock
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(me <= now + 1.0 && me > now - 3600.0, "{me} vs {now}");
        // Above the kernel's pid_max (at most 2^22).
        assert!(process_started(1 << 23).is_none());
    }
}
