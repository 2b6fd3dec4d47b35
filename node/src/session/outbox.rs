//! The same-node outbox: a session's sequenced frames kept for a resume, bounded by count
//! and bytes, trimmed by the client's acks.

use std::collections::VecDeque;

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
}

impl Outbox {
    pub fn new(first_seq: u64, max_len: usize, max_bytes: usize) -> Outbox {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            max_len,
            max_bytes,
            first_kept: first_seq,
        }
    }

    pub fn push(&mut self, seq: u64, channel: Option<String>, json: String) {
        self.bytes += json.len();
        self.entries.push_back(OutEntry { seq, channel, json });
        while self.entries.len() > self.max_len || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.json.len();
            self.first_kept = old.seq + 1;
        }
    }

    /// The client has everything up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        while self.entries.front().is_some_and(|e| e.seq <= seq) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.json.len();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(o: &Outbox) -> Vec<u64> {
        o.entries.iter().map(|e| e.seq).collect()
    }

    /// The outbox keeps the newest frames within its bounds and knows what it can replay.
    #[test]
    fn bounds_and_coverage() {
        let mut o = Outbox::new(1, 3, 1_000);
        for seq in 1..=5 {
            o.push(seq, Some("c.a".into()), format!("f{seq}"));
        }
        assert_eq!(seqs(&o), vec![3, 4, 5]);
        assert!(o.covers(2) && o.covers(4));
        assert!(
            !o.covers(1),
            "frame 2 was dropped, a client at 1 cannot recover"
        );
        let mut small = Outbox::new(1, 100, 10);
        small.push(1, None, "x".repeat(6));
        small.push(2, None, "y".repeat(6));
        assert_eq!(seqs(&small), vec![2]);
        assert!(small.covers(1) && !small.covers(0));
    }

    /// Acks trim what the client already has, without claiming anything was lost.
    #[test]
    fn ack_trims() {
        let mut o = Outbox::new(11, 100, 1_000_000);
        for seq in 11..=15 {
            o.push(seq, None, "f".into());
        }
        o.ack(13);
        assert_eq!(seqs(&o), vec![14, 15]);
        assert!(o.covers(13));
        assert_eq!(o.bytes, 2);
    }
}
