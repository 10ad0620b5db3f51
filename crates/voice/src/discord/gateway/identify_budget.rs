//! How many new gateway sessions the bot may still start, and how fast.
//!
//! Discord allows a bot `total` Identifies a day (1000 for most bots; `GET /gateway/bot`'s
//! `session_start_limit` says how many are left) and `max_concurrency` per 5 s. Past the daily
//! limit Discord ends every session and **resets the bot token**, which would take a streamer off
//! the air until they paste a new one: a client that reconnects in a loop must stop before that.
//! Resumes cost nothing and are not counted.

use std::time::Duration;

use tokio::time::Instant;

use crate::discord::rest::SessionStartLimit;

/// Identifies per `max_concurrency` window.
const WINDOW: Duration = Duration::from_secs(5);
/// Sessions left untouched for the bot owner's other tools (never more than a tenth).
const RESERVE: u32 = 5;

#[derive(Debug)]
pub struct IdentifyBudget {
    known: Option<Known>,
    spacing: Duration,
    last: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    total: u32,
    remaining: u32,
    resets_at: Instant,
}

/// What an Identify may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go after this wait (zero when the last Identify is long enough ago).
    Go(Duration),
    /// The day's budget is spent down to the reserve: stop until it resets.
    Spent {
        remaining: u32,
        total: u32,
        resets_in: Duration,
    },
}

impl Default for IdentifyBudget {
    fn default() -> Self {
        Self {
            known: None,
            spacing: WINDOW,
            last: None,
        }
    }
}

impl IdentifyBudget {
    /// Whether Discord should be asked again: never asked, or the period it named is over.
    pub fn needs_refresh(&self, now: Instant) -> bool {
        self.known.is_none_or(|k| now >= k.resets_at)
    }

    pub fn learn(&mut self, limit: SessionStartLimit, now: Instant) {
        self.known = Some(Known {
            total: limit.total,
            remaining: limit.remaining,
            resets_at: now + limit.reset_after,
        });
        self.spacing = WINDOW / limit.max_concurrency.max(1);
    }

    pub fn before_identify(&self, now: Instant) -> Verdict {
        if let Some(k) = self.known
            && now < k.resets_at
            && k.remaining <= RESERVE.min(k.total / 10)
        {
            return Verdict::Spent {
                remaining: k.remaining,
                total: k.total,
                resets_in: k.resets_at - now,
            };
        }
        let wait = self.last.map_or(Duration::ZERO, |t| {
            (t + self.spacing).saturating_duration_since(now)
        });
        Verdict::Go(wait)
    }

    /// An Identify was sent.
    pub fn identified(&mut self, now: Instant) {
        self.last = Some(now);
        if let Some(k) = self.known.as_mut() {
            k.remaining = k.remaining.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(total: u32, remaining: u32) -> SessionStartLimit {
        SessionStartLimit {
            total,
            remaining,
            reset_after: Duration::from_secs(3600),
            max_concurrency: 1,
        }
    }

    #[test]
    fn identifies_are_spaced_by_the_concurrency_window() {
        let now = Instant::now();
        let mut budget = IdentifyBudget::default();
        assert_eq!(budget.before_identify(now), Verdict::Go(Duration::ZERO));
        budget.identified(now);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            budget.before_identify(later),
            Verdict::Go(Duration::from_secs(3))
        );
        let much_later = now + Duration::from_secs(9);
        assert_eq!(
            budget.before_identify(much_later),
            Verdict::Go(Duration::ZERO)
        );
    }

    #[test]
    fn the_reserve_is_never_spent_and_the_budget_comes_back_at_the_reset() {
        let now = Instant::now();
        let mut budget = IdentifyBudget::default();
        budget.learn(limit(1000, 7), now);
        budget.identified(now);
        budget.identified(now);
        let Verdict::Spent {
            remaining,
            total,
            resets_in,
        } = budget.before_identify(now)
        else {
            panic!("5 left is the reserve");
        };
        assert_eq!(
            (remaining, total, resets_in),
            (5, 1000, Duration::from_secs(3600))
        );
        let reset = now + Duration::from_secs(3601);
        assert!(budget.needs_refresh(reset));
        assert!(matches!(budget.before_identify(reset), Verdict::Go(_)));
    }

    #[test]
    fn a_small_budget_keeps_a_tenth_in_reserve() {
        let now = Instant::now();
        let mut budget = IdentifyBudget::default();
        budget.learn(limit(2, 1), now);
        assert!(matches!(budget.before_identify(now), Verdict::Go(_)));
        budget.identified(now);
        assert!(matches!(
            budget.before_identify(now),
            Verdict::Spent { remaining: 0, .. }
        ));
    }

    #[test]
    fn higher_concurrency_shortens_the_spacing() {
        let now = Instant::now();
        let mut budget = IdentifyBudget::default();
        budget.learn(
            SessionStartLimit {
                max_concurrency: 16,
                ..limit(1000, 900)
            },
            now,
        );
        budget.identified(now);
        assert_eq!(
            budget.before_identify(now),
            Verdict::Go(Duration::from_micros(312_500))
        );
    }
}
