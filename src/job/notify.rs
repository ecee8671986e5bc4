//! What a job's `notify:` asks for ([`NotifySpec`]): on which events
//! ([`NotifyOn`]) a webhook is called, and the healthchecks-style ping URL.
//! Plain data, like the rest of `job`: the URLs are checked by the source
//! that reads them and called by the daemon's notifier (`crate::notify`).

/// An event a `notify:` webhook may be called for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotifyOn {
    /// A run failed (`failed`, `timed_out`, `killed`) after its last attempt.
    Failure,
    /// A run succeeded after the job's previous run failed.
    Recovery,
    /// A run succeeded.
    Success,
    /// A run's command started.
    Start,
    /// A tick did not run: skipped (an overlap) or missed (jobrun could not
    /// claim or start it).
    Missed,
}

impl NotifyOn {
    pub const ALL: [NotifyOn; 5] = [
        NotifyOn::Failure,
        NotifyOn::Recovery,
        NotifyOn::Success,
        NotifyOn::Start,
        NotifyOn::Missed,
    ];

    /// The events of a `notify:` that names none.
    pub const DEFAULT: [NotifyOn; 2] = [NotifyOn::Failure, NotifyOn::Recovery];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Failure => "failure",
            NotifyOn::Recovery => "recovery",
            NotifyOn::Success => "success",
            NotifyOn::Start => "start",
            NotifyOn::Missed => "missed",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyOn> {
        NotifyOn::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// YAML `notify:` (a job's, or the file's `defaults:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// The events the webhook is called for, each once, in the order of
    /// [`NotifyOn::ALL`].
    pub on: Vec<NotifyOn>,
    /// POSTed a JSON body for each event of `on`.
    pub webhook: Option<String>,
    /// healthchecks.io style: `URL/start` when a run starts, `URL` when it
    /// succeeds, `URL/fail` when it fails, whatever `on` says (a dead man's
    /// switch must hear every success).
    pub ping: Option<String>,
}

impl NotifySpec {
    /// Whether the webhook is called for `event`.
    pub fn wants(&self, event: NotifyOn) -> bool {
        self.webhook.is_some() && self.on.contains(&event)
    }
}
