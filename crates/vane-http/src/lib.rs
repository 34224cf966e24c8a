//! vane's HTTP API and Prometheus endpoint.
//!
//! This crate knows HTTP: the routes, who may call them, how errors become status codes, the
//! OpenAPI document, and the Prometheus text format. What a route answers comes from an
//! [`Api`] the `vane` binary implements with the same functions that print `--json`, so the
//! API and the command line never disagree.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vane_http::{Api, ApiError, Reply, Route};
//!
//! struct Hello;
//! impl Api for Hello {
//!     fn handle(&self, route: Route, _body: serde_json::Value) -> Result<Reply, ApiError> {
//!         match route {
//!             Route::OpenApi => Ok(Reply::Json(vane_http::openapi(&mut |_, _| Default::default()))),
//!             other => Err(ApiError::NotFound(format!("{other:?} is not served here"))),
//!         }
//!     }
//! }
//!
//! let server = vane_http::Server::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
//! eprintln!("listening on http://{}", server.local_addr());
//! server.serve(Arc::new(Hello));
//! ```

mod error;
mod openapi;
mod prometheus;
mod route;
mod server;
mod ui;

pub use error::{ApiError, ServerError};
pub use openapi::{Body, Schemas, openapi};
pub use prometheus::{DURATION_BUCKETS, LAG_BUCKETS, PASS_BUCKETS, render as render_metrics};
pub use route::{ROUTES, Route};
pub use server::{Api, LogStream, Reply, Server};
