//! The namespace guard and privilege probe of the kernel tests, shared with
//! other crates' namespace tests through `testbed::netns`.

pub use testbed::netns::*;
