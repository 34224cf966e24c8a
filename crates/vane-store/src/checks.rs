//! Data validation history: check results, column profiles, and runs marked good.

/// Records and reads check results and profiles.
pub trait CheckStore {}
