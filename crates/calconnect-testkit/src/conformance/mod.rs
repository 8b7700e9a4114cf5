//! The store conformance suite: `pub async fn`s taking a [`crate::TestBackend`], one per
//! behaviour. [`crate::conformance_tests!`] turns them into tests. They panic on failure.

mod budget;
mod connections;
mod flow;
mod maintenance;
mod pending;
mod profiles;
mod refresh;

pub use budget::*;
pub use connections::*;
pub use flow::*;
pub use maintenance::*;
pub use pending::*;
pub use profiles::*;
pub use refresh::*;
