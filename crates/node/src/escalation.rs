//! Following up alerts nobody acknowledges, by the district's policy on the ledger
//! ([`vigil_ledger::tx::EscalationPolicy`]): the person is reminded on their alert topic, and
//! the alert is escalated by a ledger transaction the state machine accepts only when the
//! policy and the block time say it is due. Time is the latest finalized block's, never this
//! node's clock, so every node would take the same steps at the same heights.
//!
//! Only the node whose gateway raised an alert follows it up (the others would race it to the
//! same step and have their copies refused). Which reminders were sent is remembered in
//! memory: after a restart the latest due reminder is sent once more.

use std::num::NonZeroUsize;

use lru::LruCache;
use vigil_ledger::state::{AlertRecord, AlertStatus};
use vigil_ledger::tx::{AlertId, EscalationPolicy, Tx};

/// Alerts whose reminders are remembered; beyond this the oldest is forgotten (and reminded
/// once more at worst).
const REMINDED_MAX: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");

/// What is due for one open alert at block time `now_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    /// How many reminders the person should have had by now.
    pub reminders: u8,
    /// The escalation step to submit now, if one is due.
    pub step: Option<u8>,
}

/// Pure: the reminders and the escalation step due for `alert` under `policy` at `now_ms`.
pub(crate) fn due(policy: &EscalationPolicy, now_ms: i64, alert: &AlertRecord) -> Due {
    if alert.status != AlertStatus::Open {
        return Due {
            reminders: 0,
            step: None,
        };
    }
    let elapsed = now_ms.saturating_sub(alert.raised_ms);
    let next = alert.escalations.saturating_add(1);
    let step = (next <= policy.steps_max && elapsed >= policy.step_due_ms(next)).then_some(next);
    Due {
        reminders: policy.reminders_due(elapsed),
        step,
    }
}

/// What this node remembers between ticks.
pub(crate) struct Follow {
    reminded: LruCache<AlertId, u8>,
    /// Escalations submitted and not yet seen finalized, by alert.
    in_flight: std::collections::HashMap<AlertId, (u8, Tx)>,
}

impl Default for Follow {
    fn default() -> Self {
        Follow {
            reminded: LruCache::new(REMINDED_MAX),
            in_flight: std::collections::HashMap::new(),
        }
    }
}

impl Follow {
    /// Whether a reminder numbered `count` is new for `alert` (and remembers it).
    pub(crate) fn remind(&mut self, alert: AlertId, count: u8) -> bool {
        let sent = self.reminded.get(&alert).copied().unwrap_or(0);
        if count <= sent {
            return false;
        }
        self.reminded.put(alert, count);
        true
    }

    /// The escalation in flight for `alert`, if any.
    pub(crate) fn in_flight(&self, alert: &AlertId) -> Option<&(u8, Tx)> {
        self.in_flight.get(alert)
    }

    pub(crate) fn submitted(&mut self, alert: AlertId, step: u8, tx: Tx) {
        self.in_flight.insert(alert, (step, tx));
    }

    pub(crate) fn settled(&mut self, alert: &AlertId) {
        self.in_flight.remove(alert);
    }

    /// Forgets alerts that are no longer open.
    pub(crate) fn retain_open(&mut self, open: impl Fn(&AlertId) -> bool) {
        self.in_flight.retain(|alert, _| open(alert));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer as _, ed25519::PrivateKey};
    use vigil_core::{AlertLevel, PersonId};
    use vigil_ledger::tx::{InstanceId, TxId};

    const POLICY: EscalationPolicy = EscalationPolicy {
        remind_after_s: 60,
        escalate_after_s: 300,
        repeat_s: 300,
        steps_max: 2,
        raise_level: true,
    };

    fn alert(escalations: u8, status: AlertStatus) -> AlertRecord {
        AlertRecord {
            instance: InstanceId([1; 32]),
            person: PersonId::from_bytes([2; 16]),
            level: AlertLevel::Warning,
            reading_time_ms: 0,
            evidence: [0; 32],
            raised_by: PrivateKey::from_seed(1).public_key(),
            raised_height: 1,
            raised_ms: 1_000_000,
            escalations,
            status,
            orders: Vec::new(),
            resolution_note: None,
        }
    }

    #[test]
    fn steps_come_due_in_order_and_stop_at_the_policy() {
        let open = alert(0, AlertStatus::Open);
        assert_eq!(
            due(&POLICY, 1_000_000 + 59_999, &open),
            Due {
                reminders: 0,
                step: None
            }
        );
        assert_eq!(due(&POLICY, 1_000_000 + 60_000, &open).reminders, 1);
        assert_eq!(due(&POLICY, 1_000_000 + 299_999, &open).step, None);
        assert_eq!(due(&POLICY, 1_000_000 + 300_000, &open).step, Some(1));
        // Step 1 taken: step 2 waits for its own time, and there is no step 3.
        let once = alert(1, AlertStatus::Open);
        assert_eq!(due(&POLICY, 1_000_000 + 300_000, &once).step, None);
        assert_eq!(due(&POLICY, 1_000_000 + 600_000, &once).step, Some(2));
        assert_eq!(
            due(&POLICY, i64::MAX, &alert(2, AlertStatus::Open)).step,
            None
        );
    }

    #[test]
    fn nothing_is_due_once_someone_acknowledged() {
        for status in [AlertStatus::Acknowledged, AlertStatus::Resolved] {
            let seen = alert(0, status);
            assert_eq!(
                due(&POLICY, i64::MAX, &seen),
                Due {
                    reminders: 0,
                    step: None
                }
            );
        }
    }

    #[test]
    fn each_reminder_is_sent_once() {
        let mut follow = Follow::default();
        let id = TxId([7; 32]);
        assert!(follow.remind(id, 1));
        assert!(!follow.remind(id, 1));
        assert!(follow.remind(id, 2));
        assert!(!follow.remind(id, 0));
    }
}
