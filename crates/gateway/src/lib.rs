//! The Portcullis session pipeline: parse → vet → evaluate → approve → limit → audit → forward.
#![forbid(unsafe_code)]
