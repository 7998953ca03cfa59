/// New unique ids (connections, runs, claim holders), injected like the clock so a simulation
/// can make every run of one seed identical. Not for secrets: OAuth states, API keys and
/// encryption nonces always come from the operating system's random source.
pub trait IdSource: Send + Sync {
    /// 32 lower-case hex characters, unique for the deployment's lifetime.
    fn new_id(&self) -> String;
}

/// Random (v4) UUIDs.
pub struct RandomIds;

impl IdSource for RandomIds {
    fn new_id(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}
