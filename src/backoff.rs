//! Exponential backoff with jitter, capped; it never gives up.

use std::time::Duration;

/// Retry delays: a step of `initial`, doubling up to `max`, each delay drawn
/// at random between zero and its step ("full jitter"), from the first retry
/// on, so that a fleet coming back online does not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            step: initial,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        step.mul_f64(fastrand::f64())
    }

    /// A delay drawn at random from `0..=spread` (the first reconnect after
    /// a lost connection, `sync.reconnect_spread_ms`).
    pub fn spread(spread: Duration) -> Duration {
        spread.mul_f64(fastrand::f64())
    }

    /// After a success: start again from `initial`.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }

    /// The longest delay it will ever give.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_full_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        let steps = [100u64, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, s) in delays.iter().zip(steps) {
            assert!(*d <= Duration::from_millis(s), "{d:?} above {s} ms");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    /// Full jitter: the delays of many kiosks at the same step cover the
    /// whole step, the lower half included (a wide statistical margin:
    /// 1 000 draws, each half expected ~500 times).
    #[test]
    fn delays_spread_over_the_whole_step() {
        let step = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..1000)
            .map(|_| Backoff::new(step, step).next_delay())
            .collect();
        let low = draws.iter().filter(|d| **d < step / 2).count();
        assert!(
            (350..=650).contains(&low),
            "{low} of 1000 in the lower half"
        );
        let spread: Vec<Duration> = (0..1000).map(|_| Backoff::spread(step)).collect();
        assert!(spread.iter().all(|d| *d <= step));
        let low = spread.iter().filter(|d| **d < step / 2).count();
        assert!(
            (350..=650).contains(&low),
            "{low} of 1000 in the lower half"
        );
        assert_eq!(Backoff::spread(Duration::ZERO), Duration::ZERO);
    }
}
