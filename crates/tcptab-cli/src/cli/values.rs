//! The option values the command line parses itself: durations within a
//! range, process ids, users.

/// `--uid`: a number, or a user name from /etc/passwd.
pub(crate) fn parse_user(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse::<u32>().ok()?;
            Some((name, uid))
        })
        .find(|(name, _)| *name == text)
        .map(|(_, uid)| uid)
        .ok_or_else(|| {
            format!(
                "'{}' is neither a uid nor a user in /etc/passwd",
                tcptab::filter::excerpt(text)
            )
        })
}

/// `--pid` and the like: a process id.
pub(crate) fn parse_pid(text: &str) -> Result<u32, String> {
    text.parse::<u32>().map_err(|_| {
        format!(
            "'{}' is not a process id (a number such as 1234)",
            tcptab::filter::excerpt(text)
        )
    })
}

/// A duration: a bare number of seconds (`1`, `0.5`) or with units (`1s`,
/// `500ms`, `2m`), within `min..=max`; an error names what is expected.
pub(crate) fn duration_in(
    text: &str,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let shown = tcptab::filter::excerpt(text);
    if text.trim_start().starts_with('-') {
        return Err(format!("'{shown}': a duration cannot be negative"));
    }
    let d = match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => std::time::Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("'{shown}' is too long a duration"))?,
        Ok(_) => {
            return Err(format!(
                "'{shown}' is not a duration (a number of seconds such as 1 or 0.5, or 500ms, 2m)"
            ))
        }
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("'{shown}' is not a duration such as 1, 0.5, 1s or 500ms ({e})")
        })?,
    };
    let fmt = |d: std::time::Duration| match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 && d.subsec_nanos() == 0 => {
            format!("{} days", s / 86_400)
        }
        _ => humantime::format_duration(d).to_string(),
    };
    if d < min {
        return Err(if min.is_zero() {
            format!("'{shown}' is not a duration")
        } else if d.is_zero() {
            format!(
                "'{shown}': the duration must be more than zero (at least {})",
                fmt(min)
            )
        } else {
            format!("'{shown}' is too short: at least {}", fmt(min))
        });
    }
    if d > max {
        return Err(format!("'{shown}' is too long: at most {}", fmt(max)));
    }
    Ok(d)
}

pub(crate) const MS: std::time::Duration = std::time::Duration::from_millis(1);
pub(crate) const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
pub(crate) const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `watch --interval`: 10 ms to a day (a shorter one would spin without
/// reading the notifications).
pub(crate) fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, 10 * MS, DAY)
}

/// `record --retention`: a second to ten years.
pub(crate) fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, std::time::Duration::from_secs(1), 3650 * DAY)
}

/// `watch --duration`: more than zero, at most a year.
pub(crate) fn parse_run_time(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, MS, 365 * DAY)
}

/// `serve --min-interval`: 0 (every scrape collects) to an hour.
pub(crate) fn parse_min_interval(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, std::time::Duration::ZERO, HOUR)
}

/// `serve --read-timeout`: 100 ms to a minute.
pub(crate) fn parse_read_timeout(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, 100 * MS, std::time::Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any text into every duration option: an error or a duration in
        /// its range, never a panic.
        #[test]
        fn durations_never_panic_and_stay_in_range(text in any::<String>()) {
            for (parse, min, max) in [
                (parse_interval as fn(&str) -> Result<Duration, String>, 10 * MS, DAY),
                (parse_run_time, MS, 365 * DAY),
                (parse_min_interval, Duration::ZERO, HOUR),
                (parse_read_timeout, 100 * MS, Duration::from_secs(60)),
            ] {
                if let Ok(d) = parse(&text) {
                    prop_assert!(d >= min && d <= max, "{text:?}: {d:?}");
                }
            }
        }

        /// Numbers and units, the shapes people type.
        #[test]
        fn duration_shapes(n in any::<f64>(), unit in prop::sample::select(vec!["", "s", "ms", "m", "h", "d", "ns", "years"])) {
            let text = format!("{n}{unit}");
            if let Ok(d) = parse_interval(&text) {
                prop_assert!(d >= 10 * MS && d <= DAY, "{text:?}: {d:?}");
            }
        }
    }

    #[test]
    fn bare_seconds_and_units() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("1e308").is_err());
        assert!(parse_interval("inf").is_err());
        assert!(parse_interval("-1").is_err());
        assert_eq!(parse_min_interval("0"), Ok(Duration::ZERO));
    }
}

/// `--state NAME`: taken as typed (the filter reads it, with its own
/// errors), and the names a user types offered to completion: ss's state
/// names and groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateName;

impl StateName {
    /// ss's names of the states and its groups, in ss's order.
    pub const NAMES: [&'static str; 17] = [
        "established",
        "syn-sent",
        "syn-recv",
        "fin-wait-1",
        "fin-wait-2",
        "time-wait",
        "closed",
        "close-wait",
        "last-ack",
        "listening",
        "closing",
        "all",
        "connected",
        "synchronized",
        "bucket",
        "big",
        "bound-inactive",
    ];
}

impl clap::builder::TypedValueParser for StateName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            Self::NAMES
                .iter()
                .map(|n| clap::builder::PossibleValue::new(*n)),
        ))
    }
}
