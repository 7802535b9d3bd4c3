//! Counts in fixed time windows, per key (a client address, a user, a facility): in memory, per
//! server process (a restart forgets them; each node of a cluster counts its own).

use std::collections::HashMap;

#[derive(Default)]
pub struct WindowCounts(std::sync::Mutex<HashMap<String, (i64, u32)>>);

/// Keys tracked at most; expired windows are dropped first beyond this.
const MAX_KEYS: usize = 100_000;

impl WindowCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, u32)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` has reached `threshold` within the window that includes `now`.
    pub fn blocked(&self, key: &str, now: i64, window: i64, threshold: u32) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|(since, n)| now - since < window && *n >= threshold)
    }

    /// Counts one more for `key` and returns the count in its window.
    pub fn add(&self, key: &str, now: i64, window: i64) -> u32 {
        let mut map = self.lock();
        if map.len() >= MAX_KEYS {
            map.retain(|_, (since, _)| now - *since < window);
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_restart_with_each_window() {
        let w = WindowCounts::default();
        assert_eq!(w.add("a", 0, 10), 1);
        assert_eq!(w.add("a", 5, 10), 2);
        assert!(w.blocked("a", 6, 10, 2));
        assert!(!w.blocked("a", 11, 10, 2), "the window passed");
        assert_eq!(w.add("a", 11, 10), 1);
        assert!(!w.blocked("b", 6, 10, 1));
    }
}
