//! Watches the engine's status between and during sounds: which guilds were disturbed (not
//! ready, or DAVE without keys, or DAVE frames dropped), and connections stuck past the bound.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use voxboard_voice::engine::{Phase, Status};

use crate::sim_child::GUILDS;

/// A connection not ready (or without DAVE keys) for longer than this is stuck: the slowest
/// legitimate recovery (a silent voice server: 5 s handshake deadline, then a rejoin with up to
/// ~8 s backoff and a 10 s join) stays well inside it.
pub const STUCK_BOUND: Duration = Duration::from_secs(30);

pub struct Watch {
    status: watch::Receiver<Status>,
    began: Instant,
    not_ready_since: [Option<Instant>; GUILDS],
    counted: [bool; GUILDS],
    disturbed: [bool; GUILDS],
    dave_dropped: [u64; GUILDS],
    pub stuck: u32,
    pub longest_outage: Duration,
    pub engine_restarts: u32,
}

impl Watch {
    pub fn new(status: watch::Receiver<Status>) -> Self {
        Watch {
            status,
            began: Instant::now(),
            not_ready_since: [None; GUILDS],
            counted: [false; GUILDS],
            disturbed: [false; GUILDS],
            dave_dropped: [0; GUILDS],
            stuck: 0,
            longest_outage: Duration::ZERO,
            engine_restarts: 0,
        }
    }

    pub fn poll(&mut self) {
        let now = Instant::now();
        let status = self.status.borrow();
        self.engine_restarts = status.engine_restarts;
        for i in 0..GUILDS {
            let conn = status
                .connections
                .iter()
                .find(|c| c.guild_id == voxboard_testkit::guild(i));
            let ready = conn.is_some_and(|c| {
                c.phase == Phase::Ready && (c.dave.protocol_version == 0 || c.dave.can_encrypt)
            });
            let dropped = conn.map_or(0, |c| c.dave_dropped_frames);
            if dropped != self.dave_dropped[i] {
                self.dave_dropped[i] = dropped;
                self.disturbed[i] = true;
            }
            if ready {
                if let Some(since) = self.not_ready_since[i].take() {
                    self.longest_outage = self.longest_outage.max(now - since);
                }
                self.counted[i] = false;
                continue;
            }
            self.disturbed[i] = true;
            let since = *self.not_ready_since[i].get_or_insert(now);
            if now - since > STUCK_BOUND && !self.counted[i] {
                self.counted[i] = true;
                self.stuck += 1;
                eprintln!(
                    "soak: {:>6.1} s  guild {} stuck: {:?} for more than {STUCK_BOUND:?}",
                    (now - self.began).as_secs_f64(),
                    voxboard_testkit::guild(i),
                    conn.map(|c| (c.phase, c.reason.clone(), c.last_error.clone()))
                );
            }
        }
    }

    /// Polls every 20 ms until `t`.
    pub fn sleep_until(&mut self, t: Instant) {
        loop {
            self.poll();
            let now = Instant::now();
            if now >= t {
                return;
            }
            std::thread::sleep((t - now).min(Duration::from_millis(20)));
        }
    }

    /// Which guilds were disturbed since the last call; marks the ones disturbed now again.
    pub fn take_disturbed(&mut self) -> [bool; GUILDS] {
        self.poll();
        let was = self.disturbed;
        self.disturbed = [false; GUILDS];
        self.poll();
        was
    }

    /// Whether every connection is ready now.
    pub fn all_ready(&mut self) -> bool {
        self.poll();
        self.not_ready_since.iter().all(Option::is_none)
    }

    /// Ends any outage still open (for the longest-outage figure at the end of the run).
    pub fn close_outages(&mut self) {
        let now = Instant::now();
        for since in self.not_ready_since.iter().flatten() {
            self.longest_outage = self.longest_outage.max(now - *since);
        }
    }
}
