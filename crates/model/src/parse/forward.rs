//! How the network reaches the host and beyond: `<forward>` (its interface pool, PCI
//! addresses, `<nat>` and `<driver>`), `<bridge>` and `<virtualport>`.

use std::net::Ipv4Addr;

use roxmltree::Node;
use uuid::Uuid;

use super::{Parser, R};
use crate::types::*;

impl<'a, 'i> Parser<'a, 'i> {
    pub(super) fn forward(&mut self, n: Node, path: &str) -> R<Forward> {
        self.attrs(n, path, &["mode", "dev", "managed"])?;
        let mode = match n.attribute("mode") {
            None => ForwardMode::Nat,
            Some("none") => return Err(self.err(n, path, "unknown forward mode 'none'")),
            Some(m) => m.parse::<ForwardMode>().map_err(|e| self.err(n, path, e))?,
        };
        let mut f = Forward {
            mode,
            managed: self.yes_no(n, path, "managed")?,
            ..Default::default()
        };
        let dev = Self::string(n, "dev");
        let kids = self.children(n, path, &["interface*", "pf", "address*", "nat", "driver"])?;
        let mut pfs = 0;
        for (c, cp) in &kids {
            let (c, cp) = (*c, cp.as_str());
            match c.tag_name().name() {
                "interface" => {
                    self.attrs(c, cp, &["dev", "connections"])?;
                    f.interfaces.push(ForwardInterface {
                        dev: self.req(c, cp, "dev")?.to_string(),
                        connections: self.num(c, cp, "connections")?.filter(|v| *v > 0),
                    });
                }
                "pf" => {
                    pfs += 1;
                    if pfs > 1 {
                        return Err(self.err(
                            c,
                            path,
                            "only one <pf> element is allowed in <forward>",
                        ));
                    }
                    self.attrs(c, cp, &["dev"])?;
                    f.pf = Some(self.req(c, cp, "dev")?.to_string());
                }
                "address" => f.addresses.push(self.pci_address(c, cp)?),
                "nat" => {
                    if f.nat.is_some() {
                        return Err(self.err(c, path, "element <nat> may appear only once"));
                    }
                    let nat = self.nat(c, cp)?;
                    if nat != Nat::default() {
                        f.nat = Some(nat);
                    } else if mode != ForwardMode::Nat {
                        return Err(self.err(
                            c,
                            cp,
                            "the <nat> element can only be used when <forward> 'mode' is 'nat'",
                        ));
                    }
                }
                "driver" => {
                    if f.driver.is_some() {
                        return Err(self.err(c, path, "element <driver> may appear only once"));
                    }
                    self.attrs(c, cp, &["name", "model"])?;
                    let name = Self::string(c, "name").filter(|v| v != "default");
                    if let Some(nm) = &name
                        && !matches!(nm.as_str(), "kvm" | "vfio" | "xen")
                    {
                        return Err(self.err(c, cp, format!("unknown driver name '{nm}'")));
                    }
                    let d = ForwardDriver {
                        name,
                        model: Self::string(c, "model"),
                    };
                    if d != ForwardDriver::default() {
                        f.driver = Some(d);
                    }
                }
                _ => unreachable!(),
            }
        }
        if !f.interfaces.is_empty() && !f.addresses.is_empty() {
            return Err(self.err(
                n,
                path,
                "<interface> and <address> elements can't be used together in <forward>",
            ));
        }
        if let Some(d) = dev {
            if f.pf.is_some() {
                return Err(self.err(n, path, "forward dev can't be used together with <pf>"));
            }
            if !f.addresses.is_empty() {
                return Err(self.err(
                    n,
                    path,
                    "forward dev can't be used together with <address> elements",
                ));
            }
            match f.interfaces.first() {
                None => f.interfaces.push(ForwardInterface {
                    dev: d.clone(),
                    connections: None,
                }),
                Some(first) if first.dev != d => {
                    return Err(self.err(
                        n,
                        path,
                        format!(
                            "forward dev '{d}' must match first interface element dev '{}'",
                            first.dev
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        // libvirt reports (and prints) the first pool interface as the forward dev.
        if f.pf.is_none() {
            f.dev = f.interfaces.first().map(|i| i.dev.clone());
        }
        Ok(f)
    }

    fn pci_address(&self, n: Node, path: &str) -> R<PciAddress> {
        self.attrs(
            n,
            path,
            &["type", "domain", "bus", "slot", "function", "multifunction"],
        )?;
        let t = self.req(n, path, "type")?;
        if t != "pci" {
            return Err(self.err(
                n,
                path,
                format!("unsupported address type '{t}', only 'pci' is allowed"),
            ));
        }
        let get = |attr: &str, max: u32| -> R<u32> {
            match n.attribute(attr) {
                None => Ok(0),
                Some(v) => {
                    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => v.parse::<u32>().ok(),
                    };
                    match parsed {
                        Some(x) if x <= max => Ok(x),
                        _ => Err(self.err(
                            n,
                            path,
                            format!("invalid PCI address {attr}='{v}' (maximum {max:#x})"),
                        )),
                    }
                }
            }
        };
        Ok(PciAddress {
            domain: get("domain", 0xffff)? as u16,
            bus: get("bus", 0xff)? as u8,
            slot: get("slot", 0x1f)? as u8,
            function: get("function", 7)? as u8,
        })
    }

    fn nat(&mut self, n: Node, path: &str) -> R<Nat> {
        self.attrs(n, path, &["ipv6"])?;
        let mut nat = Nat {
            ipv6: self.yes_no(n, path, "ipv6")?.filter(|v| *v),
            ..Default::default()
        };
        let kids = self.children(n, path, &["address", "port"])?;
        if let Some((c, cp)) = self.once(&kids, "address", path)? {
            self.attrs(c, &cp, &["start", "end"])?;
            self.req(c, &cp, "start")?;
            self.req(c, &cp, "end")?;
            let start = self.ipv4(c, &cp, "start")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let end = self.ipv4(c, &cp, "end")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
            nat.address = Some((start, end));
        }
        if let Some((c, cp)) = self.once(&kids, "port", path)? {
            self.attrs(c, &cp, &["start", "end"])?;
            self.req(c, &cp, "start")?;
            self.req(c, &cp, "end")?;
            let start: u16 = self.num(c, &cp, "start")?.unwrap_or(0);
            let end: u16 = self.num(c, &cp, "end")?.unwrap_or(0);
            nat.port = Some((start, end));
        }
        Ok(nat)
    }

    pub(super) fn bridge(&mut self, n: Node, path: &str) -> R<Bridge> {
        self.attrs(
            n,
            path,
            &["name", "stp", "delay", "macTableManager", "zone"],
        )?;
        self.children(n, path, &[])?;
        let stp = match n.attribute("stp") {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(v) => {
                return Err(self.err(
                    n,
                    path,
                    format!("invalid stp='{v}', expected 'on' or 'off'"),
                ));
            }
        };
        let mtm = match n.attribute("macTableManager") {
            None => None,
            Some("kernel") => Some(MacTableManager::Kernel),
            Some("libvirt") => Some(MacTableManager::Libvirt),
            Some(v) => {
                return Err(self.err(n, path, format!("invalid macTableManager setting '{v}'")));
            }
        };
        Ok(Bridge {
            name: Self::string(n, "name"),
            stp,
            delay: self.num(n, path, "delay")?,
            mac_table_manager: mtm,
            zone: Self::string(n, "zone"),
        })
    }

    /// `None` for a bare `<virtualport/>`, which libvirt's formatter drops.
    pub(super) fn virtualport(&mut self, n: Node, path: &str) -> R<Option<VirtualPort>> {
        self.attrs(n, path, &["type"])?;
        let vp_type = Self::string(n, "type");
        if let Some(t) = &vp_type
            && !matches!(
                t.as_str(),
                "openvswitch" | "802.1Qbg" | "802.1Qbh" | "midonet"
            )
        {
            return Err(self.err(n, path, format!("unknown virtualport type '{t}'")));
        }
        let mut vp = VirtualPort {
            vp_type,
            ..Default::default()
        };
        let kids = self.children(n, path, &["parameters"])?;
        if let Some((c, cp)) = self.once(&kids, "parameters", path)? {
            let cp = cp.as_str();
            self.attrs(
                c,
                cp,
                &[
                    "managerid",
                    "typeid",
                    "typeidversion",
                    "instanceid",
                    "interfaceid",
                    "profileid",
                ],
            )?;
            self.children(c, cp, &[])?;
            vp.managerid = self.num(c, cp, "managerid")?;
            vp.typeid = self.num(c, cp, "typeid")?;
            vp.typeidversion = self.num(c, cp, "typeidversion")?;
            let uuid_attr = |a: &str| -> R<Option<Uuid>> {
                match c.attribute(a) {
                    None => Ok(None),
                    Some(v) => Uuid::parse_str(v)
                        .map(Some)
                        .map_err(|_| self.err(c, cp, format!("invalid {a} '{v}'"))),
                }
            };
            vp.instanceid = uuid_attr("instanceid")?;
            vp.interfaceid = uuid_attr("interfaceid")?;
            vp.profileid = Self::string(c, "profileid");
            if vp.typeid.is_some_and(|t| t > 0xff_ffff) {
                return Err(self.err(c, cp, "typeid must fit in 24 bits"));
            }
            // Each parameter belongs to some types only; libvirt would silently drop the rest.
            let t = vp.vp_type.as_deref();
            let allowed = |types: &[&str]| t.is_none_or(|t| types.contains(&t));
            let checks: [(&str, bool, &[&str]); 6] = [
                ("managerid", vp.managerid.is_some(), &["802.1Qbg"]),
                ("typeid", vp.typeid.is_some(), &["802.1Qbg"]),
                ("typeidversion", vp.typeidversion.is_some(), &["802.1Qbg"]),
                ("instanceid", vp.instanceid.is_some(), &["802.1Qbg"]),
                (
                    "interfaceid",
                    vp.interfaceid.is_some(),
                    &["openvswitch", "midonet"],
                ),
                (
                    "profileid",
                    vp.profileid.is_some(),
                    &["openvswitch", "802.1Qbh"],
                ),
            ];
            for (name, present, types) in checks {
                if present && !allowed(types) {
                    return Err(self.err(
                        c,
                        cp,
                        format!(
                            "parameter '{name}' is not allowed for virtualport type '{}'",
                            t.unwrap_or("")
                        ),
                    ));
                }
            }
        }
        Ok((vp.vp_type.is_some() || vp.has_parameters()).then_some(vp))
    }

    /// Parse a lone `<interface dev=…/>` for net-update.
    pub(crate) fn forward_interface(&mut self, n: Node, path: &str) -> R<ForwardInterface> {
        self.attrs(n, path, &["dev", "connections"])?;
        self.children(n, path, &[])?;
        Ok(ForwardInterface {
            dev: self.req(n, path, "dev")?.to_string(),
            connections: self.num(n, path, "connections")?.filter(|v| *v > 0),
        })
    }
}
