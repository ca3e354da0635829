//! Reference retention: being written.
