//! Outgoing mail: through SMTP when `--smtp-url` is set, otherwise into the
//! dev outbox (the `selfdb.mail_outbox` table and an info log line), so
//! flows that need mail are testable without a mail server. With SMTP the
//! outbox is not written: its messages carry live sign-in links.

use crate::db::{Database, DbError};
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("invalid address: {0}")]
    Address(String),
    #[error("building the message: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
}

enum Transport {
    Outbox(Database),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
}

pub struct Mailer {
    transport: Transport,
}

impl Mailer {
    pub fn outbox(db: Database) -> Self {
        Self {
            transport: Transport::Outbox(db),
        }
    }

    /// `url` as lettre reads it: `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`, or plain `smtp://host:25`.
    pub fn smtp(url: &str, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Smtp(e.to_string()))?
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Address(format!("{from}: {e}")))?;
        Ok(Self {
            transport: Transport::Smtp { transport, from },
        })
    }

    /// Checks that the SMTP server answers (the outbox always does).
    pub async fn check(&self) -> Result<(), MailError> {
        match &self.transport {
            Transport::Outbox(_) => Ok(()),
            Transport::Smtp { transport, .. } => match transport.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(MailError::Smtp("the server did not answer".into())),
                Err(err) => Err(MailError::Smtp(err.to_string())),
            },
        }
    }

    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        kind: &str,
    ) -> Result<(), MailError> {
        match &self.transport {
            Transport::Outbox(db) => {
                let client = db.owner().get().await.map_err(DbError::from)?;
                client
                    .execute(
                        "insert into selfdb.mail_outbox (recipient, subject, body, kind) values ($1, $2, $3, $4)",
                        &[&to, &subject, &body, &kind],
                    )
                    .await?;
                tracing::info!(target: "selfdb::mail", to, subject, kind, "mail queued in the dev outbox:\n{body}");
                Ok(())
            }
            Transport::Smtp { transport, from } => {
                let to_box = to
                    .parse::<Mailbox>()
                    .map_err(|e| MailError::Address(format!("{to}: {e}")))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to_box)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body.to_owned())
                    .map_err(|e| MailError::Build(e.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                tracing::info!(target: "selfdb::mail", to, subject, kind, "mail sent over SMTP");
                Ok(())
            }
        }
    }
}
