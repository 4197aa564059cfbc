//! `--tenant-shard i/n`: a run that handles only the tenants whose
//! `tenant_id` hashes to shard `i` of `n` (0 ≤ i < n), so that n workers
//! (a Kubernetes Indexed Job, Airflow, Argo) together produce exactly the
//! unsharded result.
//!
//! The hash is stable and documented, so that Postgres can evaluate it
//! (the filter is pushed down) and anyone can reproduce it: the first four
//! bytes, big-endian, of SHA-256 of the tenant_id's lower-case hyphenated
//! text, modulo n. Platform-level rows (NULL tenant) hash as the nil UUID.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::rollup::PLATFORM_TENANT;
use crate::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(value: &str) -> Result<Shard> {
        let bad = || {
            Error::usage(format!(
                "--tenant-shard {value:?} is not i/n with 0 <= i < n, e.g. 0/4 (Kubernetes: $JOB_COMPLETION_INDEX/4)"
            ))
        };
        let (i, n) = value.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) =
            (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The shard of a tenant_id (its text form; any case).
    pub fn of(tenant_id: &str, count: u32) -> u32 {
        let digest = Sha256::digest(tenant_id.to_ascii_lowercase().as_bytes());
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % count
    }

    pub fn contains(&self, tenant_id: Option<&str>) -> bool {
        Shard::of(tenant_id.unwrap_or(PLATFORM_TENANT), self.count) == self.index
    }

    /// The same test in SQL, for `column` (a uuid, NULL = platform).
    pub fn sql_predicate(&self, column: &str) -> String {
        sql::render(
            sql::SHARD_PREDICATE.trim(),
            &[
                ("column", column),
                ("count", &self.count.to_string()),
                ("index", &self.index.to_string()),
            ],
        )
    }

    /// Added to report file names so that shards never write the same file.
    pub fn file_suffix(&self) -> String {
        format!("-shard-{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_tenant_is_in_exactly_one_shard() {
        let ids = [
            "a0000000-0000-0000-0000-000000000001",
            "A0000000-0000-0000-0000-000000000001",
            PLATFORM_TENANT,
        ];
        assert_eq!(Shard::of(ids[0], 7), Shard::of(ids[1], 7));
        for id in ids {
            let owners = (0..5)
                .filter(|i| {
                    Shard {
                        index: *i,
                        count: 5,
                    }
                    .contains(Some(id))
                })
                .count();
            assert_eq!(owners, 1);
        }
        assert!(Shard {
            index: Shard::of(PLATFORM_TENANT, 3),
            count: 3
        }
        .contains(None));
    }
}
