//! argon2id password hashing with a bound on the work, and the memory, in flight.
//!
//! Each hash or check needs 19 MiB of working memory and a core for tens of milliseconds, so an unbounded number of
//! them (a burst of registrations) exhausts memory. [`PasswordHasher`] runs at most `concurrency` at once on the
//! blocking pool, each in one of `concurrency` working buffers that are allocated once and reused: the memory of
//! password work is fixed at start-up, instead of 19 MiB allocated and freed per request (which the allocator keeps
//! per thread, and which took the API to gigabytes under a burst). The permit and the buffer travel with the blocking
//! task, so a request dropped mid-hash holds its slot until the work really ends; a request that cannot get a slot
//! within `wait` is answered 503 with `Retry-After`.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ErrorCode};

/// Bounded argon2id hashing and verification; cheap to clone (shared permits and buffers).
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// New accounts may use only half of the permits (at least one), so that a burst of registrations always leaves
    /// room for the people who sign in.
    new_accounts: Arc<Semaphore>,
    /// One working buffer per permit, handed to whoever holds a permit.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    wait: Duration,
}

/// A permit and the buffer that goes with it, moved into the blocking task.
struct Slot {
    _gate: Option<OwnedSemaphorePermit>,
    _permit: OwnedSemaphorePermit,
    buffer: Vec<Block>,
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Slot {
    /// The first `blocks` blocks of the buffer, grown if a stored hash asks for more memory than the default.
    fn memory(&mut self, blocks: usize) -> &mut [Block] {
        if self.buffer.len() < blocks {
            self.buffer = vec![Block::default(); blocks];
        }
        &mut self.buffer[..blocks]
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The buffer goes back before the permit is released (fields drop after this body).
        if let Ok(mut buffers) = self.buffers.lock() {
            buffers.push(std::mem::take(&mut self.buffer));
        }
    }
}

impl PasswordHasher {
    /// At most `concurrency` hashes at once (0: one per CPU core), each request waiting at most `wait` for a slot.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
        let concurrency = if concurrency == 0 { cores } else { concurrency };
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            new_accounts: Arc::new(Semaphore::new((concurrency / 2).max(1))),
            buffers: Arc::new(Mutex::new((0..concurrency).map(|_| Vec::new()).collect())),
            wait,
        }
    }

    /// Hashes a password into a PHC string (argon2id v19, default parameters, 16-byte random salt).
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let slot = self.slot(None).await?;
        Self::hash_in(slot, password).await
    }

    /// [`Self::hash`] for a new account: waits for one of the permits registrations may use.
    pub async fn hash_for_new_account(&self, password: String) -> Result<String, ApiError> {
        let slot = self.slot(Some(&self.new_accounts)).await?;
        Self::hash_in(slot, password).await
    }

    async fn hash_in(mut slot: Slot, password: String) -> Result<String, ApiError> {
        let hashed = tokio::task::spawn_blocking(move || {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            hash_with(&mut slot, password.as_bytes(), &salt)
        })
        .await
        .context("Failed to join the password hashing task")?
        .context("Failed to hash a password")?;
        Ok(hashed)
    }

    /// Checks a password against a stored hash. With no stored hash (unknown account, or one without a password) it
    /// still spends the same work on a dummy hash, so that response times do not tell accounts apart.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let mut slot = self.slot(None).await?;
        let matched = tokio::task::spawn_blocking(move || {
            let dummy = stored.is_none();
            let stored = match stored {
                Some(stored) => stored,
                None => dummy_hash(&mut slot)?.to_owned(),
            };
            Ok::<_, anyhow::Error>(!dummy && verify_with(&mut slot, password.as_bytes(), &stored)?)
        })
        .await
        .context("Failed to join the password verification task")?
        .context("Failed to verify a password")?;
        Ok(matched)
    }

    /// A permit (after one of `gate`'s, if given) and a buffer, waiting at most `wait` in all.
    async fn slot(&self, gate: Option<&Arc<Semaphore>>) -> Result<Slot, ApiError> {
        let acquire = async {
            let gate = match gate {
                Some(gate) => Some(gate.clone().acquire_owned().await?),
                None => None,
            };
            Ok::<_, tokio::sync::AcquireError>((gate, self.permits.clone().acquire_owned().await?))
        };
        let (gate, permit) = match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permits)) => permits,
            Ok(Err(closed)) => return Err(ApiError::internal(anyhow::anyhow!(closed))),
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "The server is busy checking passwords; retry in a moment.",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
        };
        let buffer = self.buffers.lock().ok().and_then(|mut b| b.pop()).unwrap_or_default();
        Ok(Slot { _gate: gate, _permit: permit, buffer, buffers: self.buffers.clone() })
    }
}

fn hash_with(slot: &mut Slot, password: &[u8], salt: &[u8]) -> anyhow::Result<String> {
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt, &mut out, slot.memory(params.block_count()))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(Salt::new(salt).map_err(|e| anyhow::anyhow!("{e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    Ok(phc.to_string())
}

fn verify_with(slot: &mut Slot, password: &[u8], stored: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        anyhow::bail!("stored hash has no salt or output");
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, slot.memory(blocks))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(bool::from(out.ct_eq(expected.as_bytes())))
}

/// A hash of nothing anyone knows, computed once (with the caller's slot), for checks of unknown accounts.
fn dummy_hash(slot: &mut Slot) -> anyhow::Result<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(dummy) = DUMMY.get() {
        return Ok(dummy);
    }
    let hashed = hash_with(slot, b"not-a-real-password", b"dummy-salt-16byt")?;
    Ok(DUMMY.get_or_init(|| hashed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_standard_phc_strings_that_the_argon2_crate_verifies_and_that_verify_its_hashes() {
        use argon2::{PasswordHasher as _, PasswordVerifier};
        let hasher = PasswordHasher::new(1, Duration::from_secs(1));
        let mut slot = Slot {
            _gate: None,
            _permit: hasher.permits.clone().try_acquire_owned().unwrap(),
            buffer: Vec::new(),
            buffers: hasher.buffers.clone(),
        };
        let ours = hash_with(&mut slot, b"correct horse", b"0123456789abcdef").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(Argon2::default().verify_password(b"correct horse", ours.as_str()).is_ok());
        // Hashes made before the buffers (by `Argon2::hash_password`) still verify.
        let theirs = Argon2::default().hash_password(b"correct horse").unwrap().to_string();
        assert!(verify_with(&mut slot, b"correct horse", &theirs).unwrap());
        assert!(!verify_with(&mut slot, b"wrong horse", &theirs).unwrap());
        assert!(verify_with(&mut slot, b"correct horse", "not a hash").is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(1, Duration::from_secs(5));
        let h = hasher.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse".into(), Some(h.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!hasher.verify("not-a-real-password".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_request_that_cannot_get_a_slot_in_time_is_a_503_with_retry_after() {
        let hasher = PasswordHasher::new(1, Duration::from_millis(20));
        let held = hasher.permits.clone().acquire_owned().await.unwrap();
        let err = hasher.hash("correct horse".into()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
        drop(held);
        assert!(hasher.hash("correct horse".into()).await.is_ok(), "the slot is free again");
    }

    #[tokio::test]
    async fn new_accounts_never_take_every_permit() {
        let hasher = PasswordHasher::new(2, Duration::from_millis(20));
        let held = hasher.new_accounts.clone().acquire_owned().await.unwrap();
        let err = hasher.hash_for_new_account("correct horse".into()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ServiceUnavailable, "the registrations' share is taken");
        assert!(hasher.verify("correct horse".into(), None).await.is_ok(), "sign-ins still get a permit");
        drop(held);
        assert!(hasher.hash_for_new_account("correct horse".into()).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_dropped_mid_hash_keeps_its_slot_until_the_hash_ends() {
        let hasher = PasswordHasher::new(1, Duration::from_secs(30));
        let request = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash("correct horse".into()).await })
        };
        while hasher.permits.available_permits() == 1 {
            tokio::task::yield_now().await;
        }
        request.abort();
        assert_eq!(hasher.permits.available_permits(), 0, "the blocking hash still runs and holds the slot");
        let started = std::time::Instant::now();
        while hasher.permits.available_permits() == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the slot was never given back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
