//! The business-day calendar of the rates feature (SPEC §4): rates exist for weekdays
//! only, and at least the last month of them must be held.
//!
//! A weekday is *covered* when rates are stored under it, or when the provider was
//! asked for it and answered with an earlier date (a holiday: the provider repeats the
//! last business day). The caller supplies both kinds of date in one set.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Monday to Friday.
pub fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The weekdays among the `lookback_days` days before `today` (today itself excluded)
/// that `covered` does not hold, oldest first.
pub fn missing_weekdays(
    today: NaiveDate,
    lookback_days: u32,
    covered: &BTreeSet<NaiveDate>,
) -> Vec<NaiveDate> {
    (1..=u64::from(lookback_days))
        .rev()
        .filter_map(|back| today.checked_sub_days(Days::new(back)))
        .filter(|day| is_weekday(*day) && !covered.contains(day))
        .collect()
}

/// What a tick of the timetable (or the start-up backfill) fetches: today when it is
/// a weekday, whether or not it is covered (its rates may have been published since),
/// then the missing weekdays of the window, oldest first.
pub fn dates_to_fetch(
    today: NaiveDate,
    lookback_days: u32,
    covered: &BTreeSet<NaiveDate>,
) -> Vec<NaiveDate> {
    let mut dates = Vec::new();
    if is_weekday(today) {
        dates.push(today);
    }
    dates.extend(missing_weekdays(today, lookback_days, covered));
    dates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("test dates are valid")
    }

    fn days(texts: &[&str]) -> BTreeSet<NaiveDate> {
        texts.iter().map(|t| day(t)).collect()
    }

    fn text(dates: &[NaiveDate]) -> Vec<String> {
        dates.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn weekends_are_never_missing() {
        // Monday 2026-11-23: the seven days before hold one weekend.
        let missing = missing_weekdays(day("2026-11-23"), 7, &BTreeSet::new());
        assert_eq!(
            text(&missing),
            [
                "2026-11-16",
                "2026-11-17",
                "2026-11-18",
                "2026-11-19",
                "2026-11-20"
            ]
        );
        assert!(is_weekday(day("2026-11-20")));
        assert!(!is_weekday(day("2026-11-21")));
        assert!(!is_weekday(day("2026-11-22")));
    }

    #[test]
    fn a_full_window_has_twenty_two_or_twenty_three_weekdays() {
        // 31 days always span four full weeks and three more days.
        for offset in 0..14 {
            let today = day("2026-11-01") + Days::new(offset);
            let n = missing_weekdays(today, 31, &BTreeSet::new()).len();
            assert!((21..=23).contains(&n), "{today}: {n}");
            // Exactly: 20 weekdays in the four weeks, plus the weekdays among the
            // three oldest days.
            let extra = (29..=31)
                .filter(|back| is_weekday(today - Days::new(*back)))
                .count();
            assert_eq!(n, 20 + extra, "{today}");
        }
    }

    #[test]
    fn covered_days_are_not_missing() {
        let covered = days(&["2026-11-17", "2026-11-19"]);
        let missing = missing_weekdays(day("2026-11-23"), 7, &covered);
        assert_eq!(text(&missing), ["2026-11-16", "2026-11-18", "2026-11-20"]);
    }

    #[test]
    fn the_window_crosses_month_boundaries() {
        // Monday 2026-03-02, five days back: Wed 25, Thu 26, Fri 27 Feb (28 Feb 2026 is
        // a Saturday, 1 Mar a Sunday).
        let missing = missing_weekdays(day("2026-03-02"), 5, &BTreeSet::new());
        assert_eq!(text(&missing), ["2026-02-25", "2026-02-26", "2026-02-27"]);
        // A leap year: 2028-02-29 is a Tuesday and is a weekday to fetch.
        let missing = missing_weekdays(day("2028-03-01"), 2, &BTreeSet::new());
        assert_eq!(text(&missing), ["2028-02-28", "2028-02-29"]);
    }

    #[test]
    fn the_window_crosses_year_boundaries() {
        // Monday 2027-01-04, seven days back: 28 Dec 2026 (Mon) to 3 Jan 2027 (Sun).
        let missing = missing_weekdays(day("2027-01-04"), 7, &BTreeSet::new());
        assert_eq!(
            text(&missing),
            [
                "2026-12-28",
                "2026-12-29",
                "2026-12-30",
                "2026-12-31",
                "2027-01-01"
            ]
        );
    }

    #[test]
    fn a_holiday_answered_with_the_previous_day_counts_as_covered() {
        // Friday 2026-12-25: the provider answers with Thursday's date, so rates are
        // stored under the 24th, and the request for the 25th is on record.
        let stored = days(&["2026-12-21", "2026-12-22", "2026-12-23", "2026-12-24"]);
        let without_log = missing_weekdays(day("2026-12-28"), 7, &stored);
        assert_eq!(text(&without_log), ["2026-12-25"]);
        let mut covered = stored;
        covered.insert(day("2026-12-25"));
        assert!(missing_weekdays(day("2026-12-28"), 7, &covered).is_empty());
    }

    #[test]
    fn a_tick_fetches_today_first_on_weekdays_only() {
        let covered = days(&["2026-11-20"]);
        // Monday: today even when covered, then what is missing.
        let dates = dates_to_fetch(day("2026-11-23"), 3, &covered);
        assert_eq!(text(&dates), ["2026-11-23"]);
        let dates = dates_to_fetch(day("2026-11-23"), 3, &BTreeSet::new());
        assert_eq!(text(&dates), ["2026-11-23", "2026-11-20"]);
        // Saturday: no rates for today.
        let dates = dates_to_fetch(day("2026-11-21"), 1, &BTreeSet::new());
        assert_eq!(text(&dates), ["2026-11-20"]);
        assert!(dates_to_fetch(day("2026-11-22"), 1, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_zero_window_asks_for_today_only() {
        assert!(missing_weekdays(day("2026-11-23"), 0, &BTreeSet::new()).is_empty());
    }
}
