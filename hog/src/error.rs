//! Typed errors of the Hog toolchain: compile errors (with a source position) and VM errors.

use thiserror::Error;

/// A lexing, parsing or compiling problem, with the 1-based line and column where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (line {line}, column {column})")]
pub struct CompileError {
    /// What went wrong.
    pub message: String,
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
}

impl CompileError {
    /// Builds an error at a position.
    pub fn new(message: impl Into<String>, line: usize, column: usize) -> Self {
        CompileError {
            message: message.into(),
            line,
            column,
        }
    }
}

/// An error that stopped the VM.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VmError {
    /// A Hog error value was thrown (`throw Error(...)`) and nothing caught it.
    #[error("{kind}('{message}')")]
    Uncaught {
        /// The error type, such as `Error` or `RetryError`.
        kind: String,
        /// The error message.
        message: String,
        /// The optional payload, as JSON.
        payload: Option<serde_json::Value>,
    },
    /// A runtime fault inside the VM (PostHog calls these `HogVMException`): a type error, a
    /// missing global, an invalid bytecode, or a limit that was reached.
    #[error("{0}")]
    Exception(String),
    /// The bytecode could not be decoded.
    #[error("Invalid bytecode: {0}")]
    InvalidBytecode(String),
    /// The wall-clock budget ran out.
    #[error("Execution timed out after {seconds} seconds. Performed {ops} ops.")]
    Timeout {
        /// The budget in seconds.
        seconds: f64,
        /// How many operations ran.
        ops: u64,
    },
    /// The memory estimate went over the cap.
    #[error("Memory limit of {limit} bytes exceeded. Tried to allocate {used} bytes.")]
    MemoryLimit {
        /// The cap in bytes.
        limit: usize,
        /// The estimate that broke it.
        used: usize,
    },
}

impl VmError {
    /// Shorthand for [`VmError::Exception`].
    pub fn exception(message: impl Into<String>) -> Self {
        VmError::Exception(message.into())
    }

    /// Formats the error the way PostHog prints an uncaught error: `Type('message')`.
    ///
    /// Thrown Hog errors keep their own type (`Error`, `RetryError`, ...); VM faults and limits
    /// print as `HogVMException('...')`.
    pub fn to_hog_string(&self) -> String {
        match self {
            VmError::Uncaught { kind, message, .. } => {
                format!("{kind}('{}')", message.replace('\'', "\\'"))
            }
            other => format!(
                "HogVMException('{}')",
                other.to_string().replace('\'', "\\'")
            ),
        }
    }
}

/// Any error from the convenience entry points that compile and then run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HogError {
    /// The source did not compile.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The program failed while running.
    #[error(transparent)]
    Vm(#[from] VmError),
}

impl HogError {
    /// The error as PostHog prints it: `Type('message')`. Compile errors print as `SyntaxError`.
    pub fn to_hog_string(&self) -> String {
        match self {
            HogError::Compile(e) => {
                format!("SyntaxError('{}')", e.to_string().replace('\'', "\\'"))
            }
            HogError::Vm(e) => e.to_hog_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_uncaught_errors_like_posthog() {
        let e = VmError::Uncaught {
            kind: "RetryError".into(),
            message: "it's down".into(),
            payload: None,
        };
        assert_eq!(e.to_hog_string(), "RetryError('it\\'s down')");
        let e = VmError::exception("Global variable not found: x");
        assert_eq!(
            e.to_hog_string(),
            "HogVMException('Global variable not found: x')"
        );
    }

    #[test]
    fn compile_errors_carry_positions() {
        let e = CompileError::new("Unexpected token", 3, 7);
        assert_eq!(e.to_string(), "Unexpected token (line 3, column 7)");
    }
}
