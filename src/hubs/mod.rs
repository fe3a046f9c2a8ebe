//! Hubs: one file each. They know nothing of framing or transports.

pub mod admin_notifications;
pub mod conformance;
pub mod generation;
pub mod image_generation;
pub mod navigation_state;
pub mod test_hub;
pub mod video_generation;
