//! Outgoing mail. Without SMTP settings every message lands in the dev
//! outbox: the `selfdb.mail_outbox` table and an info log line.

use crate::db::{Database, DbError};

pub struct Mailer {
    db: Database,
}

impl Mailer {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        kind: &str,
    ) -> Result<(), DbError> {
        let client = self.db.owner().get().await?;
        client
            .execute(
                "insert into selfdb.mail_outbox (recipient, subject, body, kind) values ($1, $2, $3, $4)",
                &[&to, &subject, &body, &kind],
            )
            .await?;
        tracing::info!(target: "selfdb::mail", to, subject, kind, "mail queued in the dev outbox:\n{body}");
        Ok(())
    }
}
