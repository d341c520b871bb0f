//! Object storage in the host: opens the store, keeps the service-role S3
//! key, and runs the S3 endpoint on its own port (s3s signs the raw path,
//! so it cannot live under a prefix of the main port).

use crate::config::Settings;
use crate::db::Database;
use crate::secrets::random_token;
use anyhow::Context;
use std::sync::Arc;
use storage_s3s::{Backend, KeyRegistry, Pools, Store};

pub struct Storage {
    pub store: Store,
    pub keys: Arc<KeyRegistry>,
    /// `http://host:port` of the S3 endpoint.
    pub s3_endpoint: String,
    pub service_access_key_id: String,
    pub service_secret_access_key: String,
}

impl Storage {
    /// Opens the store (removing temp files of interrupted uploads) and
    /// starts serving S3.
    pub async fn start(
        settings: &Settings,
        db: &Database,
        tls: Option<&crate::tls::Tls>,
        edge: crate::s3_port::S3Edge,
    ) -> anyhow::Result<Storage> {
        let pools = Pools {
            owner: db.owner().clone(),
            api: db.api().clone(),
        };
        let backend = match &settings.storage_upstream {
            Some(upstream) => {
                let mut upstream = upstream.clone();
                // Claims the upstream prefix for this database's instance.
                upstream.instance_id = db
                    .setting_or_init("instance_id", || uuid::Uuid::new_v4().to_string())
                    .await?;
                Backend::Upstream(upstream)
            }
            None => Backend::Local(settings.storage_dir.clone()),
        };
        let store = Store::open(&backend, pools.clone(), settings.storage_max_object_bytes)
            .await
            .with_context(|| match &backend {
                Backend::Local(dir) => format!("open the object store in {}", dir.display()),
                Backend::Upstream(upstream) => {
                    format!("open the object store at {}", upstream.location)
                }
            })?;
        tracing::info!(backend = store.backend(), "object bytes");
        // Long enough that no upload another host is committing right now
        // can be taken for an orphan.
        store.spawn_sweeper(settings.storage_orphan_grace);
        let keys = Arc::new(KeyRegistry::new(pools));
        let access_key_id = db
            .setting_or_init("s3_service_access_key_id", || {
                format!("SDBSERVICE{}", random_token(6).to_uppercase())
            })
            .await?;
        let secret = db
            .setting_or_init("s3_service_secret_access_key", || random_token(30))
            .await?;
        keys.ensure(
            &access_key_id,
            &secret,
            "service role (created at first start)",
        )
        .await
        .context("store the service-role S3 key")?;

        let incoming = crate::listen::Incoming::bind(settings.s3_listen, tls)
            .await
            .with_context(|| format!("listen for S3 on {}", settings.s3_listen))?;
        let addr = incoming.local_addr();
        let shown = if addr.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        let service =
            storage_s3s::s3::service(store.clone(), keys.clone(), settings.s3_region.clone());
        let endpoint = storage_s3s::s3::Endpoint::new(service);
        tokio::spawn(crate::s3_port::serve(incoming, endpoint, edge));
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, "S3 endpoint listening");
        Ok(Storage {
            store,
            keys,
            s3_endpoint: format!("{scheme}://{shown}"),
            service_access_key_id: access_key_id,
            service_secret_access_key: secret,
        })
    }
}
