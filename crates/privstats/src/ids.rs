//! Party identifiers. Apart from the modules that define the parties so that every module, the
//! errors included, can name a party without importing the protocol around it.

/// A server's index: 1-based, it is also the server's evaluation point.
pub type ServerId = u32;

/// A data provider's id.
pub type DpId = u32;
