//! remediator
pub mod diagnose;
pub mod event;
pub mod pattern;
pub mod yaml;
