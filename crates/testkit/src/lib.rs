//! Test servers and fixtures for Portcullis. Not published.
#![forbid(unsafe_code)]
