//! Outgoing mail: invitations and email verification. The [`Mailer`] has two real implementations, chosen by
//! `MAIL_TRANSPORT`:
//!
//! - `smtp`: SMTP through lettre, with TLS (`smtps://`, or `smtp://…?tls=required` for STARTTLS); plain `smtp://` is
//!   accepted only for a relay on the loopback interface, and opportunistic TLS never (a man in the middle could strip
//!   it and read every link);
//! - `file` (the default): an outbox folder, one `.eml` file per message (`MAIL_OUTBOX_DIR`), so that a developer can
//!   open the message and follow its link.
//!
//! Messages carry secrets (invitation and verification links), so no mail body, subject or link ever reaches a log:
//! a sent or failed message is logged with its kind and the id of what it is about only.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{MailTransport, Settings};

/// What a message is for; logged instead of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum MailKind {
    Invitation,
    EmailVerification,
}

impl MailKind {
    /// The name logged (`invitation`, `email_verification`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A plain-text message to one person.
pub struct Mail {
    pub kind: MailKind,
    /// The id of the invitation or user the message is about: what the log names.
    pub reference: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("kind", &self.kind).field("reference", &self.reference).finish_non_exhaustive()
    }
}

pub trait Mailer: Send + Sync {
    /// Sends `mail`; the error says why without quoting the message.
    fn send(&self, mail: Mail) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// The mailer `settings` ask for. Fails on an unusable configuration (a missing or insecure `SMTP_URL`, an outbox
/// folder that cannot be created), so that a misconfigured server does not start.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Mailer>> {
    let from: Mailbox =
        settings.mail_from.parse().with_context(|| format!("MAIL_FROM {:?} is not a mailbox", settings.mail_from))?;
    let timeout = Duration::from_secs(settings.mail_send_timeout_secs.max(1));
    match settings.mail_transport {
        MailTransport::File => {
            let dir = &settings.mail_outbox_dir;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create the mail outbox folder {}", dir.display()))?;
            tracing::warn!(
                outbox = %dir.display(),
                "MAIL_TRANSPORT=file: mail is written to the outbox folder, not sent (set MAIL_TRANSPORT=smtp and SMTP_URL in production)"
            );
            Ok(Arc::new(LettreMailer { transport: AsyncFileTransport::<Tokio1Executor>::new(dir), from, timeout }))
        }
        MailTransport::Smtp => {
            let url = settings.smtp_url.as_ref().context("MAIL_TRANSPORT=smtp needs SMTP_URL")?;
            let transport = smtp_transport(url, timeout)?;
            Ok(Arc::new(LettreMailer { transport, from, timeout }))
        }
    }
}

/// An SMTP transport for `url`, refusing every form that could send a link in clear text over a network.
fn smtp_transport(url: &SecretString, timeout: Duration) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    check_smtp_url(url.expose_secret())?;
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
        .map_err(|e| anyhow::anyhow!("SMTP_URL is not usable: {e}"))?
        .timeout(Some(timeout))
        .build())
}

/// `smtps://` and `smtp://…?tls=required` anywhere; plain `smtp://` only on the loopback interface.
pub fn check_smtp_url(raw: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(raw).map_err(|_| anyhow::anyhow!("SMTP_URL is not a URL"))?;
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    // `smtp` is not a scheme the URL standard knows, so its host comes back as an opaque string, addresses included.
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => bail!("SMTP_URL names no host"),
    };
    match (url.scheme(), tls.as_deref()) {
        ("smtps", None) | ("smtp", Some("required")) => Ok(()),
        ("smtp", None) if loopback => Ok(()),
        ("smtp", None) => bail!("SMTP_URL must use TLS (smtps://, or smtp://…?tls=required) for a non-local server"),
        ("smtp", Some("opportunistic")) => bail!("SMTP_URL: opportunistic TLS can be stripped; use tls=required"),
        (scheme, tls) => bail!("SMTP_URL: unsupported scheme {scheme:?} or tls={tls:?}"),
    }
}

struct LettreMailer<T> {
    transport: T,
    from: Mailbox,
    timeout: Duration,
}

impl<T> Mailer for LettreMailer<T>
where
    T: AsyncTransport + Send + Sync,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    fn send(&self, mail: Mail) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let (kind, reference) = (mail.kind.as_str(), mail.reference.clone());
            let result = async {
                let to: Mailbox = mail.to.parse().context("Failed to read the recipient's address")?;
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body)
                    .context("Failed to build the message")?;
                tokio::time::timeout(self.timeout, self.transport.send(message))
                    .await
                    .context("Timed out sending the message")?
                    .context("Failed to send the message")?;
                anyhow::Ok(())
            }
            .await;
            match &result {
                Ok(()) => tracing::info!(kind, reference, "mail sent"),
                Err(e) => tracing::warn!(kind, reference, error = format!("{e:#}"), "mail not sent"),
            }
            result
        })
    }
}

/// The invitation to join a tenant.
pub fn invitation(to: &str, tenant_name: &str, role: &str, accept_url: &str, invitation_id: uuid::Uuid) -> Mail {
    Mail {
        kind: MailKind::Invitation,
        reference: invitation_id.to_string(),
        to: to.to_owned(),
        subject: format!("You are invited to {tenant_name} on TestIO Hub"),
        body: format!(
            "Hello,\n\nyou have been invited to join {tenant_name} on TestIO Hub as {role}.\n\nAccept the invitation \
             here (sign in or register with this email address first):\n\n{accept_url}\n\nIf you did not expect \
             this, ignore this message.\n"
        ),
    }
}

/// The link that proves `to` is the user's mailbox.
pub fn email_verification(
    to: &str,
    name: &str,
    verify_url: &str,
    valid_for: Duration,
    user_id: entity::UserId,
) -> Mail {
    let hours = (valid_for.as_secs() / 3600).max(1);
    Mail {
        kind: MailKind::EmailVerification,
        reference: user_id.to_string(),
        to: to.to_owned(),
        subject: "Verify your email address for TestIO Hub".to_owned(),
        body: format!(
            "Hello {name},\n\nplease confirm that this is your email address by opening this link (valid for \
             {hours} hours, once):\n\n{verify_url}\n\nIf you did not create a TestIO Hub account, ignore this \
             message.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_must_not_send_in_clear_text_over_a_network() {
        for ok in [
            "smtps://user:pw@mail.example.com:465",
            "smtp://user:pw@mail.example.com:587?tls=required",
            "smtp://127.0.0.1:2525",
            "smtp://localhost:25",
            "smtp://[::1]:25",
        ] {
            assert!(check_smtp_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "smtp://mail.example.com:25",
            "smtp://mail.example.com:587?tls=opportunistic",
            "http://mail.example.com",
            "smtp://",
            "not a url",
        ] {
            assert!(check_smtp_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_mails_debug_form_shows_neither_recipient_nor_content() {
        let mail = email_verification(
            "ann@example.com",
            "Ann",
            "http://x/v1/auth/verify-email?token=ev_secret",
            Duration::from_secs(86400),
            entity::UserId(uuid::Uuid::nil()),
        );
        let shown = format!("{mail:?}");
        assert!(!shown.contains("ev_secret") && !shown.contains("ann@example.com"), "{shown}");
        assert!(mail.body.contains("ev_secret") && mail.body.contains("24 hours"));
    }
}
