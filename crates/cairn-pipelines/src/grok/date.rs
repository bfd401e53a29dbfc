//! The `date("pattern"[, "timezone"[, "locale"]])` matcher: Java-style date patterns
//! (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`, `dd/MMM/yyyy:HH:mm:ss Z`, …) turned into a regex fragment
//! for the rule and a scanner that reads the matched text into epoch milliseconds; month and
//! day names in English or in the locale's language (seven are known).

use std::fmt::Write as _;

use crate::civil::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Month and day names of a language other than English: for each month and weekday, the
/// spellings a log may use (the full name, its abbreviations with and without their dot, and
/// the forms without accents). Matching is case-insensitive and takes the longest spelling.
pub(crate) struct Names {
    months: [&'static [&'static str]; 12],
    days: [&'static [&'static str]; 7],
}

const FR: Names = Names {
    months: [
        &["janvier", "janv.", "janv"],
        &["février", "févr.", "févr", "fevrier", "fevr.", "fevr"],
        &["mars"],
        &["avril", "avr.", "avr"],
        &["mai"],
        &["juin"],
        &["juillet", "juil.", "juil"],
        &["août", "aout"],
        &["septembre", "sept.", "sept"],
        &["octobre", "oct.", "oct"],
        &["novembre", "nov.", "nov"],
        &["décembre", "déc.", "déc", "decembre", "dec.", "dec"],
    ],
    days: [
        &["lundi", "lun.", "lun"],
        &["mardi", "mar.", "mar"],
        &["mercredi", "mer.", "mer"],
        &["jeudi", "jeu.", "jeu"],
        &["vendredi", "ven.", "ven"],
        &["samedi", "sam.", "sam"],
        &["dimanche", "dim.", "dim"],
    ],
};

const DE: Names = Names {
    months: [
        &["januar", "jan.", "jan"],
        &["februar", "feb.", "feb"],
        &["märz", "mär.", "mär", "maerz"],
        &["april", "apr.", "apr"],
        &["mai"],
        &["juni", "jun.", "jun"],
        &["juli", "jul.", "jul"],
        &["august", "aug.", "aug"],
        &["september", "sept.", "sept", "sep.", "sep"],
        &["oktober", "okt.", "okt"],
        &["november", "nov.", "nov"],
        &["dezember", "dez.", "dez"],
    ],
    days: [
        &["montag", "mo.", "mo"],
        &["dienstag", "di.", "di"],
        &["mittwoch", "mi.", "mi"],
        &["donnerstag", "do.", "do"],
        &["freitag", "fr.", "fr"],
        &["samstag", "sa.", "sa"],
        &["sonntag", "so.", "so"],
    ],
};

const ES: Names = Names {
    months: [
        &["enero", "ene.", "ene"],
        &["febrero", "feb.", "feb"],
        &["marzo", "mar.", "mar"],
        &["abril", "abr.", "abr"],
        &["mayo", "may.", "may"],
        &["junio", "jun.", "jun"],
        &["julio", "jul.", "jul"],
        &["agosto", "ago.", "ago"],
        &["septiembre", "sept.", "sept", "sep.", "sep"],
        &["octubre", "oct.", "oct"],
        &["noviembre", "nov.", "nov"],
        &["diciembre", "dic.", "dic"],
    ],
    days: [
        &["lunes", "lun.", "lun"],
        &["martes", "mar.", "mar"],
        &["miércoles", "mié.", "mié", "miercoles", "mie.", "mie"],
        &["jueves", "jue.", "jue"],
        &["viernes", "vie.", "vie"],
        &["sábado", "sáb.", "sáb", "sabado", "sab.", "sab"],
        &["domingo", "dom.", "dom"],
    ],
};

const IT: Names = Names {
    months: [
        &["gennaio", "gen"],
        &["febbraio", "feb"],
        &["marzo", "mar"],
        &["aprile", "apr"],
        &["maggio", "mag"],
        &["giugno", "giu"],
        &["luglio", "lug"],
        &["agosto", "ago"],
        &["settembre", "set"],
        &["ottobre", "ott"],
        &["novembre", "nov"],
        &["dicembre", "dic"],
    ],
    days: [
        &["lunedì", "lunedi", "lun"],
        &["martedì", "martedi", "mar"],
        &["mercoledì", "mercoledi", "mer"],
        &["giovedì", "giovedi", "gio"],
        &["venerdì", "venerdi", "ven"],
        &["sabato", "sab"],
        &["domenica", "dom"],
    ],
};

const PT: Names = Names {
    months: [
        &["janeiro", "jan.", "jan"],
        &["fevereiro", "fev.", "fev"],
        &["março", "marco", "mar.", "mar"],
        &["abril", "abr.", "abr"],
        &["maio", "mai.", "mai"],
        &["junho", "jun.", "jun"],
        &["julho", "jul.", "jul"],
        &["agosto", "ago.", "ago"],
        &["setembro", "set.", "set"],
        &["outubro", "out.", "out"],
        &["novembro", "nov.", "nov"],
        &["dezembro", "dez.", "dez"],
    ],
    days: [
        &["segunda-feira", "segunda", "seg.", "seg"],
        &[
            "terça-feira",
            "terça",
            "terca-feira",
            "terca",
            "ter.",
            "ter",
        ],
        &["quarta-feira", "quarta", "qua.", "qua"],
        &["quinta-feira", "quinta", "qui.", "qui"],
        &["sexta-feira", "sexta", "sex.", "sex"],
        &["sábado", "sáb.", "sáb", "sabado", "sab.", "sab"],
        &["domingo", "dom.", "dom"],
    ],
};

const NL: Names = Names {
    months: [
        &["januari", "jan.", "jan"],
        &["februari", "feb.", "feb"],
        &["maart", "mrt.", "mrt", "mar"],
        &["april", "apr.", "apr"],
        &["mei"],
        &["juni", "jun.", "jun"],
        &["juli", "jul.", "jul"],
        &["augustus", "aug.", "aug"],
        &["september", "sept", "sep.", "sep"],
        &["oktober", "okt.", "okt"],
        &["november", "nov.", "nov"],
        &["december", "dec.", "dec"],
    ],
    days: [
        &["maandag", "ma.", "ma"],
        &["dinsdag", "di.", "di"],
        &["woensdag", "wo.", "wo"],
        &["donderdag", "do.", "do"],
        &["vrijdag", "vr.", "vr"],
        &["zaterdag", "za.", "za"],
        &["zondag", "zo.", "zo"],
    ],
};

/// The names of `locale` (a Java locale id: `fr`, `fr_FR`, `de-CH`…); `None` for English.
fn names_of(locale: Option<&str>) -> Result<Option<&'static Names>, String> {
    let Some(locale) = locale.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let language = locale
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match language.as_str() {
        "en" => None,
        "fr" => Some(&FR),
        "de" => Some(&DE),
        "es" => Some(&ES),
        "it" => Some(&IT),
        "pt" => Some(&PT),
        "nl" => Some(&NL),
        _ => {
            return Err(format!(
                "date locale {locale:?} is not supported: month and day names are known in en, fr, de, es, it, pt and nl"
            ))
        }
    })
}

/// A case-insensitive alternation of every spelling, longest first.
fn names_regex(table: &[&[&str]]) -> String {
    let mut all: Vec<&str> = table.iter().flat_map(|s| s.iter().copied()).collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    all.dedup();
    let alts: Vec<String> = all.iter().map(|s| regex::escape(s)).collect();
    format!("(?i:{})", alts.join("|"))
}

/// Bytes of `rest` that spell `word`, ignoring case.
fn prefix_ci(rest: &str, word: &str) -> Option<usize> {
    let mut chars = rest.char_indices();
    let mut end = 0;
    for w in word.chars() {
        let (i, r) = chars.next()?;
        if !r.to_lowercase().eq(w.to_lowercase()) {
            return None;
        }
        end = i + r.len_utf8();
    }
    Some(end)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Year,
    TwoDigitYear,
    Month,
    MonthShort,
    MonthLong,
    Day,
    DayOfYear,
    Hour24,
    /// `k`: 1–24.
    Hour24From1,
    /// `h`: 1–12.
    Hour12,
    /// `K`: 0–11.
    Hour12From0,
    Minute,
    Second,
    Fraction,
    AmPm,
    WeekdayShort,
    WeekdayLong,
    Era,
    /// `Z`, `ZZ`, `X`…: a numeric offset or `Z`.
    Offset,
    /// `z` or `ZZZ`: an abbreviation (`UTC`, `PST`) or a zone id.
    ZoneName,
}

impl Field {
    fn numeric(self) -> bool {
        !matches!(
            self,
            Field::MonthShort
                | Field::MonthLong
                | Field::AmPm
                | Field::WeekdayShort
                | Field::WeekdayLong
                | Field::Era
                | Field::Offset
                | Field::ZoneName
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    /// `width` is exact when the field abuts another numeric field (`MMdd`, `HHmmss`), as in
    /// Java; otherwise it is at most `width` digits (`d` reads `1` and `16`).
    Number {
        field: Field,
        min: usize,
        max: usize,
    },
    Text(Field),
}

/// How a date with no zone of its own is placed in time.
#[derive(Debug, Clone)]
pub(crate) enum Zone {
    Fixed(i64),
    Named(jiff::tz::TimeZone),
}

#[derive(Clone)]
pub(crate) struct DateFormat {
    parts: Vec<Part>,
    zone: Zone,
    has_month_or_day: bool,
    /// Month and day names of the locale; `None` is English.
    names: Option<&'static Names>,
}

impl std::fmt::Debug for DateFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DateFormat")
            .field("parts", &self.parts)
            .field("zone", &self.zone)
            .field("localised", &self.names.is_some())
            .finish()
    }
}

impl DateFormat {
    pub(crate) fn new(
        pattern: &str,
        timezone: Option<&str>,
        locale: Option<&str>,
    ) -> Result<DateFormat, String> {
        let parts = parse_pattern(pattern)?;
        let names = names_of(locale)?;
        let zone = match timezone {
            None => Zone::Fixed(0),
            Some(tz) => parse_zone_arg(tz)?,
        };
        let has = |f: &[Field]| {
            parts.iter().any(|p| match p {
                Part::Number { field, .. } | Part::Text(field) => f.contains(field),
                Part::Literal(_) => false,
            })
        };

        let has_month_or_day = has(&[
            Field::Month,
            Field::MonthShort,
            Field::MonthLong,
            Field::Day,
            Field::DayOfYear,
        ]);
        Ok(DateFormat {
            parts,
            zone,
            has_month_or_day,
            names,
        })
    }

    /// A non-capturing regex for the rule, so the user's pattern decides what the date spans.
    pub(crate) fn regex(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(&regex::escape(s)),
                Part::Number { min, max, .. } => {
                    if min == max {
                        let _ = write!(out, "[0-9]{{{min}}}");
                    } else {
                        let _ = write!(out, "[0-9]{{{min},{max}}}");
                    }
                }
                Part::Text(field) => match (self.names, field) {
                    (Some(n), Field::MonthShort | Field::MonthLong) => {
                        out.push_str(&names_regex(&n.months))
                    }
                    (Some(n), Field::WeekdayShort | Field::WeekdayLong) => {
                        out.push_str(&names_regex(&n.days))
                    }
                    _ => out.push_str(text_regex(*field)),
                },
            }
        }
        out
    }

    /// Epoch milliseconds of `text`, which the rule's regex has already matched.
    pub(crate) fn parse(&self, text: &str) -> Option<i64> {
        let mut s = Scanner { text, pos: 0 };
        let mut year: Option<i64> = None;
        let mut month = 1i64;
        let mut day = 1i64;
        let mut day_of_year: Option<i64> = None;
        let mut hour = 0i64;
        let mut pm: Option<bool> = None;
        let mut twelve_hour = false;
        let mut minute = 0i64;
        let mut second = 0i64;
        let mut millis = 0i64;
        let mut offset_secs: Option<i64> = None;
        let mut text_zone: Option<jiff::tz::TimeZone> = None;
        for (at, part) in self.parts.iter().enumerate() {
            // A name is read up to what follows it (`sept.` before a literal `.` is `sept`).
            let then = match self.parts.get(at + 1) {
                Some(Part::Literal(l)) => l.as_str(),
                _ => "",
            };
            match part {
                Part::Literal(lit) => {
                    if !s.text[s.pos..].starts_with(lit.as_str()) {
                        return None;
                    }
                    s.pos += lit.len();
                }
                Part::Number { field, min, max } => {
                    let digits = s.digits(*min, *max)?;
                    let n: i64 = digits.parse().ok()?;
                    match field {
                        Field::Year => year = Some(n),
                        Field::TwoDigitYear => {
                            year = Some(if n < 70 { 2000 + n } else { 1900 + n })
                        }
                        Field::Month => month = n,
                        Field::Day => day = n,
                        Field::DayOfYear => day_of_year = Some(n),
                        Field::Hour24 => hour = n,
                        Field::Hour24From1 => hour = n % 24,
                        Field::Hour12 | Field::Hour12From0 => {
                            hour = n % 12;
                            twelve_hour = true;
                        }
                        Field::Minute => minute = n,
                        Field::Second => second = n,
                        // A fraction, not a count of milliseconds: `.605188` is 605 ms.
                        Field::Fraction => {
                            let mut ms = 0i64;
                            for (i, b) in digits.bytes().take(3).enumerate() {
                                ms += i64::from(b - b'0') * [100, 10, 1][i];
                            }
                            millis = ms;
                        }
                        _ => return None,
                    }
                }
                Part::Text(field) => match field {
                    Field::MonthShort | Field::MonthLong => {
                        month = match self.names {
                            Some(n) => s.spelled(&n.months, then)?,
                            None => s.name(&MONTHS)?,
                        } as i64
                            + 1;
                    }
                    Field::WeekdayShort | Field::WeekdayLong => {
                        match self.names {
                            Some(n) => s.spelled(&n.days, then)?,
                            None => s.name(&DAYS)?,
                        };
                    }
                    Field::AmPm => {
                        let t = s.take(2)?;
                        pm = Some(t.eq_ignore_ascii_case("pm"));
                    }
                    Field::Era => {
                        s.take(2)?;
                    }
                    Field::Offset => offset_secs = Some(s.offset()?),
                    Field::ZoneName => match s.zone_name()? {
                        Zone::Fixed(secs) => offset_secs = Some(secs),
                        Zone::Named(tz) => text_zone = Some(tz),
                    },
                    _ => return None,
                },
            }
        }
        if s.pos != text.len() {
            return None;
        }
        if twelve_hour && pm == Some(true) {
            hour += 12;
        }
        let year = match year {
            Some(y) => y,
            // Datadog reads a date without a year (syslog's `MMM dd HH:mm:ss`) in the current
            // year, and a bare time of day on 1970-01-01.
            None if self.has_month_or_day => current_year(),
            None => 1970,
        };
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let days = match day_of_year {
            Some(doy) => days_from_civil(year, 1, 1) + doy - 1,
            None => days_from_civil(year, month, day),
        };
        let local_ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis;
        let offset_ms = match (offset_secs, &text_zone, &self.zone) {
            (Some(o), _, _) => o * 1000,
            (None, Some(tz), _) | (None, None, Zone::Named(tz)) => named_offset_ms(tz, local_ms)?,
            (None, None, Zone::Fixed(o)) => o * 1000,
        };
        Some(local_ms - offset_ms)
    }
}

fn current_year() -> i64 {
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    civil_from_days(now_secs.div_euclid(86_400)).0
}

/// The offset of a named zone at a local wall-clock time (the earlier one when the clock
/// goes back, as Java does).
fn named_offset_ms(tz: &jiff::tz::TimeZone, local_ms: i64) -> Option<i64> {
    let ts = jiff::Timestamp::from_millisecond(local_ms).ok()?;
    // The wall-clock reading of `local_ms` as if it were UTC, which is what it holds.
    let civil = jiff::tz::TimeZone::UTC.to_datetime(ts);
    let zoned = tz.to_ambiguous_timestamp(civil).compatible().ok()?;
    Some(local_ms - zoned.as_millisecond())
}

/// Names are read short or long whatever the letter count, as Java's parser does.
fn text_regex(field: Field) -> &'static str {
    match field {
        Field::MonthShort | Field::MonthLong => {
            "(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
        }
        Field::WeekdayShort | Field::WeekdayLong => {
            "(?i:mon(?:day)?|tue(?:sday)?|wed(?:nesday)?|thu(?:rsday)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)"
        }
        Field::AmPm => "(?i:am|pm)",
        Field::Era => "(?i:ad|bc)",
        Field::Offset => "(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)",
        Field::ZoneName => "(?:[A-Za-z][A-Za-z_/]*(?:[+-][0-9]{1,2}(?::?[0-9]{2})?)?|[+-][0-9]{2}:?[0-9]{2})",
        _ => "",
    }
}

fn parse_pattern(pattern: &str) -> Result<Vec<Part>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut parts: Vec<Part> = Vec::new();
    let mut i = 0;
    let push_literal = |parts: &mut Vec<Part>, c: &str| {
        if let Some(Part::Literal(s)) = parts.last_mut() {
            s.push_str(c);
        } else {
            parts.push(Part::Literal(c.to_string()));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                push_literal(&mut parts, "'");
                i += 2;
                continue;
            }
            let mut j = i + 1;
            let mut lit = String::new();
            loop {
                match chars.get(j) {
                    None => return Err(format!("date pattern {pattern:?} has an unclosed quote")),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        lit.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&ch) => {
                        lit.push(ch);
                        j += 1;
                    }
                }
            }
            if !lit.is_empty() {
                push_literal(&mut parts, &lit);
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut parts, c.encode_utf8(&mut [0; 4]));
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        let number = |field: Field, width: usize| Part::Number {
            field,
            min: 1,
            max: width,
        };
        let part = match c {
            'y' | 'u' | 'Y' if n == 2 => Part::Number {
                field: Field::TwoDigitYear,
                min: 2,
                max: 2,
            },
            'y' | 'u' | 'Y' => number(Field::Year, n.max(4)),
            'M' | 'L' if n >= 4 => Part::Text(Field::MonthLong),
            'M' | 'L' if n == 3 => Part::Text(Field::MonthShort),
            'M' | 'L' => number(Field::Month, 2),
            'd' => number(Field::Day, 2),
            'D' => number(Field::DayOfYear, 3),
            'H' => number(Field::Hour24, 2),
            'k' => number(Field::Hour24From1, 2),
            'h' => number(Field::Hour12, 2),
            'K' => number(Field::Hour12From0, 2),
            'm' => number(Field::Minute, 2),
            's' => number(Field::Second, 2),
            'S' => Part::Number {
                field: Field::Fraction,
                min: n,
                max: n.max(9),
            },
            'a' => Part::Text(Field::AmPm),
            'E' if n >= 4 => Part::Text(Field::WeekdayLong),
            'E' => Part::Text(Field::WeekdayShort),
            'G' => Part::Text(Field::Era),
            'Z' if n >= 3 => Part::Text(Field::ZoneName),
            'Z' | 'X' | 'x' => Part::Text(Field::Offset),
            'z' | 'V' => Part::Text(Field::ZoneName),
            other => {
                return Err(format!(
                    "date pattern {pattern:?}: the letter {other:?} is not supported (quote literal text with '…')"
                ))
            }
        };
        parts.push(part);
    }
    // Abutting numeric fields have no separator to stop at, so each reads exactly as many
    // digits as letters were written (Java's rule).
    for k in 0..parts.len() {
        let next_numeric =
            matches!(parts.get(k + 1), Some(Part::Number { field, .. }) if field.numeric());
        if let Part::Number { field, min, max } = &mut parts[k] {
            if next_numeric && *field != Field::Fraction {
                let width = match field {
                    Field::Year => 4,
                    Field::DayOfYear => 3,
                    _ => 2,
                };
                *min = width;
                *max = width;
            }
        }
    }
    Ok(parts)
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn digits(&mut self, min: usize, max: usize) -> Option<&'a str> {
        let n = self
            .rest()
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n < min {
            return None;
        }
        let out = &self.rest()[..n];
        self.pos += n;
        Some(out)
    }

    fn take(&mut self, n: usize) -> Option<&'a str> {
        let out = self.rest().get(..n)?;
        self.pos += n;
        Some(out)
    }

    /// Index of the entry of `table` with the longest spelling at the cursor that `then` (the
    /// literal after it, if any) follows.
    fn spelled(&mut self, table: &[&[&str]], then: &str) -> Option<usize> {
        let rest = self.rest();
        let (index, len) = table
            .iter()
            .enumerate()
            .flat_map(|(i, spellings)| {
                spellings
                    .iter()
                    .filter_map(move |w| prefix_ci(rest, w).map(|n| (i, n)))
            })
            .filter(|(_, n)| rest[*n..].starts_with(then))
            .max_by_key(|(_, n)| *n)?;
        self.pos += len;
        Some(index)
    }

    /// Index of the name at the cursor, written in full or as its first three letters.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let rest = self.rest();
        for short in [false, true] {
            for (i, full) in names.iter().enumerate() {
                let name = if short { &full[..3] } else { full };
                if rest.len() >= name.len()
                    && rest.is_char_boundary(name.len())
                    && rest[..name.len()].eq_ignore_ascii_case(name)
                {
                    self.pos += name.len();
                    return Some(i);
                }
            }
        }
        None
    }

    fn offset(&mut self) -> Option<i64> {
        let rest = self.rest();
        if rest.starts_with('Z') {
            self.pos += 1;
            return Some(0);
        }
        let sign = match rest.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.pos += 1;
        let hours: i64 = self.digits(2, 2)?.parse().ok()?;
        if self.rest().starts_with(':') {
            self.pos += 1;
        }
        let minutes: i64 = match self.digits(2, 2) {
            Some(m) => m.parse().ok()?,
            None => 0,
        };
        Some(sign * (hours * 3600 + minutes * 60))
    }

    fn zone_name(&mut self) -> Option<Zone> {
        let rest = self.rest();
        if rest.starts_with(['+', '-']) {
            return self.offset().map(Zone::Fixed);
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_/+-:".contains(c)))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        self.pos += end;
        match abbreviation_offset(name) {
            Some(secs) => Some(Zone::Fixed(secs)),
            None => parse_zone_arg(name).ok(),
        }
    }
}

/// Common zone abbreviations (the ones Java's `z` reads in English logs).
fn abbreviation_offset(name: &str) -> Option<i64> {
    let hours: f64 = match name {
        "UTC" | "GMT" | "UT" | "Z" | "WET" => 0.0,
        "BST" | "CET" | "WEST" => 1.0,
        "CEST" | "EET" => 2.0,
        "EEST" | "MSK" => 3.0,
        "IST" => 5.5,
        "JST" | "KST" => 9.0,
        "AEST" => 10.0,
        "AEDT" => 11.0,
        "NZST" => 12.0,
        "ADT" => -3.0,
        "AST" | "EDT" => -4.0,
        "EST" | "CDT" => -5.0,
        "CST" | "MDT" => -6.0,
        "MST" | "PDT" => -7.0,
        "PST" | "AKDT" => -8.0,
        "AKST" => -9.0,
        "HST" => -10.0,
        _ => return None,
    };
    Some((hours * 3600.0) as i64)
}

/// The timezone argument: `UTC`/`GMT`/`UT`/`Z`, `+h`, `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss`,
/// `+hhmmss`, the same after `UTC`/`GMT`/`UT`, or a TZ database id.
pub(crate) fn parse_zone_arg(tz: &str) -> Result<Zone, String> {
    let bad = || format!("unknown timezone {tz:?}");
    let t = tz.trim();
    if matches!(t, "UTC" | "GMT" | "UT" | "Z") {
        return Ok(Zone::Fixed(0));
    }
    let offset_text = ["UTC", "GMT", "UT"]
        .iter()
        .find_map(|p| t.strip_prefix(p).filter(|r| r.starts_with(['+', '-'])))
        .or_else(|| Some(t).filter(|r| r.starts_with(['+', '-'])));
    if let Some(off) = offset_text {
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let body = &off[1..];
        let nums: Vec<&str> = if body.contains(':') {
            body.split(':').collect()
        } else {
            match body.len() {
                1 | 2 => vec![body],
                4 => vec![&body[..2], &body[2..]],
                6 => vec![&body[..2], &body[2..4], &body[4..]],
                _ => return Err(bad()),
            }
        };
        if nums.is_empty()
            || nums.len() > 3
            || nums
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        let mut secs = 0i64;
        for (n, unit) in nums.iter().zip([3600i64, 60, 1]) {
            secs += n.parse::<i64>().map_err(|_| bad())? * unit;
        }
        if secs > 18 * 3600 {
            return Err(format!("timezone {tz:?} is outside -18:00..+18:00"));
        }
        return Ok(Zone::Fixed(sign * secs));
    }
    jiff::tz::TimeZone::get(t)
        .map(Zone::Named)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abutting_fields_read_fixed_widths() {
        let f = DateFormat::new("yyyyMMddHHmmss", None, None).unwrap();
        assert_eq!(f.parse("20160616082903"), Some(1_466_065_743_000));
    }
}
