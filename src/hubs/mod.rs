//! Hubs: one file each. They know nothing of framing or transports.

pub mod test_hub;
