//! sitegate's integration tests: one binary, one module per behaviour, all against real
//! interpreters and venvs made in temporary directories.

mod attack;
mod bad_input;
mod customize;
mod differential;
mod docs;
mod editable;
mod fidelity;
mod sandbox;
mod trust;
