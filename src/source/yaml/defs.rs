//! The serde definitions of a YAML job file: the typed shape each key is
//! deserialised into, in one pass, before any meaning is given to it
//! (`build` turns a job's definition into a `JobSpec`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::job::Concurrency;
use crate::source::yaml_slot::Slot;

/// A file with optional defaults and a list of jobs. Each job (and
/// `history:`) is a [`Slot`]: one that cannot be read is reported and left
/// out, from the same single parse.
#[derive(Default)]
pub(super) struct FileDef {
    pub(super) defaults: Option<DefaultsDef>,
    pub(super) jobs: Vec<Slot<JobDef>>,
    pub(super) history: Option<Slot<HistoryDef>>,
    /// Top-level keys that are none of the above.
    pub(super) unknown: Vec<String>,
}

/// The whole file, deserialised in one pass straight into the typed
/// definitions.
pub(super) enum TopDef {
    /// An empty file (or one of only comments).
    Empty,
    /// `defaults:`, `jobs:` and `history:`.
    File(Box<FileDef>),
    /// A bare list of jobs.
    List(Vec<Slot<JobDef>>),
}

impl<'de> Deserialize<'de> for TopDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::SeqAccessDeserializer;
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        struct Top;
        impl<'de> Visitor<'de> for Top {
            type Value = TopDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a mapping with `jobs:` (and optionally `defaults:`), or a list of jobs",
                )
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<TopDef, E> {
                Ok(TopDef::Empty)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<TopDef, E> {
                Ok(TopDef::Empty)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TopDef, A::Error> {
                Vec::<Slot<JobDef>>::deserialize(SeqAccessDeserializer::new(seq)).map(TopDef::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopDef, A::Error> {
                let mut file = FileDef::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "defaults" => file.defaults = map.next_value()?,
                        "jobs" => {
                            file.jobs = map
                                .next_value::<Option<Vec<Slot<JobDef>>>>()?
                                .unwrap_or_default()
                        }
                        "history" => file.history = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            file.unknown.push(key);
                        }
                    }
                }
                Ok(TopDef::File(Box::new(file)))
            }
        }
        d.deserialize_any(Top)
    }
}

/// The run history's retention (a global setting; one file may set it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryDef {
    pub(super) keep_days: Option<u32>,
    pub(super) keep_runs: Option<u32>,
}

/// Settings that apply to every job in the file unless the job sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultsDef {
    pub(super) timezone: Option<String>,
    pub(super) timeout: Option<DurationDef>,
    pub(super) kill_grace: Option<DurationDef>,
    pub(super) concurrency: Option<ConcurrencyDef>,
    pub(super) user: Option<String>,
    pub(super) workdir: Option<PathBuf>,
    pub(super) shell: Option<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, ScalarDef>,
    pub(super) jitter: Option<DurationDef>,
    pub(super) notify: Option<NotifyDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobDef {
    pub(super) name: String,
    pub(super) schedule: Option<ScheduleDef>,
    pub(super) command: Option<String>,
    pub(super) argv: Option<Vec<String>>,
    pub(super) user: Option<String>,
    pub(super) workdir: Option<PathBuf>,
    pub(super) shell: Option<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, ScalarDef>,
    pub(super) timezone: Option<String>,
    pub(super) timeout: Option<DurationDef>,
    pub(super) kill_grace: Option<DurationDef>,
    pub(super) concurrency: Option<ConcurrencyDef>,
    pub(super) enabled: Option<bool>,
    pub(super) requires: Option<Vec<RequirementDef>>,
    pub(super) requires_timeout: Option<DurationDef>,
    pub(super) retry: Option<RetryDef>,
    pub(super) catch_up: Option<DurationDef>,
    pub(super) jitter: Option<DurationDef>,
    pub(super) notify: Option<NotifyDef>,
    pub(super) run_on_start: Option<bool>,
    pub(super) on_success: Option<OneOrMany>,
    pub(super) on_failure: Option<OneOrMany>,
    pub(super) watch: Option<WatchDef>,
    pub(super) signal: Option<SignalDef>,
}

/// One readiness check: `{tcp: host:port}`, `{file: path}` or `{command: text}`
/// (a struct, not an enum: serde_yaml reads enums as `!tags`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequirementDef {
    pub(super) tcp: Option<String>,
    pub(super) file: Option<PathBuf>,
    pub(super) command: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryDef {
    pub(super) attempts: u32,
    pub(super) backoff: Option<DurationDef>,
    pub(super) max_backoff: Option<DurationDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WatchDef {
    pub(super) paths: OneOrMany,
    pub(super) debounce: Option<DurationDef>,
}

/// `notify: {on, webhook, ping}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyDef {
    pub(super) on: Option<OneOrMany>,
    pub(super) webhook: Option<String>,
    pub(super) ping: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignalDef {
    pub(super) pidfile: PathBuf,
    pub(super) signal: Option<String>,
    pub(super) process: Option<String>,
    pub(super) if_not_running: Option<IfNotRunningDef>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum IfNotRunningDef {
    Skip,
    Fail,
}

#[derive(Debug)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `schedule:`, which says so in its errors (`schedule: 5` was answered with
/// "data did not match any variant of untagged enum OneOrMany").
#[derive(Debug)]
pub(super) struct ScheduleDef(pub(super) OneOrMany);

impl<'de> Deserialize<'de> for ScheduleDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisit(
            "`schedule:` to be a cron expression in quotes, such as \"0 9 * * *\", or a list of them, such as [\"@daily\", \"0 12 * * *\"]",
        ))
        .map(ScheduleDef)
    }
}

/// By hand rather than `untagged`, whose error ("data did not match any variant
/// of untagged enum OneOrMany") named the type, not what to write.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisit("a string or a list of strings"))
    }
}

/// A string or a list of strings; the text says what was expected, in errors
/// about the value and about each item.
pub(super) struct OneOrManyVisit(pub(super) &'static str);

impl<'de> serde::de::Visitor<'de> for OneOrManyVisit {
    type Value = OneOrMany;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<serde_yaml::Value>()? {
            match item {
                serde_yaml::Value::String(s) => items.push(s),
                other => {
                    let kind = match other {
                        serde_yaml::Value::Number(_) => "a number in the list",
                        serde_yaml::Value::Bool(_) => "a boolean in the list",
                        serde_yaml::Value::Null => "an empty item in the list",
                        serde_yaml::Value::Sequence(_) => "a list in the list",
                        _ => "a mapping in the list",
                    };
                    return Err(serde::de::Error::invalid_type(
                        serde::de::Unexpected::Other(kind),
                        &self,
                    ));
                }
            }
        }
        Ok(OneOrMany::Many(items))
    }
}

/// `10m`, `1h 30m`, `90s`, or a bare number of seconds.
#[derive(Debug, Clone)]
pub(super) enum DurationDef {
    Seconds(u64),
    Text(String),
}

/// By hand rather than `untagged`, whose error names no duration ("data did
/// not match any variant") and which buffers the value first.
impl<'de> Deserialize<'de> for DurationDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = DurationDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a duration such as \"90s\", \"10m\" or \"1h 30m\", or a number of seconds",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationDef, E> {
                Ok(DurationDef::Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationDef, E> {
                u64::try_from(v)
                    .map(DurationDef::Seconds)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationDef, E> {
                Ok(DurationDef::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Environment values may be written as YAML numbers or booleans (`PORT:
/// 8080`); each is passed as text. By hand rather than `untagged`, which
/// buffered every value once more and whose error named no expectation.
#[derive(Debug, Clone)]
pub(super) struct ScalarDef(pub(super) String);

impl ScalarDef {
    pub(super) fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for ScalarDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = ScalarDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ConcurrencyDef {
    Forbid,
    Allow,
    Replace,
}

impl From<ConcurrencyDef> for Concurrency {
    fn from(c: ConcurrencyDef) -> Self {
        match c {
            ConcurrencyDef::Forbid => Concurrency::Forbid,
            ConcurrencyDef::Allow => Concurrency::Allow,
            ConcurrencyDef::Replace => Concurrency::Replace,
        }
    }
}
