//! Ingestion: how signed packs get from a master device into the node.
//!
//! - [`admit`]: parse, validate and authenticate a pack against the enrolled devices (pure);
//!   [`admit_all`] the same for many packs, their signatures checked in one batch.
//! - [`mqtt`]: the embedded MQTT broker (or an external one) and the ingestion loop.
//! - [`outbox`]: the master device's durable outbox and its MQTT publisher;
//!   [`http_upload`] its HTTP one.
//! - [`topic`]: the topic layout.
//! - [`auth`]: who may connect to the embedded broker (device tokens, service users, the
//!   node's reserved client ids); [`acl`]: what each may publish and subscribe to (pure);
//!   [`front`]: the MQTT front that enforces both before the broker sees a packet.
//! - [`signed`]: replies and alerts signed by the node, checked by the device.

pub mod acl;
pub mod admit;
pub mod auth;
pub mod front;
pub mod http_upload;
pub mod mqtt;
pub mod outbox;
pub mod signed;
pub mod topic;

pub use admit::{
    Admitted, DeviceDirectory, EnrolledDevice, Horizon, Rejected, Rejection, Reply, SEQUENCE_MAX,
    admit, admit_all,
};
