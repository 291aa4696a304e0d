//! Weekly time windows (`hours`), evaluated against the call's time in the policy's time zone.

use jiff::civil::Weekday as JiffWeekday;
use jiff::tz::TimeZone;

use crate::model::{HoursSpec, Weekday};
use crate::tri::Tri;

/// A compiled `hours` window.
#[derive(Clone, Debug)]
pub(crate) struct Hours {
    days: [bool; 7],
    from_minute: u16,
    to_minute: u16,
    tz: TimeZone,
}

fn minute_of_day(text: &str) -> Result<u16, String> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("time `{text}` must be written `HH:MM`"))?;
    let h: u16 = h
        .parse()
        .map_err(|_| format!("time `{text}` must be written `HH:MM`"))?;
    let m: u16 = m
        .parse()
        .map_err(|_| format!("time `{text}` must be written `HH:MM`"))?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(format!("time `{text}` is not between 00:00 and 24:00"));
    }
    Ok(h * 60 + m)
}

fn day_index(d: Weekday) -> usize {
    match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

impl Hours {
    pub(crate) fn compile(spec: &HoursSpec) -> Result<Self, String> {
        let from_minute = minute_of_day(&spec.from)?;
        let to_minute = minute_of_day(&spec.to)?;
        if from_minute == to_minute {
            return Err("`from` and `to` are equal, so the window is empty".to_owned());
        }
        let tz = match &spec.tz {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| {
                format!("unknown time zone `{name}`; use an IANA name such as `Europe/Berlin`")
            })?,
        };
        let mut days = [spec.days.is_empty(); 7];
        for d in &spec.days {
            if let Some(slot) = days.get_mut(day_index(*d)) {
                *slot = true;
            }
        }
        Ok(Hours {
            days,
            from_minute,
            to_minute,
            tz,
        })
    }

    /// Whether `time` falls in the window; unknown when the call carries no time.
    pub(crate) fn holds(&self, time: Option<jiff::Timestamp>) -> Tri {
        let Some(time) = time else {
            return Tri::Unknown;
        };
        let local = time.to_zoned(self.tz.clone());
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        let day = match local.weekday() {
            JiffWeekday::Monday => 0,
            JiffWeekday::Tuesday => 1,
            JiffWeekday::Wednesday => 2,
            JiffWeekday::Thursday => 3,
            JiffWeekday::Friday => 4,
            JiffWeekday::Saturday => 5,
            JiffWeekday::Sunday => 6,
        };
        let day_ok = self.days.get(day).copied().unwrap_or(false);
        let in_window = if self.from_minute < self.to_minute {
            minute >= self.from_minute && minute < self.to_minute
        } else {
            // A window across midnight, e.g. 22:00–06:00.
            minute >= self.from_minute || minute < self.to_minute
        };
        Tri::from_bool(day_ok && in_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(days: Vec<Weekday>, from: &str, to: &str, tz: Option<&str>) -> Hours {
        Hours::compile(&HoursSpec {
            days,
            from: from.into(),
            to: to.into(),
            tz: tz.map(str::to_owned),
        })
        .unwrap()
    }

    #[test]
    fn office_hours_in_berlin() {
        let h = hours(
            vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            "08:00",
            "18:00",
            Some("Europe/Berlin"),
        );
        // Monday 2026-01-05 09:30 Berlin = 08:30 UTC.
        assert_eq!(
            h.holds(Some("2026-01-05T08:30:00Z".parse().unwrap())),
            Tri::True
        );
        // 06:59 UTC = 07:59 Berlin: before the window.
        assert_eq!(
            h.holds(Some("2026-01-05T06:59:00Z".parse().unwrap())),
            Tri::False
        );
        // Saturday.
        assert_eq!(
            h.holds(Some("2026-01-10T10:00:00Z".parse().unwrap())),
            Tri::False
        );
        assert_eq!(h.holds(None), Tri::Unknown);
    }

    #[test]
    fn window_across_midnight() {
        let h = hours(vec![], "22:00", "06:00", None);
        assert_eq!(
            h.holds(Some("2026-01-05T23:00:00Z".parse().unwrap())),
            Tri::True
        );
        assert_eq!(
            h.holds(Some("2026-01-05T05:59:00Z".parse().unwrap())),
            Tri::True
        );
        assert_eq!(
            h.holds(Some("2026-01-05T12:00:00Z".parse().unwrap())),
            Tri::False
        );
    }

    #[test]
    fn rejects_bad_windows() {
        let spec = |from: &str, to: &str, tz: Option<&str>| HoursSpec {
            days: vec![],
            from: from.into(),
            to: to.into(),
            tz: tz.map(str::to_owned),
        };
        assert!(
            Hours::compile(&spec("8", "18:00", None))
                .unwrap_err()
                .contains("HH:MM")
        );
        assert!(
            Hours::compile(&spec("25:00", "18:00", None))
                .unwrap_err()
                .contains("between")
        );
        assert!(
            Hours::compile(&spec("08:00", "08:00", None))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            Hours::compile(&spec("08:00", "09:00", Some("Mars/Olympus")))
                .unwrap_err()
                .contains("unknown time zone")
        );
    }
}
