//! `<ip>` with its `<tftp>` and `<dhcp>` (ranges, hosts, leases, `<bootp>`), and
//! `<route>`.

use std::net::{IpAddr, Ipv4Addr};

use roxmltree::Node;

use super::{Parser, R};
use crate::types::*;

impl<'a, 'i> Parser<'a, 'i> {
    pub(super) fn ip_def(&mut self, n: Node, path: &str) -> R<IpDef> {
        self.attrs(
            n,
            path,
            &["address", "netmask", "prefix", "family", "localPtr"],
        )?;
        self.req(n, path, "address")?;
        let address = self
            .ip(n, path, "address")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut ip = IpDef {
            address,
            prefix: self.num(n, path, "prefix")?,
            netmask: self.ipv4(n, path, "netmask")?,
            family: Self::string(n, "family"),
            local_ptr: self.yes_no(n, path, "localPtr")?,
            tftp_root: None,
            dhcp: None,
        };
        let kids = self.children(n, path, &["tftp", "dhcp"])?;
        if let Some((c, cp)) = self.once(&kids, "tftp", path)? {
            self.attrs(c, &cp, &["root"])?;
            self.children(c, &cp, &[])?;
            ip.tftp_root = Some(self.req(c, &cp, "root")?.to_string());
        }
        if let Some((c, cp)) = self.once(&kids, "dhcp", path)? {
            self.attrs(c, &cp, &[])?;
            let mut d = Dhcp::default();
            let dk = self.children(c, &cp, &["range*", "host*", "bootp"])?;
            for (r, rp) in Self::many(&dk, "range") {
                d.ranges.push(self.dhcp_range(r, &rp)?);
            }
            for (h, hp) in Self::many(&dk, "host") {
                d.hosts.push(self.dhcp_host(h, &hp)?);
            }
            if let Some((b, bp)) = self.once(&dk, "bootp", &cp)? {
                self.attrs(b, &bp, &["file", "server"])?;
                self.children(b, &bp, &[])?;
                d.bootp = Some(Bootp {
                    file: self.req(b, &bp, "file")?.to_string(),
                    server: self.ip(b, &bp, "server")?,
                });
            }
            // An empty <dhcp/> is dropped by libvirt's formatter.
            if !d.is_empty() {
                ip.dhcp = Some(d);
            }
        }
        Ok(ip)
    }

    pub(crate) fn dhcp_range(&mut self, n: Node, path: &str) -> R<DhcpRange> {
        self.attrs(n, path, &["start", "end"])?;
        self.req(n, path, "start")?;
        self.req(n, path, "end")?;
        let start = self
            .ip(n, path, "start")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let end = self
            .ip(n, path, "end")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let lease = self.lease_child(n, path)?;
        Ok(DhcpRange { start, end, lease })
    }

    pub(crate) fn dhcp_host(&mut self, n: Node, path: &str) -> R<DhcpHost> {
        self.attrs(n, path, &["mac", "id", "name", "ip"])?;
        Ok(DhcpHost {
            mac: self.mac(n, path, "mac")?,
            id: Self::string(n, "id"),
            name: Self::string(n, "name"),
            ip: self.ip(n, path, "ip")?,
            lease: self.lease_child(n, path)?,
        })
    }

    fn lease_child(&mut self, n: Node, path: &str) -> R<Option<Lease>> {
        let kids = self.children(n, path, &["lease"])?;
        let Some((c, cp)) = self.once(&kids, "lease", path)? else {
            return Ok(None);
        };
        self.attrs(c, &cp, &["expiry", "unit"])?;
        self.children(c, &cp, &[])?;
        self.req(c, &cp, "expiry")?;
        let expiry: u64 = self.num(c, &cp, "expiry")?.unwrap_or(0);
        let unit = match c.attribute("unit") {
            None => LeaseUnit::Minutes,
            Some("seconds") => LeaseUnit::Seconds,
            Some("minutes") => LeaseUnit::Minutes,
            Some("hours") => LeaseUnit::Hours,
            Some(u) => {
                return Err(self.err(
                    c,
                    &cp,
                    format!("invalid lease unit '{u}', expected seconds, minutes or hours"),
                ));
            }
        };
        // Normalised like libvirt prints it: no unit for an infinite lease, else an explicit one.
        Ok(Some(Lease {
            expiry,
            unit: if expiry == 0 { None } else { Some(unit) },
        }))
    }

    pub(super) fn route(&mut self, n: Node, path: &str) -> R<RouteDef> {
        self.attrs(
            n,
            path,
            &[
                "family", "address", "netmask", "prefix", "gateway", "metric",
            ],
        )?;
        self.children(n, path, &[])?;
        self.req(n, path, "address")?;
        self.req(n, path, "gateway")?;
        Ok(RouteDef {
            family: Self::string(n, "family"),
            address: self
                .ip(n, path, "address")?
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            prefix: self.num(n, path, "prefix")?,
            netmask: self.ipv4(n, path, "netmask")?,
            gateway: self
                .ip(n, path, "gateway")?
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            metric: self.num(n, path, "metric")?,
        })
    }
}
