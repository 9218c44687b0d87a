//! The audit trail: its records, chain and storage are the store's
//! ([`twinbay_store::audit`]); the hub adds the checks at start and its
//! signing key ([`anchor`]).

pub mod anchor;

pub use twinbay_store::audit::*;
