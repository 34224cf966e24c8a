//! The model registry: model versions, their stages, and the ledger of every stage change.

/// Records and reads model stages, gate evidence and approvals.
pub trait RegistryStore {}
