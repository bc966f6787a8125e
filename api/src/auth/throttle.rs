//! The throttles in front of every password check and registration: which keys an attempt counts under, with which
//! policy (the counting itself is [`entity::auth_throttle`], atomic and shared by every instance).
//!
//! A password check (sign-in or password change) counts under three keys:
//! - the **account and client address** pair, with the low limit (`LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP`, 5): a
//!   stranger guessing from their address locks only themselves out of that account;
//! - the **account** alone, with a much higher ceiling (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, 100) against guessing spread
//!   over many addresses;
//! - for sign-ins, the **client address** alone (`LOGIN_MAX_FAILURES_PER_IP`, 50), against one address trying many
//!   accounts.
//!
//! Attempts are counted before the password is checked; a success clears the pair and account counts (they were the
//! caller's own) and takes its attempt back from the shared address count.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use anyhow::Context;
use entity::Db;
use entity::auth_throttle::{self, Limit, Policy};

use crate::config::Settings;
use crate::error::{ApiError, ErrorCode};

const WINDOW: Duration = Duration::from_secs(15 * 60);

fn login_policy(threshold: i32) -> Policy {
    Policy { threshold, window: WINDOW, base_lock: Duration::from_secs(30), max_lock: Duration::from_secs(15 * 60) }
}

/// The keys one password check counts under.
#[derive(Debug, Clone)]
pub struct PasswordCheck {
    pair: Limit,
    account: Limit,
    address: Option<Limit>,
}

impl PasswordCheck {
    /// A sign-in of `email` from `ip`: pair, account and address.
    pub fn sign_in(settings: &Settings, email: &str, ip: Option<IpAddr>) -> Self {
        let mut check = Self::password_change(settings, email, ip);
        check.address = ip.map(|ip| Limit::new(format!("ip:{ip}"), login_policy(settings.login_max_failures_per_ip)));
        check
    }

    /// A check of the current password of `email`'s account (changing it): pair and account, not the address (the
    /// caller is already signed in).
    pub fn password_change(settings: &Settings, email: &str, ip: Option<IpAddr>) -> Self {
        let email = email.to_lowercase();
        let address = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Self {
            pair: Limit::new(
                format!("login:{email}|{address}"),
                login_policy(settings.login_max_failures_per_account_and_ip),
            ),
            account: Limit::new(format!("account:{email}"), login_policy(settings.login_max_failures_per_account)),
            address: None,
        }
    }

    fn limits(&self) -> Vec<Limit> {
        [Some(self.pair.clone()), Some(self.account.clone()), self.address.clone()].into_iter().flatten().collect()
    }

    /// Counts the attempt, or refuses it with 429 and `Retry-After` while any of its keys is locked.
    pub async fn admit(&self, db: &impl Db) -> Result<(), ApiError> {
        match auth_throttle::admit(db, &self.limits()).await.context("Failed to check the password attempt limits")? {
            None => Ok(()),
            Some(wait) => Err(too_many("Too many failed password attempts", wait)),
        }
    }

    /// The password was right: the caller's own counts are cleared, the address's gets its attempt back.
    pub async fn succeeded(&self, db: &impl Db) -> Result<(), ApiError> {
        let address: Vec<Limit> = self.address.iter().cloned().collect();
        auth_throttle::settle(db, &[&self.pair.key, &self.account.key], &address)
            .await
            .context("Failed to clear the password attempt limits")?;
        Ok(())
    }

    /// The password could not be checked at all (the server was busy): the attempt is taken back everywhere.
    pub async fn not_checked(&self, db: &impl Db) -> Result<(), ApiError> {
        auth_throttle::forgive(db, &self.limits()).await.context("Failed to forgive the password attempt")?;
        Ok(())
    }
}

/// Counts a registration from `ip` (`REGISTER_MAX_PER_IP` an hour), or refuses it with 429.
pub async fn admit_registration(db: &impl Db, settings: &Settings, ip: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(ip) = ip else { return Ok(()) };
    let policy = Policy {
        threshold: settings.register_max_per_ip,
        window: Duration::from_secs(3600),
        base_lock: Duration::from_secs(60),
        max_lock: Duration::from_secs(3600),
    };
    match auth_throttle::admit(db, &[Limit::new(format!("register:{ip}"), policy)])
        .await
        .context("Failed to check the registration limit")?
    {
        None => Ok(()),
        Some(wait) => Err(too_many("Too many registrations from your address", wait)),
    }
}

/// Counts a verification mail sent to `user` on request (3 an hour), or refuses it with 429.
pub async fn admit_verification_mail(db: &impl Db, user: entity::UserId) -> Result<(), ApiError> {
    let policy = Policy {
        threshold: 3,
        window: Duration::from_secs(3600),
        base_lock: Duration::from_secs(10 * 60),
        max_lock: Duration::from_secs(3600),
    };
    match auth_throttle::admit(db, &[Limit::new(format!("verification-mail:{user}"), policy)])
        .await
        .context("Failed to check the verification mail limit")?
    {
        None => Ok(()),
        Some(wait) => Err(too_many("Too many verification mails sent recently", wait)),
    }
}

fn too_many(what: &str, wait: Duration) -> ApiError {
    let secs = wait.as_secs().max(1);
    ApiError::new(ErrorCode::RateLimited, format!("{what}; try again in {secs} seconds."))
        .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
}
