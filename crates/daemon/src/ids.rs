//! Users, groups and randomness as the daemon's verbs take them.

use anyhow::{Context, Result, anyhow};

/// A user given by name or number.
pub fn user_id(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    nix::unistd::User::from_name(s)
        .with_context(|| format!("look up user '{s}'"))?
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| anyhow!("no such user '{s}'"))
}

/// A group given by name or number.
pub fn group_id(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    nix::unistd::Group::from_name(s)
        .with_context(|| format!("look up group '{s}'"))?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| anyhow!("no such group '{s}'"))
}

/// 64 random bits from the OS (for generated UUIDs and MACs).
pub fn entropy() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Wall-clock Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_names_or_numbers() {
        assert_eq!(user_id("root").unwrap(), 0);
        assert_eq!(user_id("1234").unwrap(), 1234);
        assert_eq!(group_id("0").unwrap(), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        let e = user_id("no-such-user-kvnet").unwrap_err().to_string();
        assert_eq!(e, "no such user 'no-such-user-kvnet'");
        let e = group_id("no-such-group-kvnet").unwrap_err().to_string();
        assert_eq!(e, "no such group 'no-such-group-kvnet'");
    }
}
