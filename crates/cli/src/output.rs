//! How the CLI prints: JSON on request, local times as virsh prints them, yes/no.

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Unix seconds as local time, the way virsh prints lease expiry; 0 is an infinite lease.
/// The zone is the system's as the C library finds it: `TZ`, else /etc/localtime.
pub fn local_time(t: u64) -> String {
    local_time_in(t, &jiff::tz::TimeZone::system())
}

/// Unix seconds in `tz` as `YYYY-MM-DD HH:MM:SS`; the seconds themselves past year 9999.
pub fn local_time_in(t: u64, tz: &jiff::tz::TimeZone) -> String {
    if t == 0 {
        return "never".to_string();
    }
    let Some(dt) = i64::try_from(t)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|ts| tz.to_datetime(ts))
    else {
        return t.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    #[test]
    fn lease_expiry_prints_as_virsh_does() {
        // 2024-03-31 00:59:59 UTC, a second before Central Europe moves its clocks.
        let t = 1_711_846_799;
        assert_eq!(local_time_in(t, &TimeZone::UTC), "2024-03-31 00:59:59");
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(local_time_in(t, &cet), "2024-03-31 01:59:59");
        assert_eq!(local_time_in(t + 1, &cet), "2024-03-31 03:00:00");
        assert_eq!(local_time_in(1, &TimeZone::UTC), "1970-01-01 00:00:01");
        assert_eq!(local_time_in(0, &cet), "never", "an infinite lease");
        // Past what a calendar date is printed for, the seconds themselves.
        assert_eq!(
            local_time_in(u64::MAX, &TimeZone::UTC),
            u64::MAX.to_string()
        );
        assert_eq!(
            local_time_in(300_000_000_000, &TimeZone::UTC),
            "300000000000"
        );
    }
}
