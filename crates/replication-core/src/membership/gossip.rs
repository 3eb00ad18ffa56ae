//! Dissemination: how a change of membership reaches everyone without a
//! broadcast.
//!
//! A node that learns something new (a member joined, is suspected, died,
//! left, refuted) does not tell everyone at once. It queues the [`Update`]
//! and piggybacks it on the next few probe messages it sends anyway, each
//! update a bounded number of times: `retransmit_mult * ceil(log2(n + 1))`
//! for `n` members. Every receiver that finds it new queues it in turn, so
//! it spreads like an epidemic and reaches all `n` members in O(log n)
//! probe periods with high probability, at no extra message (SWIM's
//! "infection-style dissemination"; HashiCorp memberlist's
//! `RetransmitMult`).
//!
//! | rule | why |
//! |---|---|
//! | one entry per member; a newer update replaces the older | the queue is bounded by the member count, and old news is not spread |
//! | updates sent fewest times first | new news travels first |
//! | updates about the recipient first | a suspected or dead member learns it at once and can refute |
//! | at most `max` per message | a message stays small whatever the churn |

use std::collections::BTreeMap;

use super::member::Update;

/// The queue of updates still to piggyback.
#[derive(Debug, Default, Clone)]
pub struct Gossip {
    /// By member id: the update and how many more times to send it.
    items: BTreeMap<String, (Update, u32)>,
}

impl Gossip {
    /// Queue `update` to be sent `times` times, replacing what was queued
    /// about the same member.
    pub fn push(&mut self, update: Update, times: u32) {
        if times > 0 {
            self.items.insert(update.id.clone(), (update, times));
        }
    }

    /// Up to `max` updates for one message to `to`: the update about `to`
    /// first, then the ones with the most sends left. Each taken update has
    /// one send less; spent ones leave the queue.
    pub fn take(&mut self, max: usize, to: &str) -> Vec<Update> {
        let mut order: Vec<(&String, u32)> = self.items.iter().map(|(k, (_, n))| (k, *n)).collect();
        order.sort_by(|a, b| {
            (a.0.as_str() != to)
                .cmp(&(b.0.as_str() != to))
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(b.0))
        });
        let keys: Vec<String> = order
            .into_iter()
            .take(max)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some((u, n)) = self.items.get_mut(&k) {
                out.push(u.clone());
                *n -= 1;
                if *n == 0 {
                    self.items.remove(&k);
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// How many times each update is piggybacked in a cluster of `members`.
pub fn transmits(retransmit_mult: u32, members: usize) -> u32 {
    let log = usize::BITS - members.leading_zeros(); // ceil(log2(n + 1))
    retransmit_mult.saturating_mul(log.max(1))
}

#[cfg(test)]
mod tests {
    use super::super::member::MemberState;
    use super::*;

    fn up(id: &str, inc: u64) -> Update {
        Update {
            id: id.into(),
            addr: format!("{id}:1"),
            incarnation: inc,
            state: MemberState::Alive,
        }
    }

    #[test]
    fn each_update_is_sent_a_bounded_number_of_times() {
        let mut g = Gossip::default();
        g.push(up("a", 1), 2);
        g.push(up("b", 1), 3);
        assert_eq!(g.take(8, "x").len(), 2);
        assert_eq!(g.take(8, "x").len(), 2);
        assert_eq!(g.take(8, "x"), vec![up("b", 1)]);
        assert!(g.take(8, "x").is_empty() && g.is_empty());
    }

    #[test]
    fn newer_news_replaces_older_and_the_recipients_own_comes_first() {
        let mut g = Gossip::default();
        g.push(up("a", 1), 9);
        g.push(up("a", 2), 1);
        g.push(up("b", 1), 9);
        assert_eq!(g.len(), 2);
        assert_eq!(
            g.take(1, "a"),
            vec![up("a", 2)],
            "about the recipient first"
        );
        assert_eq!(g.take(1, "zz"), vec![up("b", 1)]);
    }

    #[test]
    fn transmissions_grow_with_the_log_of_the_cluster() {
        assert_eq!(transmits(3, 1), 3);
        assert_eq!(transmits(3, 3), 6);
        assert_eq!(transmits(3, 7), 9);
        assert_eq!(transmits(3, 8), 12);
        assert_eq!(transmits(3, 1000), 30);
    }
}
