//! Scheduled backups (`--backup-cron`, `--backup-to`, `--backup-keep`).
//!
//! Every host of an instance runs the schedule, so it survives any one of
//! them; at each tick exactly one takes the backup: the one whose
//! conditional update of `selfdb.settings.backup_last_tick` to that tick
//! succeeds (a row lock decides, and a tick already recorded is never
//! taken again). After a backup that succeeded, the newest `keep`
//! archives in the folder stay and older ones are deleted; a failed one
//! deletes nothing.

use crate::config::Settings;
use crate::db::Database;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct BackupSchedule {
    /// Cron expression (5 or 6 fields), in UTC; checked when resolved.
    pub cron: String,
    pub to: super::Destination,
    /// Archives kept after each scheduled backup (at least 1).
    pub keep: usize,
}

/// Starts the schedule when `settings` has one.
pub fn spawn(settings: Arc<Settings>, db: Database) -> anyhow::Result<()> {
    let Some(schedule) = settings.backup_schedule.clone() else {
        return Ok(());
    };
    let cron = crate::events::declare::parse_cron(&schedule.cron)?;
    tokio::spawn(async move {
        loop {
            let tick = match crate::events::declare::next_tick(&cron, chrono_tz::UTC, Utc::now()) {
                Ok(tick) => tick,
                Err(err) => {
                    tracing::error!(%err, "backup schedule stopped");
                    return;
                }
            };
            let wait = (tick - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            match claim(&db, tick).await {
                Ok(true) => run_alone(&db, &settings, &schedule, tick).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, "claiming a scheduled backup"),
            }
        }
    });
    Ok(())
}

/// Whether this host takes the backup of `tick` (ticks are written with a
/// fixed width, so text order is time order).
async fn claim(db: &Database, tick: DateTime<Utc>) -> anyhow::Result<bool> {
    let text = tick.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let client = db.owner().get().await?;
    let won = client
        .query_opt(
            "insert into selfdb.settings (key, value) values ('backup_last_tick', $1) \
             on conflict (key) do update set value = excluded.value \
             where selfdb.settings.value < excluded.value \
             returning 1",
            &[&text],
        )
        .await?
        .is_some();
    Ok(won)
}

/// Held (per session) by the host taking a scheduled backup: a tick that
/// comes while one still runs is skipped rather than queued, since queued
/// backups would hold off storage deletions for as long as they last.
const SCHEDULED_BACKUP_LOCK: i64 = 0x5e1f_db00_0006;

async fn run_alone(
    db: &Database,
    settings: &Settings,
    schedule: &BackupSchedule,
    tick: DateTime<Utc>,
) {
    let client = match db.owner().get().await {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(%err, "scheduled backup: no database connection");
            return;
        }
    };
    let alone = client
        .query_one("select pg_try_advisory_lock($1)", &[&SCHEDULED_BACKUP_LOCK])
        .await
        .map(|row| row.get::<_, bool>(0));
    match alone {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                tick = %tick.format("%Y-%m-%dT%H:%M:%SZ"),
                "the previous scheduled backup is still running: this tick is skipped"
            );
            return;
        }
        Err(err) => {
            tracing::warn!(%err, "scheduled backup: taking its lock");
            return;
        }
    }
    run(settings, schedule, tick).await;
    if client
        .execute("select pg_advisory_unlock($1)", &[&SCHEDULED_BACKUP_LOCK])
        .await
        .is_err()
    {
        // A session lock must not stay on a pooled connection.
        let _ = deadpool_postgres::Object::take(client);
    }
}

async fn run(settings: &Settings, schedule: &BackupSchedule, tick: DateTime<Utc>) {
    let started = std::time::Instant::now();
    let tick = tick.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    match super::backup(settings, &schedule.to).await {
        Ok(path) => {
            tracing::info!(
                tick,
                path,
                ms = started.elapsed().as_millis() as u64,
                "backup written"
            );
            match prune_destination(&schedule.to, schedule.keep).await {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(removed = removed.len(), "old backups deleted")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "deleting old backups"),
            }
        }
        Err(err) => tracing::error!(tick, err = format!("{err:#}"), "scheduled backup failed"),
    }
}

fn is_archive_name(name: &str) -> bool {
    name.starts_with("selfdb-") && name.ends_with(".tar")
}

/// [`prune`] for a folder or an S3 prefix.
async fn prune_destination(to: &super::Destination, keep: usize) -> anyhow::Result<Vec<String>> {
    match to {
        super::Destination::Dir(dir) => Ok(prune(dir, keep)?
            .into_iter()
            .map(|p| p.display().to_string())
            .collect()),
        super::Destination::S3(config) => {
            let folder = storage_s3s::S3Folder::open(config)?;
            let mut names: Vec<String> = folder
                .list()
                .await?
                .into_iter()
                .filter(|n| is_archive_name(n))
                .collect();
            names.sort();
            let excess = names.len().saturating_sub(keep.max(1));
            let mut removed = Vec::new();
            for name in names.into_iter().take(excess) {
                folder.delete(&name).await?;
                removed.push(folder.url_of(&name));
            }
            Ok(removed)
        }
    }
}

/// Deletes all but the newest `keep` archives (`selfdb-<time>.tar`, whose
/// names sort by time) in `dir`; returns what it deleted.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_archive_name)
        })
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(keep.max(1));
    let mut removed = Vec::new();
    for path in archives.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            // Another host pruning the same folder got there first.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
            Ok(()) => removed.push(path),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_archives_only() {
        let dir = std::env::temp_dir().join(format!("selfdb-prune-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "selfdb-20261207T000003.000Z.tar",
            "selfdb-20261207T000001.000Z.tar",
            "selfdb-20261207T000002.000Z.tar",
            "selfdb-20261207T000004.000Z.tar.partial",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let removed = prune(&dir, 2).unwrap();
        assert_eq!(removed, vec![dir.join("selfdb-20261207T000001.000Z.tar")]);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "notes.txt",
                "selfdb-20261207T000002.000Z.tar",
                "selfdb-20261207T000003.000Z.tar",
                "selfdb-20261207T000004.000Z.tar.partial"
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
