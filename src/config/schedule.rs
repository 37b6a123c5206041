//! Weekly schedules of maintenance windows: `Sun 02:00-04:00`, `Mon-Fri 22:00-02:00` (a range
//! that ends before it starts runs past midnight into the next day), `Sat,Sun 00:00-24:00`, in
//! an IANA time zone.
//!
//! Times are wall-clock times of the zone. Across a daylight-saving change a window keeps its
//! wall-clock times: a start or an end that falls in the hour the clocks skip is the instant
//! they jump to, one that falls in the hour they repeat is its first occurrence.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// A parsed weekly schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The days a window starts on (Monday is bit 0).
    days: u8,
    /// Start and end as minutes after midnight; `end <= start` ends on the next day, and an end
    /// of 24:00 is 1440.
    start: u32,
    end: u32,
    /// The schedule as written, for messages and the API.
    text: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Mon),
    ("Tue", Weekday::Tue),
    ("Wed", Weekday::Wed),
    ("Thu", Weekday::Thu),
    ("Fri", Weekday::Fri),
    ("Sat", Weekday::Sat),
    ("Sun", Weekday::Sun),
];

fn day(s: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown day {s:?} (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid time {s:?}: HH:MM from 00:00 to 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Schedule {
    /// Parses `DAYS HH:MM-HH:MM`: days as `Mon`, `Mon-Fri` (ranges wrap: `Fri-Mon`), or a
    /// comma list of either.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut parts = text.split_whitespace();
        let (Some(days_text), Some(range), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "invalid schedule {text:?}: write days and a time range, e.g. \"Sun 02:00-04:00\" or \"Mon-Fri 22:00-02:00\""
            ));
        };
        let mut days = 0u8;
        for item in days_text.split(',') {
            match item.split_once('-') {
                None => days |= 1 << day(item)?,
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        days |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
            }
        }
        let (from, to) = range
            .split_once('-')
            .ok_or_else(|| format!("invalid time range {range:?}: HH:MM-HH:MM"))?;
        let (start, end) = (minutes(from)?, minutes(to)?);
        if start == 1440 {
            return Err(format!(
                "invalid time range {range:?}: a window starts before 24:00"
            ));
        }
        if start == end {
            return Err(format!("invalid time range {range:?}: the window is empty"));
        }
        Ok(Schedule {
            days,
            start,
            end,
            text: text.to_string(),
        })
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The occurrence that contains `now`, as `[start, end)` in UTC, if any.
    pub fn active_at(&self, tz: Tz, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&tz).date_naive();
        // A window that started yesterday may run past midnight into today.
        [today.pred_opt()?, today]
            .into_iter()
            .filter(|d| self.days & (1 << d.weekday().num_days_from_monday()) != 0)
            .filter_map(|d| self.occurrence(tz, d))
            .find(|(s, e)| *s <= now && now < *e)
    }

    /// The next occurrence that starts after `now` (within the coming week), as `[start, end)`.
    pub fn next_after(&self, tz: Tz, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&tz).date_naive();
        (0..8)
            .filter_map(|k| today.checked_add_signed(Duration::days(k)))
            .filter(|d| self.days & (1 << d.weekday().num_days_from_monday()) != 0)
            .filter_map(|d| self.occurrence(tz, d))
            .find(|(s, _)| *s > now)
    }

    /// The window that starts on local date `d`.
    fn occurrence(&self, tz: Tz, d: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let at = |date: NaiveDate, minutes: u32| -> Option<DateTime<Utc>> {
            let (date, minutes) = match minutes {
                1440 => (date.succ_opt()?, 0),
                m => (date, m),
            };
            let t = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0)?;
            local_to_utc(tz, date.and_time(t))
        };
        let start = at(d, self.start)?;
        let end_date = if self.end <= self.start {
            d.succ_opt()?
        } else {
            d
        };
        let end = at(end_date, self.end)?;
        (end > start).then_some((start, end))
    }
}

/// A wall-clock time of `tz` as an instant: the first of two in the repeated hour, the instant
/// the clocks jump to in the skipped one.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // In the skipped hour: the first valid minute after it is the instant of the jump.
        LocalResult::None => {
            (1..=240).find_map(
                |m| match tz.from_local_datetime(&(local + Duration::minutes(m))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                        Some(t.with_timezone(&Utc))
                    }
                    LocalResult::None => None,
                },
            )
        }
    }
}

/// A time zone by its IANA name (`Europe/Berlin`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}: an IANA name such as \"Europe/Berlin\" or \"UTC\"")
    })
}

#[cfg(test)]
mod tests;
