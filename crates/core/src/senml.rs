//! SenML (work in progress)
