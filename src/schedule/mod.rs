//! TEMPORARY stand-in (replaced by the real module before commit).
use crate::job::Dialect;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    cron: Option<Cron>,
}
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ScheduleError {
    #[error("{0}")]
    Invalid(String),
}
impl Schedule {
    pub fn parse(expr: &str, dialect: Dialect, tz: Tz) -> Result<Schedule, ScheduleError> {
        let expr = expr.trim();
        if expr.eq_ignore_ascii_case("@reboot") {
            return Ok(Schedule {
                expr: expr.into(),
                tz,
                cron: None,
            });
        }
        let secs = if dialect == Dialect::Yaml {
            Seconds::Optional
        } else {
            Seconds::Disallowed
        };
        let p = CronParser::builder()
            .seconds(secs)
            .year(Year::Disallowed)
            .build();
        let cron = p
            .parse(expr)
            .map_err(|e| ScheduleError::Invalid(e.to_string()))?;
        Ok(Schedule {
            expr: expr.into(),
            tz,
            cron: Some(cron),
        })
    }
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let c = self.cron.as_ref()?;
        let l = t.with_timezone(&self.tz);
        c.find_next_occurrence(&l, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
    pub fn is_reboot(&self) -> bool {
        self.cron.is_none()
    }
    pub fn expr(&self) -> &str {
        &self.expr
    }
    pub fn timezone(&self) -> Tz {
        self.tz
    }
    pub fn is_fixed_time(&self) -> bool {
        false
    }
    pub fn has_seconds(&self) -> bool {
        self.expr.split_whitespace().count() == 6
    }
}
