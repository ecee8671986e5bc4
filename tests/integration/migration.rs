//! What a user moving from cron expects to stay the same (issue 12): where a
//! crontab job runs, and what `check` says about copies of one job.

use crate::harness::Test;

/// Cron runs a crontab job in its user's `HOME`, so relative paths in the
/// command (`./bin/report.sh >> report.log`) work; jobrun's own directory
/// is not the user's.
#[test]
fn crontab_jobs_run_in_the_home_of_their_user() {
    let t = Test::new();
    for home in ["set", "inherited"] {
        t.script(
            &format!("{home}/bin/report.sh"),
            &format!("#!/bin/sh\npwd -P > {{root}}/{home}.pwd\n"),
        );
    }
    // The crontab's own HOME= line wins, as in cron.
    t.write(
        "with-home",
        "HOME={root}/set\n* * * * * ./bin/report.sh >> report.log\n",
    );
    // Without one, the job runs in the HOME of the user it runs as: here
    // jobrun's own user, whose HOME is jobrun's.
    t.write("without-home", "* * * * * ./bin/report.sh >> report.log\n");
    let root = t.root().canonicalize().unwrap();
    for (file, home) in [("with-home", "set"), ("without-home", "inherited")] {
        let out = Test::new()
            .env("HOME", &root.join("inherited").display().to_string())
            .env(
                "JOBRUN_STATE_DIR",
                &root.join(format!("state-{file}")).display().to_string(),
            )
            .run_args([
                "--crontab".to_string(),
                root.join(file).display().to_string(),
                "run".into(),
                "report".into(),
            ]);
        assert_eq!(out.code, 0, "{file}: {}{}", out.stdout, out.stderr);
        let pwd = std::fs::read_to_string(root.join(format!("{home}.pwd"))).unwrap();
        assert_eq!(pwd.trim(), root.join(home).display().to_string(), "{file}");
        assert!(root.join(home).join("report.log").exists(), "{file}");
    }
}
