//! Indexes of the finalized state, and the lookups other crates read it through.
//!
//! The tables are keyed as the state commitment needs them (alerts by id, anchors by sequence
//! number, …); readers ask by person, by status, by gateway. Each index is kept up to date as
//! a block merges, from the block's writes alone (O(writes · log n)), in persistent maps, so a
//! published snapshot shares every node with the state and costs nothing to copy.

use commonware_cryptography::ed25519::PublicKey;
use imbl::{OrdMap, OrdSet};
use vigil_core::{DeviceId, PersonId};

use super::{
    AccessRecord, AlertRecord, AlertStatus, AnchorRecord, DeviceRecord, InstanceRecord,
    PersonRecord, QueryRecord, State, StateTables, StatsKeyRecord, Tables, VerdictRecord,
};
use crate::tx::{AlertId, Hash, InstanceId, QueryId};

/// Secondary keys of the finalized tables (never part of the state commitment: each is a
/// function of the tables).
#[derive(Clone, Debug, Default)]
pub(crate) struct Indexes {
    alerts_by_person: OrdMap<PersonId, OrdSet<AlertId>>,
    alerts_by_status: OrdMap<AlertStatus, OrdSet<AlertId>>,
    devices_by_person: OrdMap<PersonId, OrdSet<DeviceId>>,
    instances_by_person: OrdMap<PersonId, OrdSet<InstanceId>>,
    /// Each gateway's anchors: first record covered → key in the `anchors` table.
    anchors_by_gateway: OrdMap<PublicKey, OrdMap<u64, u64>>,
    verdicts_by_query: OrdMap<QueryId, OrdSet<PublicKey>>,
}

fn add<K: Ord + Clone, V: Ord + Clone>(map: &mut OrdMap<K, OrdSet<V>>, key: &K, value: V) {
    let mut set = map.get(key).cloned().unwrap_or_default();
    set.insert(value);
    map.insert(key.clone(), set);
}

fn remove<K: Ord + Clone, V: Ord + Clone>(map: &mut OrdMap<K, OrdSet<V>>, key: &K, value: &V) {
    let Some(mut set) = map.get(key).cloned() else {
        return;
    };
    set.remove(value);
    if set.is_empty() {
        map.remove(key);
    } else {
        map.insert(key.clone(), set);
    }
}

impl Indexes {
    /// Index the writes of one block, `before` being the tables they are about to merge into.
    pub(crate) fn update(&mut self, before: &StateTables, writes: &Tables) {
        for (id, alert) in &writes.alerts {
            if let Some(old) = before.alerts.get(id) {
                if (old.status, old.person) == (alert.status, alert.person) {
                    continue;
                }
                remove(&mut self.alerts_by_status, &old.status, id);
                remove(&mut self.alerts_by_person, &old.person, id);
            }
            add(&mut self.alerts_by_status, &alert.status, *id);
            add(&mut self.alerts_by_person, &alert.person, *id);
        }
        for (id, device) in &writes.devices {
            if let Some(old) = before.devices.get(id) {
                remove(&mut self.devices_by_person, &old.person, id);
            }
            add(&mut self.devices_by_person, &device.person, id.clone());
        }
        for (id, instance) in &writes.instances {
            if let Some(old) = before.instances.get(id) {
                remove(&mut self.instances_by_person, &old.deployment.person, id);
            }
            add(
                &mut self.instances_by_person,
                &instance.deployment.person,
                *id,
            );
        }
        for (key, anchor) in &writes.anchors {
            let mut mine = self
                .anchors_by_gateway
                .get(&anchor.by)
                .cloned()
                .unwrap_or_default();
            mine.insert(anchor.first_seq, *key);
            self.anchors_by_gateway.insert(anchor.by.clone(), mine);
        }
        for (query, who) in writes.verdicts.keys() {
            add(&mut self.verdicts_by_query, query, who.clone());
        }
    }
}

/// Lookups of the finalized state, each by key or through an index (none scans a table).
/// (A child of `state`: the indexes are part of the finalized state, kept by its merge.)
impl State {
    pub fn person(&self, id: &PersonId) -> Option<&PersonRecord> {
        self.tables().persons.get(id)
    }
    /// Every registered person, in pseudonym order.
    pub fn persons(&self) -> impl Iterator<Item = (&PersonId, &PersonRecord)> {
        self.tables().persons.iter()
    }
    pub fn person_count(&self) -> usize {
        self.tables().persons.len()
    }

    pub fn device(&self, id: &DeviceId) -> Option<&DeviceRecord> {
        self.tables().devices.get(id)
    }
    /// Every device ever enrolled (revoked ones too), in id order.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &DeviceRecord)> {
        self.tables().devices.iter()
    }
    pub fn device_count(&self) -> usize {
        self.tables().devices.len()
    }
    /// The devices ever enrolled for `person`, in id order.
    pub fn devices_of(
        &self,
        person: &PersonId,
    ) -> impl Iterator<Item = (&DeviceId, &DeviceRecord)> {
        let tables = self.tables();
        self.index()
            .devices_by_person
            .get(person)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| tables.devices.get(id).map(|d| (id, d)))
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&InstanceRecord> {
        self.tables().instances.get(id)
    }
    /// Every contract instance ever deployed (terminated ones too), in id order.
    pub fn instances(&self) -> impl Iterator<Item = (&InstanceId, &InstanceRecord)> {
        self.tables().instances.iter()
    }
    pub fn instance_count(&self) -> usize {
        self.tables().instances.len()
    }
    /// The instances ever deployed for `person`, in id order.
    pub fn instances_of(
        &self,
        person: &PersonId,
    ) -> impl Iterator<Item = (&InstanceId, &InstanceRecord)> {
        let tables = self.tables();
        self.index()
            .instances_by_person
            .get(person)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| tables.instances.get(id).map(|i| (id, i)))
    }

    pub fn alert(&self, id: &AlertId) -> Option<&AlertRecord> {
        self.tables().alerts.get(id)
    }
    pub fn alert_count(&self) -> usize {
        self.tables().alerts.len()
    }
    /// Every alert raised about `person`, in id order.
    pub fn alerts_of(&self, person: &PersonId) -> impl Iterator<Item = (&AlertId, &AlertRecord)> {
        self.indexed_alerts(self.index().alerts_by_person.get(person))
    }
    /// The alerts now in `status`, in id order.
    pub fn alerts_with_status(
        &self,
        status: AlertStatus,
    ) -> impl Iterator<Item = (&AlertId, &AlertRecord)> {
        self.indexed_alerts(self.index().alerts_by_status.get(&status))
    }
    /// The alerts not resolved yet (open, then acknowledged).
    pub fn unresolved_alerts(&self) -> impl Iterator<Item = (&AlertId, &AlertRecord)> {
        self.alerts_with_status(AlertStatus::Open)
            .chain(self.alerts_with_status(AlertStatus::Acknowledged))
    }
    fn indexed_alerts<'a>(
        &'a self,
        ids: Option<&'a OrdSet<AlertId>>,
    ) -> impl Iterator<Item = (&'a AlertId, &'a AlertRecord)> {
        let alerts = &self.tables().alerts;
        ids.into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| alerts.get(id).map(|a| (id, a)))
    }

    /// `gateway`'s EHR anchors, in the order of the records they cover.
    pub fn anchors_by(&self, gateway: &PublicKey) -> impl Iterator<Item = &AnchorRecord> {
        let anchors = &self.tables().anchors;
        self.index()
            .anchors_by_gateway
            .get(gateway)
            .into_iter()
            .flat_map(|mine| mine.values())
            .filter_map(|key| anchors.get(key))
    }
    /// `gateway`'s anchor that starts at record `first_seq`.
    pub fn anchor_by(&self, gateway: &PublicKey, first_seq: u64) -> Option<&AnchorRecord> {
        let key = self
            .index()
            .anchors_by_gateway
            .get(gateway)?
            .get(&first_seq)?;
        self.tables().anchors.get(key)
    }
    pub fn anchor_count(&self) -> usize {
        self.tables().anchors.len()
    }

    /// The EHR access log from sequence number `from`.
    pub fn accesses_from(&self, from: u64) -> impl Iterator<Item = (&u64, &AccessRecord)> {
        self.tables().accesses.range(from..)
    }
    pub fn access_count(&self) -> usize {
        self.tables().accesses.len()
    }
    /// Listings of alert reasons logged, one record each.
    pub fn reasons_access_count(&self) -> usize {
        self.tables().reasons_accesses.len()
    }

    pub fn query(&self, id: &QueryId) -> Option<&QueryRecord> {
        self.tables().queries.get(id)
    }
    /// The verdicts given on `query`, by verifying node.
    pub fn verdicts_on(
        &self,
        query: &QueryId,
    ) -> impl Iterator<Item = (&PublicKey, &VerdictRecord)> {
        let verdicts = &self.tables().verdicts;
        self.index()
            .verdicts_by_query
            .get(query)
            .into_iter()
            .flat_map(|who| who.iter())
            .filter_map(move |who| verdicts.get(&(*query, who.clone())).map(|v| (who, v)))
    }

    /// A published statistics key by its id ([`crate::state::stats_key_id`]).
    pub fn stats_key(&self, id: &Hash) -> Option<&StatsKeyRecord> {
        self.tables().stats_keys.get(id)
    }
    /// Every published statistics key, by id.
    pub fn stats_keys(&self) -> impl Iterator<Item = (&Hash, &StatsKeyRecord)> {
        self.tables().stats_keys.iter()
    }
}
