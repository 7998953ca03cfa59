pub mod calls;
pub mod install;
pub mod tokens;
pub mod vault;
