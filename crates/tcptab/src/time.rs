//! Wall-clock times as tcptab writes and reads them: milliseconds since the
//! Unix epoch inside (the history database's columns), RFC 3339 outside
//! (`2026-12-01T03:12:00.000Z`; read with any offset, `+01:00`).
//!
//! Only the proleptic Gregorian calendar and fixed offsets: no time zone
//! database, so a time without an offset is refused rather than guessed.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    ms_of(SystemTime::now())
}

/// `t` in milliseconds since the Unix epoch (negative before it).
pub fn ms_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `ms` as RFC 3339 in UTC with milliseconds: `2026-12-01T03:12:00.000Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// An RFC 3339 time (`2026-12-01T03:12:00Z`, `2026-12-01 04:12:00.5+01:00`)
/// in milliseconds since the Unix epoch. The error says what is wrong.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let b = text.as_bytes();
    let expect = "expected YYYY-MM-DDTHH:MM:SS with Z or an offset (2026-12-01T03:12:00Z, 2026-12-01T04:12:00+01:00)";
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let part = b.get(range).ok_or_else(|| expect.to_string())?;
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0, |n, &c| n * 10 + u32::from(c - b'0')))
        } else {
            Err(expect.to_string())
        }
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(expect.into());
    }
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if !(1..=12).contains(&mo) {
        return Err(format!("month {mo} is not 1 to 12"));
    }
    let max_day = month_days[mo as usize - 1] + u32::from(mo == 2 && leap);
    if d == 0 || d > max_day {
        return Err(format!("day {d} is not in month {mo} of {y}"));
    }
    if h > 23 || mi > 59 || s > 60 {
        return Err(format!("{h:02}:{mi:02}:{s:02} is not a time of day"));
    }
    let mut i = 19;
    let mut milli = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err("a '.' must be followed by digits (fractions of a second)".into());
        }
        // Milliseconds: the first three digits, padded.
        for k in 0..3 {
            milli = milli * 10
                + b.get(start + k)
                    .filter(|_| start + k < i)
                    .map_or(0, |c| u32::from(c - b'0'));
        }
    }
    let offset_min: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return Err(format!("offset {} is not an offset", &text[i..]));
            }
            let m = i64::from(oh * 60 + om);
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        None => {
            return Err(
                "a time needs Z or an offset (+01:00): tcptab does not guess a time zone".into(),
            )
        }
        Some(_) => return Err(expect.into()),
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s.min(59)) - offset_min * 60;
    if s == 60 {
        // Second 60 exists only in a leap second: 23:59:60 UTC at the end
        // of a day the IERS added one to. It is read as the last
        // millisecond of its minute (Unix time has no leap seconds).
        let utc = secs.div_euclid(86_400);
        let in_day = secs.rem_euclid(86_400);
        let (ly, lm, ld) = civil_from_days(utc);
        if in_day != 86_399 || !LEAP_SECONDS.contains(&(ly as u32, lm, ld)) {
            return Err(format!(
                "{h:02}:{mi:02}:60 is not a leap second (one was added only at 23:59:60 UTC at the end of {} days, the last on 2016-12-31)",
                LEAP_SECONDS.len()
            ));
        }
        return Ok(secs * 1000 + 999);
    }
    Ok(secs * 1000 + i64::from(milli))
}

/// The days at whose end (UTC) a leap second was added, from the IERS's
/// bulletins (none since 2016; none is planned).
const LEAP_SECONDS: [(u32, u32, u32); 27] = [
    (1972, 6, 30),
    (1972, 12, 31),
    (1973, 12, 31),
    (1974, 12, 31),
    (1975, 12, 31),
    (1976, 12, 31),
    (1977, 12, 31),
    (1978, 12, 31),
    (1979, 12, 31),
    (1981, 6, 30),
    (1982, 6, 30),
    (1983, 6, 30),
    (1985, 6, 30),
    (1987, 12, 31),
    (1989, 12, 31),
    (1990, 12, 31),
    (1992, 6, 30),
    (1993, 6, 30),
    (1994, 6, 30),
    (1995, 12, 31),
    (1997, 6, 30),
    (1998, 12, 31),
    (2005, 12, 31),
    (2008, 12, 31),
    (2012, 6, 30),
    (2015, 6, 30),
    (2016, 12, 31),
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_times() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_rfc3339("2026-12-01T03:12:00Z"), Ok(1_796_094_720_000));
        assert_eq!(
            parse_rfc3339("2026-12-01T04:12:00.250+01:00"),
            Ok(1_796_094_720_250)
        );
        assert_eq!(
            parse_rfc3339("2026-11-30 22:12:00-05:00"),
            Ok(1_796_094_720_000)
        );
        assert_eq!(
            format_rfc3339(1_796_094_720_250),
            "2026-12-01T03:12:00.250Z"
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").map(format_rfc3339),
            Ok("2024-02-29T00:00:00.000Z".into())
        );
    }

    #[test]
    fn bad_times_say_why() {
        for (text, says) in [
            ("2026-12-01T03:12:00", "does not guess a time zone"),
            ("2026-13-01T03:12:00Z", "month 13"),
            ("2025-02-29T03:12:00Z", "day 29"),
            ("2026-12-01T25:12:00Z", "not a time of day"),
            ("yesterday", "expected YYYY-MM-DD"),
            ("2026-12-01T03:12:00.Z", "followed by digits"),
            ("2026-12-01T03:12:00+1:00", "expected"),
            ("2026-12-01T03:12:60Z", "not a leap second"),
            ("2016-12-31T23:58:60Z", "not a leap second"),
            ("2017-12-31T23:59:60Z", "not a leap second"),
            ("2026-02-30T00:00:00Z", "day 30"),
        ] {
            let err = parse_rfc3339(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_leap_second_is_its_minute_s_last_millisecond() {
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z").map(format_rfc3339),
            Ok("2016-12-31T23:59:59.999Z".into())
        );
        // The same second, given with an offset.
        assert_eq!(
            parse_rfc3339("2017-01-01T00:59:60+01:00"),
            parse_rfc3339("2016-12-31T23:59:60Z")
        );
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_is_the_identity(ms in -62_000_000_000_000i64..253_402_300_799_999) {
            // Years 0 to 9999, the four-digit range.
            prop_assume!(ms >= -62_167_219_200_000);
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Ok(ms));
        }
    }
}
