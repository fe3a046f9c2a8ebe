//! Credentials: where they are read from, how they are compared, and what they prove.
//! Handlers see the result (an extractor or a principal), never raw headers.

pub mod credentials;
pub mod jwt;
pub mod master_key;
pub mod secrets;
pub mod virtual_key;

pub use master_key::AdminAuth;
