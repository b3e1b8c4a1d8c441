//! `<portgroup>` and what it shares with the network element: `<vlan>` and
//! `<bandwidth>`.

use roxmltree::Node;

use super::{Parser, R};
use crate::types::*;

impl<'a, 'i> Parser<'a, 'i> {
    pub(crate) fn portgroup(&mut self, n: Node, path: &str) -> R<PortGroup> {
        self.attrs(n, path, &["name", "default", "trustGuestRxFilters"])?;
        let mut pg = PortGroup {
            name: self.req(n, path, "name")?.to_string(),
            is_default: self.yes_no(n, path, "default")? == Some(true),
            trust_guest_rx_filters: self.yes_no(n, path, "trustGuestRxFilters")?,
            ..Default::default()
        };
        let kids = self.children(n, path, &["vlan", "virtualport", "bandwidth"])?;
        if let Some((c, cp)) = self.once(&kids, "vlan", path)? {
            pg.vlan = Some(self.vlan(c, &cp)?);
        }
        if let Some((c, cp)) = self.once(&kids, "virtualport", path)? {
            pg.virtualport = self.virtualport(c, &cp)?;
        }
        if let Some((c, cp)) = self.once(&kids, "bandwidth", path)? {
            pg.bandwidth = self.bandwidth(c, &cp)?;
        }
        Ok(pg)
    }

    pub(super) fn vlan(&mut self, n: Node, path: &str) -> R<Vlan> {
        self.attrs(n, path, &["trunk"])?;
        let mut v = Vlan {
            trunk: self.yes_no(n, path, "trunk")?,
            tags: Vec::new(),
        };
        for (c, cp) in self.children(n, path, &["tag*"])? {
            self.attrs(c, &cp, &["id", "nativeMode"])?;
            self.req(c, &cp, "id")?;
            let id: u16 = self.num(c, &cp, "id")?.unwrap_or(0);
            let native_mode = match c.attribute("nativeMode") {
                None => None,
                Some("tagged") => Some(NativeMode::Tagged),
                Some("untagged") => Some(NativeMode::Untagged),
                Some(m) => return Err(self.err(c, &cp, format!("invalid nativeMode='{m}'"))),
            };
            v.tags.push(VlanTag { id, native_mode });
        }
        Ok(v)
    }

    /// `None` for an empty `<bandwidth/>`, which libvirt does not keep either.
    pub(super) fn bandwidth(&mut self, n: Node, path: &str) -> R<Option<Bandwidth>> {
        self.attrs(n, path, &[])?;
        let kids = self.children(n, path, &["inbound", "outbound"])?;
        let mut b = Bandwidth::default();
        // A direction whose average and floor are 0 limits nothing, and libvirt drops it
        // (virNetDevBandwidthParse). Kept, it would format without either (zeros are not
        // printed) and the saved definition would not parse again.
        let limits = |r: &BandwidthRate| r.average.unwrap_or(0) > 0 || r.floor.unwrap_or(0) > 0;
        if let Some((c, cp)) = self.once(&kids, "inbound", path)? {
            b.inbound = Some(self.rate(c, &cp, true)?).filter(limits);
        }
        if let Some((c, cp)) = self.once(&kids, "outbound", path)? {
            b.outbound = Some(self.rate(c, &cp, false)?).filter(limits);
        }
        Ok((b != Bandwidth::default()).then_some(b))
    }

    fn rate(&mut self, n: Node, path: &str, inbound: bool) -> R<BandwidthRate> {
        self.attrs(n, path, &["average", "peak", "burst", "floor"])?;
        self.children(n, path, &[])?;
        let r = BandwidthRate {
            average: self.num(n, path, "average")?,
            peak: self.num(n, path, "peak")?,
            burst: self.num(n, path, "burst")?,
            floor: self.num(n, path, "floor")?,
        };
        if r.floor.is_some() && !inbound {
            return Err(self.err(n, path, "floor is only supported for inbound traffic"));
        }
        if r.average.is_none() && r.floor.is_none() {
            return Err(self.err(n, path, "missing mandatory average or floor attribute"));
        }
        Ok(r)
    }
}
