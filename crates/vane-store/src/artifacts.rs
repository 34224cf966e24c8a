//! Artifact versions and lineage: what every attempt read and wrote.

use crate::Result;

/// Records and reads artifact versions, their links to attempts, and cache keys.
pub trait ArtifactStore {
    /// Placeholder so the trait is not empty while it is being written.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn artifact_count(&self) -> Result<usize>;
}
