//! The `ringsieve` binary (work in progress: the run command lands next).

fn main() {}
