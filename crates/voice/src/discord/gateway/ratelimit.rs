//! The main gateway's send budget: 120 events per 60 s per connection (docs/protocol.md §1.9).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// A sliding-window counter of what was sent.
pub struct SendBudget {
    window: Duration,
    /// What we let ourselves send: below Discord's 120, since heartbeats may count too.
    limit: usize,
    sent: VecDeque<Instant>,
}

impl SendBudget {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            window,
            limit,
            sent: VecDeque::with_capacity(limit + 8),
        }
    }

    /// 110 of Discord's 120 per minute: ten left for heartbeats and identify.
    pub fn discord_default() -> Self {
        Self::new(110, Duration::from_secs(60))
    }

    fn expire(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
    }

    /// Takes one send if the budget allows; otherwise says when it will.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        self.expire(now);
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            Ok(())
        } else {
            Err(self.sent[0] + self.window)
        }
    }

    /// Records a send that must happen regardless (heartbeat, identify).
    pub fn force_take(&mut self, now: Instant) {
        self.expire(now);
        self.sent.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_limit_in_a_window() {
        let start = Instant::now();
        let mut b = SendBudget::new(3, Duration::from_secs(60));
        assert!(b.try_take(start).is_ok());
        b.force_take(start);
        assert!(b.try_take(start).is_ok());
        let until = b.try_take(start + Duration::from_secs(1)).unwrap_err();
        assert_eq!(until, start + Duration::from_secs(60));
        assert!(b.try_take(start + Duration::from_secs(60)).is_ok());
    }
}
