//! Outgoing mail, behind a trait so that a real provider can be plugged in. There is no mail server yet: the
//! [`LogMailer`] writes the message (including the invitation link, which is the point of it) to the log.

use futures_util::future::BoxFuture;

/// An invitation to join a tenant.
pub struct InvitationMail<'a> {
    pub to: &'a str,
    pub tenant_name: &'a str,
    pub role: &'a str,
    pub accept_url: &'a str,
}

pub trait Mailer: Send + Sync {
    fn send_invitation<'a>(&'a self, mail: InvitationMail<'a>) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Writes mails to the log instead of sending them.
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send_invitation<'a>(&'a self, mail: InvitationMail<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tracing::info!(
                to = mail.to,
                tenant = mail.tenant_name,
                role = mail.role,
                accept_url = mail.accept_url,
                "invitation mail (not sent: no mail server configured)"
            );
            Ok(())
        })
    }
}
