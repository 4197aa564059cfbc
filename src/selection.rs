//! Which tenants a run covers and replaces: `--tenant`, `--tenant-shard`,
//! a snapshot's recorded selection, or everyone.

/// Which tenants a run covers: the `--tenant`s, a `--tenant-shard`, both,
/// or (when empty) everyone, platform-level rows included.
#[derive(Debug, Clone, Default)]
pub struct TenantSelection {
    pub tenants: Vec<uuid::Uuid>,
    pub shard: Option<crate::shard::Shard>,
}

impl TenantSelection {
    /// `AND …` conditions on a uuid column, for pushing the selection down.
    pub fn sql_filter(&self, column: &str) -> String {
        let mut out = String::new();
        if !self.tenants.is_empty() {
            let list: Vec<String> = self
                .tenants
                .iter()
                .map(|t| format!("'{t}'::uuid"))
                .collect();
            out.push_str(&format!("AND {column} IN ({})", list.join(", ")));
        }
        if let Some(shard) = self.shard {
            out.push_str(&format!(" AND {}", shard.sql_predicate(column)));
        }
        out
    }

    /// The `--tenant` list as a Postgres array parameter (None: no list).
    pub fn tenant_array(&self) -> Option<Vec<uuid::Uuid>> {
        (!self.tenants.is_empty()).then(|| self.tenants.clone())
    }

    /// Everyone, platform-level rows included.
    pub fn is_everyone(&self) -> bool {
        self.tenants.is_empty() && self.shard.is_none()
    }

    /// Whether a tenant's rows (None: platform-level rows) are selected.
    pub fn contains(&self, tenant: Option<&uuid::Uuid>) -> bool {
        let listed = self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.contains(t));
        let text = tenant.map(|t| t.to_string());
        listed && self.shard.is_none_or(|s| s.contains(text.as_deref()))
    }

    /// The selection of a run over a snapshot that holds `self`: what the
    /// command line asks for (`asked`), which must lie inside the
    /// snapshot's selection, or the snapshot's own when nothing is asked.
    /// Replacing any row outside the snapshot's selection would delete
    /// billing rows the snapshot cannot recompute, so that is refused.
    pub fn narrowed_to(&self, asked: &TenantSelection) -> crate::Result<TenantSelection> {
        if asked.is_everyone() {
            return Ok(self.clone());
        }
        let refuse = |why: String| {
            Err(crate::Error::usage(format!(
                "the snapshot holds {}, so it cannot recompute {} ({why}); ask for a subset of the snapshot's selection or extract a snapshot that holds it",
                self.describe(),
                asked.describe()
            )))
        };
        if !self.tenants.is_empty() {
            if asked.tenants.is_empty() {
                return refuse(
                    "a shard of every tenant reaches tenants the snapshot does not hold".into(),
                );
            }
            if let Some(t) = asked.tenants.iter().find(|t| !self.tenants.contains(t)) {
                return refuse(format!("tenant {t} is not in it"));
            }
        }
        if let Some(held) = self.shard {
            match asked.shard {
                Some(s) if s != held => {
                    return refuse(format!("tenant shard {s} is not tenant shard {held}"))
                }
                Some(_) => {}
                // Not everyone and no shard: some tenants are listed.
                None => {
                    if let Some(t) = asked.tenants.iter().find(|t| !self.contains(Some(t))) {
                        return refuse(format!("tenant {t} is not in tenant shard {held}"));
                    }
                }
            }
        }
        Ok(TenantSelection {
            tenants: asked.tenants.clone(),
            shard: asked.shard.or(self.shard),
        })
    }

    /// For people and the ledger: `all tenants`, `tenants a, b`, `tenant shard 1/4`, …
    pub fn describe(&self) -> String {
        let tenants = match self.tenants.len() {
            0 => "all tenants (platform rows included)".to_string(),
            1 => format!("tenant {}", self.tenants[0]),
            _ => format!(
                "tenants {}",
                self.tenants
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        match (self.tenants.is_empty(), self.shard) {
            (_, None) => tenants,
            (true, Some(s)) => format!("tenant shard {s}"),
            (false, Some(s)) => format!("{tenants} in tenant shard {s}"),
        }
    }

    /// The listed tenants as the text `tenant_id`s of frames and files.
    pub fn tenant_texts(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.to_string()).collect()
    }
}

/// `tenant_id` (text, as frames and files hold it) is one of `ids`: the
/// one filter every frame-side selection uses.
pub fn tenant_id_in<S: AsRef<str>>(ids: &[S]) -> polars::prelude::Expr {
    use polars::prelude::*;
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    col("tenant_id").is_in(lit(Series::new("ids".into(), ids)).implode(), false)
}
