//! The same-node outbox: a session's sequenced frames kept for a resume, bounded by count
//! and bytes, trimmed by the client's acks.

use std::collections::VecDeque;

use prometheus_client::metrics::gauge::Gauge;

struct OutEntry {
    seq: u64,
    /// Channel of an event (checked against the current permissions on replay); `None`
    /// for direct events and permission frames, which are always replayed.
    channel: Option<String>,
    json: String,
}

/// Sequenced frames kept for resume, bounded by count and bytes; acks trim it.
pub struct Outbox {
    entries: VecDeque<OutEntry>,
    bytes: usize,
    max_len: usize,
    max_bytes: usize,
    /// Every frame with a seq at or above this is still here (or was never sent).
    first_kept: u64,
    /// The node's `tether_outbox_bytes`, kept equal to the sum of every outbox's `bytes`.
    total: Gauge,
}

impl Outbox {
    pub fn new(first_seq: u64, max_len: usize, max_bytes: usize, total: Gauge) -> Outbox {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            max_len,
            max_bytes,
            first_kept: first_seq,
            total,
        }
    }

    pub fn push(&mut self, seq: u64, channel: Option<String>, json: String) {
        let before = self.bytes;
        self.bytes += json.len();
        self.entries.push_back(OutEntry { seq, channel, json });
        while self.entries.len() > self.max_len || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.json.len();
            self.first_kept = old.seq + 1;
        }
        self.account(before);
    }

    /// The client has everything up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        let before = self.bytes;
        while self.entries.front().is_some_and(|e| e.seq <= seq) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.json.len();
            }
        }
        self.account(before);
    }

    fn account(&self, before: usize) {
        self.total.inc_by(self.bytes as i64 - before as i64);
    }

    /// The frames after `seq` as (seq, channel, JSON), oldest first: what a new owner of
    /// the session takes over.
    pub fn frames_after(&self, seq: u64) -> Vec<(u64, Option<String>, String)> {
        self.entries
            .iter()
            .filter(|e| e.seq > seq)
            .map(|e| (e.seq, e.channel.clone(), e.json.clone()))
            .collect()
    }

    /// Whether every frame after `last_seq` is still here.
    pub fn covers(&self, last_seq: u64) -> bool {
        last_seq.saturating_add(1) >= self.first_kept
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.total.dec_by(self.bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(o: &Outbox) -> Vec<u64> {
        o.entries.iter().map(|e| e.seq).collect()
    }

    /// The outbox keeps the newest frames within its bounds and knows what it can replay.
    #[test]
    fn bounds_and_coverage() {
        let mut o = Outbox::new(1, 3, 1_000, Gauge::default());
        for seq in 1..=5 {
            o.push(seq, Some("c.a".into()), format!("f{seq}"));
        }
        assert_eq!(seqs(&o), vec![3, 4, 5]);
        assert!(o.covers(2) && o.covers(4));
        assert!(
            !o.covers(1),
            "frame 2 was dropped, a client at 1 cannot recover"
        );
        let mut small = Outbox::new(1, 100, 10, Gauge::default());
        small.push(1, None, "x".repeat(6));
        small.push(2, None, "y".repeat(6));
        assert_eq!(seqs(&small), vec![2]);
        assert!(small.covers(1) && !small.covers(0));
    }

    /// Acks trim what the client already has, without claiming anything was lost.
    #[test]
    fn ack_trims() {
        let mut o = Outbox::new(11, 100, 1_000_000, Gauge::default());
        for seq in 11..=15 {
            o.push(seq, None, "f".into());
        }
        o.ack(13);
        assert_eq!(seqs(&o), vec![14, 15]);
        assert!(o.covers(13));
        assert_eq!(o.bytes, 2);
    }

    /// The node-wide gauge follows every outbox: pushes, evictions, acks and drops.
    #[test]
    fn keeps_the_node_total() {
        let total = Gauge::default();
        let mut a = Outbox::new(1, 100, 10, total.clone());
        let mut b = Outbox::new(1, 100, 1_000, total.clone());
        a.push(1, None, "12345".into());
        b.push(1, None, "123".into());
        assert_eq!(total.get(), 8);
        a.push(2, None, "1234567".into()); // evicts seq 1: 7 bytes kept
        assert_eq!(total.get(), 10);
        b.ack(1);
        assert_eq!(total.get(), 7);
        drop(a);
        assert_eq!(total.get(), 0);
    }
}
