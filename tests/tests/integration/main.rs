//! sitegate's integration tests: one binary, one module per behaviour, all against real
//! interpreters and venvs made in temporary directories.

mod attack;
mod bad_input;
mod cli;
mod customize;
mod differential;
mod docs;
mod editable;
mod fidelity;
mod grants;
mod hardening;
mod resolution;
mod sandbox;
mod signals;
mod trust;
mod virtualenv;
