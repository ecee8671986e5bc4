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

/// Whether process `pid` is there and has not exited (a zombie has: only its
/// exit status is left for its parent).
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// Whether process `pid` has exited and waits for its parent to collect it.
pub fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state == "Z"))
}

/// Every zombie whose parent is `parent`, found by reading each process's
/// stat (state and ppid).
pub fn zombie_children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = parent.to_string();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|fields| {
                fields.first().is_some_and(|state| state == "Z") && fields.get(1) == Some(&parent)
            })
        })
        .collect()
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
        assert!(is_running(std::process::id()));
        assert!(!is_running(1 << 23) && !is_zombie(1 << 23));
    }

    #[test]
    fn an_exited_child_is_a_zombie_of_its_parent_until_collected() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawning true");
        let pid = child.id();
        let me = std::process::id();
        let mut waited = 0;
        while !is_zombie(pid) && waited < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert!(is_zombie(pid), "the child exited and is not collected yet");
        assert!(!is_running(pid));
        assert!(zombie_children(me).contains(&pid));
        child.wait().expect("collecting the child");
        assert!(!is_zombie(pid) && !zombie_children(me).contains(&pid));
    }
}
