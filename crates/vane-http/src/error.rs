//! Errors of the API, each with the status code it is answered with.

/// Why a request failed. The message is shown to the caller as `{"error": "..."}`, so it says
/// what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Input the request got wrong: a malformed id, body or query.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or not the right one.
    #[error("{0}")]
    Unauthorized(String),
    /// The server takes no actions at all (it has no token).
    #[error("{0}")]
    Forbidden(String),
    /// The run, DAG, task, model, artifact or alert asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A path the router knows, with a method it does not; `allow` lists the methods it takes
    /// (the `Allow` header of the answer).
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: String },
    /// The thing exists but is not in a state that allows the action.
    #[error("{0}")]
    Conflict(String),
    /// vane's own failure (the database cannot be read, a log file is gone).
    #[error("{0}")]
    Internal(String),
    /// The request was not all sent within the time a request may take to arrive.
    #[error("{0}")]
    RequestTimeout(String),
    /// Too many connections at once; the client should try again shortly.
    #[error("{0}")]
    Busy(String),
}

impl ApiError {
    /// The HTTP status code and reason phrase.
    #[must_use]
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::BadRequest(_) => (400, "Bad Request"),
            Self::Unauthorized(_) => (401, "Unauthorized"),
            Self::Forbidden(_) => (403, "Forbidden"),
            Self::NotFound(_) => (404, "Not Found"),
            Self::MethodNotAllowed { .. } => (405, "Method Not Allowed"),
            Self::Conflict(_) => (409, "Conflict"),
            Self::RequestTimeout(_) => (408, "Request Timeout"),
            Self::Internal(_) => (500, "Internal Server Error"),
            Self::Busy(_) => (503, "Service Unavailable"),
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(
        "cannot listen on {addr} (if another vane holds the port, pick another with --http, or port 0 for a free one)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to serve on {addr} without a token: anyone who can reach it could read and act on your pipelines; give one with --token-file or VANE_API_TOKEN, or bind 127.0.0.1"
    )]
    TokenRequired { addr: std::net::SocketAddr },
}
