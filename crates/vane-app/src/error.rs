//! The one error type of the application layer, and the HTTP status of each variant.

use vane_http::ApiError;
use vane_store::StoreError;

/// Why an operation of the application layer failed.
///
/// Each variant chooses its HTTP status in [`AppError::to_api`], explicitly: a store failure is
/// vane's fault (5xx), never the client's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The run, DAG, task, attempt, model, artifact or alert asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists, but is not in a state that allows the action.
    #[error("{0}")]
    Conflict(String),
    /// Input the caller can fix: an unknown parameter, a malformed date or duration.
    #[error("{0}")]
    Invalid(String),
    /// Params that do not fit the DAG as its file stands: one it does not declare, or a value
    /// of another type. The caller can fix it (a person's typo), but through the API it is
    /// the file's state, not the request's form, that refuses it: the API's document cannot
    /// know each DAG's params, and a param valid yesterday may not be today.
    #[error("{0}")]
    ParamsUnfit(String),
    /// A DAG file that does not validate; `diagnostics` is its rendered errors, for a terminal.
    #[error("{message}")]
    InvalidDag {
        message: String,
        diagnostics: String,
    },
    /// The scheduler config does not validate: the server's set-up, not the request, is wrong.
    #[error("{path} does not validate; fix the errors above")]
    Config { path: String, diagnostics: String },
    /// The store failed; its own variant says whether the thing was missing or a conflict.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(vane_engine::EngineError),
    /// Alert delivery or bookkeeping failed.
    #[error(transparent)]
    Alerts(vane_alerts::AlertError),
    /// A file or folder vane needs cannot be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A command vane ran for the caller failed (a model's rollback command).
    #[error("{0}")]
    CommandFailed(String),
    /// The storage of logs and the content store (S3, a shared folder) cannot be opened,
    /// read or written.
    #[error("{0}")]
    Storage(String),
}

impl From<vane_engine::EngineError> for AppError {
    fn from(e: vane_engine::EngineError) -> Self {
        match e {
            vane_engine::EngineError::Store(s) => Self::Store(s),
            other => Self::Engine(other),
        }
    }
}

impl From<vane_alerts::AlertError> for AppError {
    fn from(e: vane_alerts::AlertError) -> Self {
        match e {
            vane_alerts::AlertError::Store(s) => Self::Store(s),
            other => Self::Alerts(other),
        }
    }
}

impl AppError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// Rendered diagnostics behind the error (a DAG file or config that does not validate),
    /// which a terminal shows above the error itself.
    #[must_use]
    pub fn diagnostics(&self) -> Option<&str> {
        match self {
            Self::InvalidDag { diagnostics, .. } | Self::Config { diagnostics, .. } => {
                Some(diagnostics)
            }
            _ => None,
        }
    }

    /// The HTTP answer for this error.
    #[must_use]
    pub fn to_api(&self) -> ApiError {
        let message = self.to_string();
        match self {
            Self::NotFound(_) => ApiError::NotFound(message),
            Self::Conflict(_) | Self::ParamsUnfit(_) => ApiError::Conflict(message),
            Self::Invalid(_) | Self::InvalidDag { .. } => ApiError::BadRequest(message),
            Self::Config { .. }
            | Self::Io { .. }
            | Self::CommandFailed(_)
            | Self::Alerts(_)
            | Self::Storage(_) => ApiError::Internal(message),
            Self::Store(e) => match e {
                StoreError::NotFound(_) => ApiError::NotFound(message),
                StoreError::RunExists { .. }
                | StoreError::TickDecided { .. }
                | StoreError::Fenced { .. } => ApiError::Conflict(message),
                StoreError::Busy(_) => ApiError::Busy(message),
                StoreError::Open { .. }
                | StoreError::TooNew { .. }
                | StoreError::Backend(_)
                | StoreError::Corrupt(_) => ApiError::Internal(message),
                _ => ApiError::Internal(message),
            },
            Self::Engine(e) => match e {
                vane_engine::EngineError::Claimed(_) => ApiError::Conflict(message),
                vane_engine::EngineError::Store(_) | vane_engine::EngineError::Internal(_) => {
                    ApiError::Internal(message)
                }
                _ => ApiError::Internal(message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: AppError) -> u16 {
        e.to_api().status().0
    }

    #[test]
    fn store_failures_are_the_servers_and_a_busy_database_says_try_again() {
        let cause = || -> Box<dyn std::error::Error + Send + Sync> { "disk I/O error".into() };
        assert_eq!(status(StoreError::Backend(cause()).into()), 500);
        assert_eq!(status(StoreError::Corrupt("x".into()).into()), 500);
        assert_eq!(status(StoreError::Busy(cause()).into()), 503);
        assert_eq!(status(StoreError::NotFound("run 9".into()).into()), 404);
        let exists = StoreError::RunExists {
            dag_id: "d".into(),
            logical_date: "2026-01-01".into(),
            run: vane_store::RunId(1),
        };
        assert_eq!(status(exists.into()), 409);
        let wrapped = vane_engine::EngineError::Store(StoreError::Backend(cause()));
        assert_eq!(status(wrapped.into()), 500);
        assert_eq!(status(AppError::Invalid("bad".into())), 400);
    }
}
