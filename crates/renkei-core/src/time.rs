//! Time as a value. Nothing in Renkei reads the system clock except [`SystemClock`]; everything
//! else receives a [`Clock`] so that tests run on a fixed one.

use std::sync::atomic::{AtomicI64, Ordering};

/// Microseconds since the Unix epoch, UTC. Stored as a 64-bit integer in every backend.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp(pub i64);

const MICROS_PER_SECOND: i64 = 1_000_000;
const JST: time::UtcOffset = time::macros::offset!(+9);

impl Timestamp {
    pub fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(MICROS_PER_SECOND))
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SECOND)
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(
            self.0
                .saturating_add(seconds.saturating_mul(MICROS_PER_SECOND)),
        )
    }

    fn to_jst(self) -> Option<time::OffsetDateTime> {
        let nanos = i128::from(self.0) * 1000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .map(|t| t.to_offset(JST))
    }

    /// `2026-11-21 14:03` in Japan Standard Time, as the portal shows times.
    pub fn jst_minutes(self) -> String {
        match self.to_jst() {
            Some(t) => format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            ),
            None => String::from("----"),
        }
    }

    /// `20261121140312345` (YYYYMMDDHHMMSSfff) in Japan Standard Time: the form SS-MIX2 file
    /// names give times in, which the clinical store orders versions by.
    pub fn jst_stamp(self) -> String {
        match self.to_jst() {
            Some(t) => format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            None => String::from("00000000000000000"),
        }
    }

    /// `2026-11-21` in Japan Standard Time.
    pub fn jst_date(self) -> String {
        match self.to_jst() {
            Some(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
            None => String::from("----"),
        }
    }

    /// RFC 3339 in UTC with microseconds, as written into the audit chain.
    pub fn rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses an RFC 3339 date-time (`2026-11-21T09:00:00+09:00`).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let t = time::OffsetDateTime::parse(
            text.trim(),
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1000)
            .ok()
            .map(Timestamp)
    }

    /// Parses a date `YYYY-MM-DD` as the start of that day in JST (how users type dates).
    pub fn parse_jst_date(text: &str) -> Option<Self> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(text.trim(), &format).ok()?;
        let t = date.midnight().assume_offset(JST);
        i64::try_from(t.unix_timestamp_nanos() / 1000)
            .ok()
            .map(Timestamp)
    }
}

/// The source of "now".
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real clock. The only place in the workspace allowed to read system time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp(i64::try_from(nanos / 1000).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until told to move: for tests and for reproducible demos.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(at: Timestamp) -> Self {
        FixedClock(AtomicI64::new(at.0))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.0
            .fetch_add(seconds.saturating_mul(MICROS_PER_SECOND), Ordering::SeqCst);
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_japan_time() {
        let t = Timestamp::parse_rfc3339("2026-11-21T00:30:00Z").unwrap();
        assert_eq!(t.jst_minutes(), "2026-11-21 09:30");
        assert_eq!(
            Timestamp::parse_jst_date("2026-11-21")
                .unwrap()
                .jst_minutes(),
            "2026-11-21 00:00"
        );
        assert_eq!(t.rfc3339(), "2026-11-21T00:30:00Z");
        // The store's version order: the form SS-MIX2 file names use, so a FHIR write and a
        // storage file of one patient compare by time.
        assert_eq!(Timestamp(t.0 + 12_345).jst_stamp(), "20261121093000012");
        assert!(Timestamp(t.0).jst_stamp().as_str() > "20261120235959999");
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = FixedClock::new(Timestamp(0));
        assert_eq!(c.now(), Timestamp(0));
        c.advance_seconds(2);
        assert_eq!(c.now(), Timestamp(2_000_000));
    }
}
