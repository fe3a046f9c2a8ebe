//! Hubs: one file each. They know nothing of framing or transports.

pub mod conformance;
pub mod test_hub;
