//! Who gets what: a channel's filter over events.

use std::collections::BTreeSet;

use vigil_core::{AlertLevel, PersonId};

use crate::event::{Event, EventKind};

/// The events one channel wants: of these kinds, at or above this level, and (when the list
/// is given) about these people only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub min_level: AlertLevel,
    pub events: BTreeSet<EventKind>,
    /// `None`: everyone. A district's channel lists its people's pseudonyms.
    pub people: Option<BTreeSet<PersonId>>,
}

impl Route {
    /// Every kind of event at or above `min_level`, about anyone.
    pub fn at_least(min_level: AlertLevel) -> Self {
        Self {
            min_level,
            events: EventKind::ALL.iter().copied().collect(),
            people: None,
        }
    }

    pub fn accepts(&self, event: &Event) -> bool {
        self.events.contains(&event.kind())
            && event.level() >= self.min_level
            // Level 0 is "back in band", never raised as an alert; a channel set to `ok` still
            // gets only what the ledger finalized as an alert.
            && event.level() > AlertLevel::Ok
            && self
                .people
                .as_ref()
                .is_none_or(|people| people.contains(&event.person()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(level: AlertLevel, person: PersonId) -> Event {
        crate::event::sample_alert(level, person, None)
    }

    #[test]
    fn a_channel_gets_its_levels_and_above() {
        let person = PersonId::random();
        let warning = alert(AlertLevel::Warning, person);
        let critical = alert(AlertLevel::Critical, person);
        let all = Route::at_least(AlertLevel::Warning);
        assert!(all.accepts(&warning));
        assert!(all.accepts(&critical));
        let urgent = Route::at_least(AlertLevel::Critical);
        assert!(!urgent.accepts(&warning));
        assert!(urgent.accepts(&critical));
        assert!(!Route::at_least(AlertLevel::Ok).accepts(&alert(AlertLevel::Ok, person)));
    }

    #[test]
    fn a_channel_gets_only_its_people_and_its_kinds() {
        let mine = PersonId::random();
        let other = PersonId::random();
        let district = Route {
            people: Some([mine].into()),
            ..Route::at_least(AlertLevel::Warning)
        };
        assert!(district.accepts(&alert(AlertLevel::Critical, mine)));
        assert!(!district.accepts(&alert(AlertLevel::Critical, other)));
        let none = Route {
            events: BTreeSet::new(),
            ..Route::at_least(AlertLevel::Warning)
        };
        assert!(!none.accepts(&alert(AlertLevel::Critical, mine)));
    }
}
