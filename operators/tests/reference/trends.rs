//! Reference trends: being written.
