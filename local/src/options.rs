//! The local runner's options, read from the environment, and what it says when one is wrong:
//! a message naming the variable and the fix, never a panic or a bare `AddrInUse`.

use std::net::SocketAddr;
use std::path::PathBuf;

use hubsync::adapters::StoreFileError;
use hubsync::domain::Secret;

use crate::state_dir::StateDirError;

/// Where hubsync listens.
pub const LOCAL_ADDR_VAR: &str = "HUBSYNC_LOCAL_ADDR";
pub const DEFAULT_LOCAL_ADDR: &str = "127.0.0.1:8080";
/// Where the bundled HubSpot simulator listens.
pub const SIM_ADDR_VAR: &str = "HUBSYNC_SIM_ADDR";
pub const DEFAULT_SIM_ADDR: &str = "127.0.0.1:8090";
/// Where the local runner keeps its state across restarts: a directory, or `memory` for none.
pub const STATE_VAR: &str = "HUBSYNC_LOCAL_STATE";
/// Relative to the directory the runner starts in.
pub const DEFAULT_STATE_DIR: &str = ".hubsync-local";
/// The value of [`STATE_VAR`] that keeps nothing: every start is a new deployment.
pub const IN_MEMORY: &str = "memory";
/// A real HubSpot app instead of the simulator: all three, or none.
pub const REAL_HUBSPOT_VARS: [&str; 3] = ["HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET", "HUBSPOT_REDIRECT_URI"];

pub struct LocalOptions {
    /// Where hubsync listens (127.0.0.1:8080 by default).
    pub addr: SocketAddr,
    /// Where the simulator listens, when no real HubSpot is given.
    pub simulator_addr: SocketAddr,
    /// A real HubSpot app instead of the simulator.
    pub real_hubspot: Option<RealHubSpot>,
    /// Where state is kept (`.hubsync-local/` by default).
    pub state: StateLocation,
}

/// Where the local runner keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// Nothing outlives the process.
    Memory,
    /// hubsync's store, the simulator's state and the local secrets, kept in this directory.
    Directory(PathBuf),
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::Memory => f.write_str("in memory only, none of it kept after a stop"),
            StateLocation::Directory(dir) => write!(f, "kept in {}", dir.display()),
        }
    }
}

pub struct RealHubSpot {
    pub client_id: String,
    pub client_secret: Secret,
    /// The public callback URL registered in the HubSpot app (HubSpot needs https).
    pub redirect_uri: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{var} must be an address like {example}, not `{value}`")]
    BadAddress { var: &'static str, value: String, example: &'static str },
    #[error(
        "{addr} is in use, so {what} cannot listen there: stop what runs on it, or set {var} to a free address (e.g. {var}={suggestion})"
    )]
    AddressInUse {
        what: &'static str,
        addr: SocketAddr,
        var: &'static str,
        suggestion: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("a real HubSpot app needs {}; {missing} is not set (or unset all three to use the bundled simulator)", REAL_HUBSPOT_VARS.join(", "))]
    PartialRealHubSpot { missing: String },
    #[error(
        "{} is in use by another hubsync-local (one at a time keeps its state there): stop it, or set {var} to another directory ({var}={IN_MEMORY} keeps nothing)",
        file.display()
    )]
    StateInUse {
        file: PathBuf,
        var: &'static str,
        #[source]
        source: StoreFileError,
    },
    #[error(
        "cannot keep the local state in {}: {source}; move it away to start afresh, or set {var} to another directory ({var}={IN_MEMORY} keeps nothing)",
        dir.display()
    )]
    State {
        dir: PathBuf,
        var: &'static str,
        #[source]
        source: StateDirError,
    },
    #[error("the local store: {0}")]
    Store(#[from] hubsync::ports::StoreError),
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
}

impl LocalOptions {
    /// The options from `var` (the environment, in `main`), with the defaults README uses.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, LocalError> {
        let addr = |name: &'static str, default: &'static str| {
            let value = var(name).unwrap_or_else(|| default.to_string());
            value.trim().parse().map_err(|_| LocalError::BadAddress { var: name, value, example: default })
        };
        let real = REAL_HUBSPOT_VARS.map(|name| var(name).filter(|value| !value.trim().is_empty()));
        let real_hubspot = match real {
            [Some(client_id), Some(secret), Some(redirect_uri)] => {
                Some(RealHubSpot { client_id, client_secret: Secret::new(secret), redirect_uri })
            }
            [None, None, None] => None,
            partial => {
                let missing: Vec<&str> =
                    REAL_HUBSPOT_VARS.iter().zip(&partial).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
                return Err(LocalError::PartialRealHubSpot { missing: missing.join(" and ") });
            }
        };
        let state = match var(STATE_VAR).map(|value| value.trim().to_string()).filter(|value| !value.is_empty()) {
            Some(value) if value.eq_ignore_ascii_case(IN_MEMORY) => StateLocation::Memory,
            Some(dir) => StateLocation::Directory(PathBuf::from(dir)),
            None => StateLocation::Directory(PathBuf::from(DEFAULT_STATE_DIR)),
        };
        Ok(LocalOptions {
            addr: addr(LOCAL_ADDR_VAR, DEFAULT_LOCAL_ADDR)?,
            simulator_addr: addr(SIM_ADDR_VAR, DEFAULT_SIM_ADDR)?,
            real_hubspot,
            state,
        })
    }
}

/// A failure to listen on `addr`, saying which variable moves it when the address is taken.
pub(crate) fn listen_error(
    source: std::io::Error,
    what: &'static str,
    addr: SocketAddr,
    var: &'static str,
) -> LocalError {
    if source.kind() != std::io::ErrorKind::AddrInUse {
        return LocalError::Io(source);
    }
    let mut suggestion = addr;
    suggestion.set_port(addr.port().wrapping_add(1).max(1024));
    LocalError::AddressInUse { what, addr, var, suggestion, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_are_the_readmes_addresses_and_the_simulator() {
        let options = LocalOptions::from_env(env(&[])).unwrap();
        assert_eq!(options.addr.to_string(), DEFAULT_LOCAL_ADDR);
        assert_eq!(options.simulator_addr.to_string(), DEFAULT_SIM_ADDR);
        assert!(options.real_hubspot.is_none());
        assert_eq!(options.state, StateLocation::Directory(PathBuf::from(".hubsync-local")));
    }

    #[test]
    fn state_is_kept_where_the_variable_says_or_nowhere() {
        let options = LocalOptions::from_env(env(&[(STATE_VAR, "/tmp/hubsync-state")])).unwrap();
        assert_eq!(options.state, StateLocation::Directory(PathBuf::from("/tmp/hubsync-state")));
        let options = LocalOptions::from_env(env(&[(STATE_VAR, "memory")])).unwrap();
        assert_eq!(options.state, StateLocation::Memory);
        let options = LocalOptions::from_env(env(&[(STATE_VAR, " ")])).unwrap();
        assert_eq!(options.state, StateLocation::Directory(PathBuf::from(DEFAULT_STATE_DIR)));
    }

    #[test]
    fn a_malformed_address_names_its_variable_and_an_example() {
        let Err(err) = LocalOptions::from_env(env(&[(SIM_ADDR_VAR, "localhost")])) else { panic!("accepted") };
        assert_eq!(err.to_string(), "HUBSYNC_SIM_ADDR must be an address like 127.0.0.1:8090, not `localhost`");
    }

    #[test]
    fn a_partial_real_hubspot_is_refused_rather_than_falling_back_to_the_simulator() {
        let Err(err) =
            LocalOptions::from_env(env(&[("HUBSPOT_CLIENT_ID", "123"), ("HUBSPOT_CLIENT_SECRET", "s3cr3t")]))
        else {
            panic!("accepted")
        };
        let message = err.to_string();
        assert!(message.contains("HUBSPOT_REDIRECT_URI is not set"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
        let all =
            [("HUBSPOT_CLIENT_ID", "1"), ("HUBSPOT_CLIENT_SECRET", "s"), ("HUBSPOT_REDIRECT_URI", "https://x/cb")];
        assert!(LocalOptions::from_env(env(&all)).unwrap().real_hubspot.is_some());
    }
}
