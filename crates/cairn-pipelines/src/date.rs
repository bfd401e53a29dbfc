//! The date remapper's formats: ISO 8601 (with or without a zone and fraction), epoch
//! numbers and numeric strings, Apache's `dd/MMM/yyyy:HH:mm:ss Z`, RFC 2822, ctime and the
//! syslog `MMM d HH:mm:ss` of RFC 3164. A zone-less time is UTC.

use serde_json::Value;

use crate::civil::{civil_from_days, days_from_civil, days_in_month};

/// The attributes Datadog reads the official date from when none are configured.
pub(crate) const DEFAULT_SOURCES: &[&str] = &[
    "timestamp",
    "date",
    "_timestamp",
    "Timestamp",
    "eventTime",
    "published_date",
];

/// Milliseconds since the epoch, or `None` when `v` is no date this remapper knows.
pub(crate) fn parse(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => epoch(n.as_f64()?),
        Value::String(s) => parse_str(s.trim(), now_ms()),
        _ => None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An epoch number in the unit its size suggests: seconds up to 1e11 (the year 5138),
/// then milliseconds, microseconds, nanoseconds.
fn epoch(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = if n < 1e11 {
        n * 1000.0
    } else if n < 1e14 {
        n
    } else if n < 1e17 {
        n / 1000.0
    } else {
        n / 1_000_000.0
    };
    // Past the year 9999 is no date anyone logs.
    (ms < 253_402_300_800_000.0).then_some(ms as i64)
}

/// `now_ms` fills in the year that syslog leaves out.
pub(crate) fn parse_str(s: &str, now_ms: i64) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return epoch(s.parse::<f64>().ok()?);
    }
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    if let Some(ms) = c.attempt(Cursor::iso) {
        return Some(ms);
    }
    if let Some(ms) = c.attempt(Cursor::apache) {
        return Some(ms);
    }
    if let Some(ms) = c.attempt(Cursor::rfc2822) {
        return Some(ms);
    }
    if let Some(ms) = c.attempt(Cursor::ctime) {
        return Some(ms);
    }
    c.attempt(|c| c.syslog(now_ms))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// Runs one format from the start; it must consume the whole text.
    fn attempt(&mut self, f: impl FnOnce(&mut Self) -> Option<i64>) -> Option<i64> {
        self.i = 0;
        let ms = f(self)?;
        (self.i == self.s.len()).then_some(ms)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn eat_any(&mut self, set: &[u8]) -> Option<u8> {
        let b = self.peek()?;
        set.contains(&b).then(|| {
            self.i += 1;
            b
        })
    }

    fn spaces(&mut self) -> usize {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i - start
    }

    /// Exactly `min..=max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        let mut n: i64 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    n = n * 10 + i64::from(b - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(n)
    }

    fn month(&mut self) -> Option<i64> {
        let word = self.s.get(self.i..self.i + 3)?;
        let lower = word.to_ascii_lowercase();
        let m = MONTHS
            .iter()
            .position(|m| m.as_bytes() == lower.as_slice())?;
        self.i += 3;
        // Full month names (`October`) are allowed too.
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.i += 1;
        }
        Some(m as i64 + 1)
    }

    fn weekday(&mut self) -> Option<()> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.i += 1;
        }
        (self.i - start >= 3).then_some(())
    }

    /// `HH:MM[:SS[.fraction]]` as milliseconds into the day.
    fn time(&mut self) -> Option<i64> {
        let h = self.digits(1, 2)?;
        self.eat(b':')?;
        let m = self.digits(2, 2)?;
        let mut s = 0;
        let mut frac_ms = 0;
        if self.eat(b':').is_some() {
            s = self.digits(2, 2)?;
            if self.eat_any(b".,").is_some() {
                frac_ms = self.fraction()?;
            }
        }
        // 60 is a leap second, which the epoch folds into the next one.
        (h < 24 && m < 60 && s <= 60).then_some(((h * 60 + m) * 60 + s) * 1000 + frac_ms)
    }

    /// Digits after the decimal point, as milliseconds (the rest is dropped).
    fn fraction(&mut self) -> Option<i64> {
        let start = self.i;
        let mut ms = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            let place = self.i - start;
            if place < 3 {
                ms = ms * 10 + i64::from(b - b'0');
            }
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 {
            return None;
        }
        for _ in len..3 {
            ms *= 10;
        }
        Some(ms)
    }

    /// `Z`, `±HH:MM`, `±HHMM`, `±HH`, `UTC`, `GMT`, as an offset in minutes east of UTC.
    fn zone(&mut self) -> Option<i64> {
        if self.eat_any(b"Zz").is_some() {
            return Some(0);
        }
        for name in ["UTC", "GMT", "UT"] {
            if self.s[self.i..].starts_with(name.as_bytes()) {
                self.i += name.len();
                return Some(0);
            }
        }
        let sign = match self.eat_any(b"+-")? {
            b'-' => -1,
            _ => 1,
        };
        let h = self.digits(2, 2)?;
        self.eat(b':');
        let m = self.digits(2, 2).unwrap_or(0);
        (h <= 18 && m < 60).then_some(sign * (h * 60 + m))
    }

    fn iso(&mut self) -> Option<i64> {
        let y = self.digits(4, 4)?;
        let sep = self.eat_any(b"-/")?;
        let mo = self.digits(1, 2)?;
        self.eat(sep)?;
        let d = self.digits(1, 2)?;
        let mut day_ms = 0;
        let mut offset = 0;
        if self.i < self.s.len() {
            self.eat_any(b"T ")?;
            day_ms = self.time()?;
            self.spaces();
            if self.i < self.s.len() {
                offset = self.zone()?;
            }
        }
        at(y, mo, d, day_ms, offset)
    }

    fn apache(&mut self) -> Option<i64> {
        let d = self.digits(1, 2)?;
        self.eat(b'/')?;
        let mo = self.month()?;
        self.eat(b'/')?;
        let y = self.digits(4, 4)?;
        self.eat(b':')?;
        let day_ms = self.time()?;
        let offset = if self.spaces() > 0 { self.zone()? } else { 0 };
        at(y, mo, d, day_ms, offset)
    }

    fn rfc2822(&mut self) -> Option<i64> {
        if self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.weekday()?;
            self.eat(b',')?;
            self.spaces();
        }
        let d = self.digits(1, 2)?;
        (self.spaces() > 0).then_some(())?;
        let mo = self.month()?;
        (self.spaces() > 0).then_some(())?;
        let y = self.digits(4, 4)?;
        (self.spaces() > 0).then_some(())?;
        let day_ms = self.time()?;
        let offset = if self.spaces() > 0 { self.zone()? } else { 0 };
        at(y, mo, d, day_ms, offset)
    }

    /// `Wed Oct 11 14:32:52 2000`.
    fn ctime(&mut self) -> Option<i64> {
        self.weekday()?;
        (self.spaces() > 0).then_some(())?;
        let mo = self.month()?;
        (self.spaces() > 0).then_some(())?;
        let d = self.digits(1, 2)?;
        (self.spaces() > 0).then_some(())?;
        let day_ms = self.time()?;
        (self.spaces() > 0).then_some(())?;
        let y = self.digits(4, 4)?;
        at(y, mo, d, day_ms, 0)
    }

    /// `Oct 11 22:14:15` without a year: the most recent such date that is not more than a
    /// day ahead of now (a log from 31 December read on 1 January is last year's).
    fn syslog(&mut self, now_ms: i64) -> Option<i64> {
        let mo = self.month()?;
        (self.spaces() > 0).then_some(())?;
        let d = self.digits(1, 2)?;
        (self.spaces() > 0).then_some(())?;
        let day_ms = self.time()?;
        let (year_now, _, _) = civil_from_days(now_ms.div_euclid(86_400_000));
        let this_year = at(year_now, mo, d, day_ms, 0)?;
        if this_year > now_ms + 86_400_000 {
            at(year_now - 1, mo, d, day_ms, 0)
        } else {
            Some(this_year)
        }
    }
}

fn at(y: i64, mo: i64, d: i64, day_ms: i64, offset_minutes: i64) -> Option<i64> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400_000 + day_ms - offset_minutes * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-01T00:00:00Z
    const NEW_YEAR: i64 = 1_704_067_200_000;

    #[test]
    fn syslog_dates_take_the_year_that_puts_them_in_the_past() {
        // read just after midnight on 1 January: 31 December is last year's
        assert_eq!(
            parse_str("Dec 31 23:59:59", NEW_YEAR),
            Some(NEW_YEAR - 1000)
        );
        // a date within the next day is this year's (clocks disagree a little)
        assert_eq!(
            parse_str("Jan  1 12:00:00", NEW_YEAR),
            Some(NEW_YEAR + 43_200_000)
        );
        assert_eq!(parse_str("Jan 1 00:00:01", NEW_YEAR), Some(NEW_YEAR + 1000));
        // 29 February exists in 2024 only
        assert_eq!(
            parse_str("Feb 29 00:00:00", NEW_YEAR + 100 * 86_400_000),
            Some(1_709_164_800_000)
        );
        assert_eq!(parse_str("Feb 30 00:00:00", NEW_YEAR), None);
    }

    #[test]
    fn text_that_is_no_date_is_refused() {
        for s in [
            "",
            "T",
            "2024-03",
            "2024-03-05T",
            "2024-03-05T25:00:00Z",
            "2024-03-05T10:00:00+99:00",
            "10/Foo/2000:13:55:36 -0700",
            "Mar 5",
            "1.2.3",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_str(s, NEW_YEAR), None, "{s:?}");
        }
    }
}
