//! `<bandwidth>` rates: libvirt's checks, and the CLI's `AVG[,PEAK[,BURST[,FLOOR]]]`.

use crate::BandwidthRate;

impl BandwidthRate {
    /// Refuse what libvirt refuses: zero rates, a peak under the average, a floor outbound.
    pub fn check(&self, what: &str, inbound: bool) -> Result<(), String> {
        let r = self;
        for (name, v) in [
            ("average", r.average),
            ("peak", r.peak),
            ("burst", r.burst),
            ("floor", r.floor),
        ] {
            if v == Some(0) {
                return Err(format!("{what}: {name} must be positive, not 0"));
            }
        }
        if r.average.is_none() && r.floor.is_none() {
            return Err(format!(
                "{what}: an average (or, inbound, a floor) is needed"
            ));
        }
        if let (Some(a), Some(p)) = (r.average, r.peak)
            && p < a
        {
            return Err(format!(
                "{what}: peak {p} kB/s is below the average {a} kB/s"
            ));
        }
        if r.floor.is_some() && !inbound {
            return Err(format!(
                "{what}: floor is only supported for inbound traffic"
            ));
        }
        Ok(())
    }

    /// Parse `AVG[,PEAK[,BURST[,FLOOR]]]` (empty fields skipped, as virsh's
    /// `--inbound 100,,,50`).
    pub fn parse_cli(s: &str, inbound: bool) -> Result<BandwidthRate, String> {
        let dir = if inbound { "inbound" } else { "outbound" };
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() > if inbound { 4 } else { 3 } {
            return Err(format!("{dir} '{s}': too many fields"));
        }
        let mut v = [None; 4];
        for (i, p) in parts.iter().enumerate() {
            if !p.is_empty() {
                v[i] = Some(
                    p.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{dir} '{s}': '{p}' is not a number"))?,
                );
            }
        }
        let r = BandwidthRate {
            average: v[0],
            peak: v[1],
            burst: v[2],
            floor: v[3],
        };
        r.check(dir, inbound)?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(avg: u64, peak: Option<u64>, burst: Option<u64>, floor: Option<u64>) -> BandwidthRate {
        BandwidthRate {
            average: Some(avg).filter(|a| *a > 0),
            peak,
            burst,
            floor,
        }
    }

    #[test]
    fn rates_are_parsed_and_checked_as_libvirt_does() {
        assert_eq!(
            BandwidthRate::parse_cli("1000,2000,64,300", true).unwrap(),
            rate(1000, Some(2000), Some(64), Some(300))
        );
        assert_eq!(
            BandwidthRate::parse_cli("100,,,50", true).unwrap().floor,
            Some(50)
        );
        assert_eq!(
            BandwidthRate::parse_cli(",,,50", true).unwrap(),
            rate(0, None, None, Some(50))
        );
        for (s, inbound, why) in [
            ("0", true, "average must be positive"),
            ("100,50", true, "peak 50 kB/s is below the average 100"),
            ("100,,,50", false, "too many fields"),
            ("100,,0", false, "burst must be positive"),
            ("x", true, "is not a number"),
            ("-5", true, "is not a number"),
            (",200", true, "an average"),
        ] {
            let e = BandwidthRate::parse_cli(s, inbound).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
        let floor_out = rate(10, None, None, Some(5));
        assert!(
            floor_out
                .check("outbound", false)
                .unwrap_err()
                .contains("floor is only supported for inbound")
        );
    }
}
