use super::SqliteStore;
use crate::Result;
use crate::artifacts::ArtifactStore;

impl ArtifactStore for SqliteStore {
    fn artifact_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM artifact_versions", [], |r| r.get(0))?;
        Ok(n as usize)
    }
}
