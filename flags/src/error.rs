//! Error types of the crate.

use thiserror::Error;

/// A definition that cannot be accepted, with the dotted path of the offending field
/// (for example `filters.multivariate.variants`). Maps to HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ValidationError {
    /// Dotted path of the field, empty for the whole document.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A `/flags` or `/decide` request body that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// No `token`, `$token` or `api_key`: HTTP 401.
    #[error("no project token: send `token`, `$token` or `api_key`")]
    MissingToken,
    /// No `distinct_id`: HTTP 400.
    #[error("`distinct_id` is required")]
    MissingDistinctId,
    /// The body is not a JSON object, or a field has the wrong type: HTTP 400.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field name as sent.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl RequestError {
    /// The HTTP status this error maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            RequestError::MissingToken => 401,
            RequestError::MissingDistinctId | RequestError::InvalidField { .. } => 400,
        }
    }
}
