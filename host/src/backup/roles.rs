//! `roles.sql`: the roles a dump's owners and grants name (pg_dump writes
//! neither roles nor memberships), as statements that create each role the
//! target cluster lacks, with the attributes it had, and leave the ones it
//! has alone; for restore to run before the dump. Every role of the cluster is
//! included, since a dump may name any of them. Password hashes are included when the backup connects as a
//! superuser (the embedded cluster), who alone may read them; the host
//! sets its own login role's password again at start anyway.

use crate::db::{quote_ident, quote_literal};

/// Run inside the backup's snapshot transaction.
pub async fn script(client: &tokio_postgres::Client) -> anyhow::Result<String> {
    let superuser: bool = client
        .query_one(
            "select rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    // pg_* roles are built in. The bootstrap role is included: it may own
    // the database (compose's POSTGRES_USER), and restore creates it when
    // the new cluster's superuser has another name.
    let roles = client
        .query(
            "select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
                    rolreplication, rolbypassrls \
             from pg_roles where rolname !~ '^pg_' order by rolname",
            &[],
        )
        .await?;
    let passwords: std::collections::HashMap<String, String> = if superuser {
        client
            .query(
                "select rolname, rolpassword from pg_authid \
                 where rolname !~ '^pg_' and rolpassword is not null",
                &[],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    } else {
        Default::default()
    };
    let mut out = String::from("-- Roles of a SelfDB instance, written by `selfdb backup`.\n");
    for row in &roles {
        let name: String = row.get(0);
        let flag = |index: usize, yes: &str, no: &str| -> String {
            if row.get::<_, bool>(index) {
                yes.to_owned()
            } else {
                no.to_owned()
            }
        };
        let mut attributes = vec![
            flag(1, "superuser", "nosuperuser"),
            flag(2, "inherit", "noinherit"),
            flag(3, "createrole", "nocreaterole"),
            flag(4, "createdb", "nocreatedb"),
            flag(5, "login", "nologin"),
            flag(6, "replication", "noreplication"),
            flag(7, "bypassrls", "nobypassrls"),
        ];
        if let Some(password) = passwords.get(&name) {
            attributes.push(format!("password {}", quote_literal(password)));
        }
        // Only a role the target cluster lacks is created, with the
        // attributes it had; one that exists (the restoring role itself,
        // or a role of another database on a shared server) is left as it
        // is, its password included.
        out.push_str(&format!(
            "do $$ begin if not exists (select 1 from pg_roles where rolname = {}) then \
             execute {}; end if; end $$;\n",
            quote_literal(&name),
            quote_literal(&format!(
                "create role {} {}",
                quote_ident(&name),
                attributes.join(" ")
            ))
        ));
    }
    let memberships = client
        .query(
            "select r.rolname, m.rolname, a.admin_option \
             from pg_auth_members a \
             join pg_roles r on r.oid = a.roleid \
             join pg_roles m on m.oid = a.member \
             where r.rolname !~ '^pg_' and m.rolname !~ '^pg_' \
             order by 1, 2",
            &[],
        )
        .await?;
    for row in &memberships {
        let role: String = row.get(0);
        let member: String = row.get(1);
        let admin: bool = row.get(2);
        out.push_str(&format!(
            "grant {} to {}{};\n",
            quote_ident(&role),
            quote_ident(&member),
            if admin { " with admin option" } else { "" }
        ));
    }
    Ok(out)
}
