//! The one error a query definition can produce: a field and what is wrong with it.

/// A malformed query. `field` is a dotted path such as `series[1].math_property`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueryError {
    /// Where in the query the problem is.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl QueryError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, nested under `prefix` (`series[0]` + `math` → `series[0].math`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}
