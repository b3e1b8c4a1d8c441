//! Model -> libvirt's canonical XML (`virNetworkDefFormatBuf`): single quotes, 2-space indent,
//! fixed element and attribute order.

use std::fmt::Write;

use crate::DNSMASQ_NS;
use crate::types::*;

/// libvirt's virBufferEscapeString: the five XML specials, and drop other control characters.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            '\n' | '\t' | '\r' => o.push(c),
            c if (c as u32) < 0x20 => {}
            c => o.push(c),
        }
    }
    o
}

fn yn(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

struct Buf {
    out: String,
    indent: usize,
}

impl Buf {
    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push(' ');
        }
        self.out.push_str(s);
        self.out.push('\n');
    }
    fn push(&mut self) {
        self.indent += 2;
    }
    fn pop(&mut self) {
        self.indent -= 2;
    }
}

pub(crate) fn network(n: &Network) -> String {
    let mut b = Buf {
        out: String::new(),
        indent: 0,
    };
    let mut head = String::from("<network");
    if let Some(c) = n.connections.filter(|c| *c > 0) {
        let _ = write!(head, " connections='{c}'");
    }
    if n.ipv6 == Some(true) {
        head.push_str(" ipv6='yes'");
    }
    if let Some(t) = n.trust_guest_rx_filters {
        let _ = write!(head, " trustGuestRxFilters='{}'", yn(t));
    }
    if !n.dnsmasq_options.is_empty() {
        let _ = write!(head, " xmlns:dnsmasq='{DNSMASQ_NS}'");
    }
    head.push('>');
    b.line(&head);
    b.push();
    b.line(&format!("<name>{}</name>", esc(&n.name)));
    if let Some(u) = n.uuid {
        b.line(&format!("<uuid>{}</uuid>", u.hyphenated()));
    }
    if let Some(t) = &n.title {
        b.line(&format!("<title>{}</title>", esc(t)));
    }
    if let Some(d) = &n.description {
        b.line(&format!("<description>{}</description>", esc(d)));
    }
    if let Some(m) = &n.metadata {
        if m.is_empty() {
            b.line("<metadata/>");
        } else {
            b.line("<metadata>");
            for e in m {
                let mut s = String::new();
                e.write(&mut s, b.indent / 2 + 1);
                b.push();
                b.line(&s);
                b.pop();
            }
            b.line("</metadata>");
        }
    }
    // libvirt has no <forward> for isolated networks ("none" is not a valid mode on input).
    if let Some(f) = n
        .forward
        .as_ref()
        .filter(|f| f.mode != ForwardMode::Isolated)
    {
        forward(&mut b, f);
    }
    let mode = n.forward_mode();
    let br = n.bridge.clone().unwrap_or_default();
    if br.name.is_some() || br.zone.is_some() || br.mac_table_manager.is_some() || mode.is_l3() {
        let mut s = String::from("<bridge");
        if let Some(x) = &br.name {
            let _ = write!(s, " name='{}'", esc(x));
        }
        if let Some(z) = &br.zone {
            let _ = write!(s, " zone='{}'", esc(z));
        }
        if mode.is_l3() {
            let stp = if br.stp.unwrap_or(true) { "on" } else { "off" };
            let _ = write!(s, " stp='{stp}' delay='{}'", br.delay.unwrap_or(0));
        }
        if let Some(m) = br.mac_table_manager {
            let _ = write!(s, " macTableManager='{}'", m.as_str());
        }
        s.push_str("/>");
        b.line(&s);
    }
    if let Some(m) = n.mtu {
        b.line(&format!("<mtu size='{m}'/>"));
    }
    if let Some(m) = &n.mac {
        b.line(&format!("<mac address='{m}'/>"));
    }
    if let Some(d) = &n.domain {
        let mut s = format!("<domain name='{}'", esc(&d.name));
        if let Some(l) = d.local_only {
            let _ = write!(s, " localOnly='{}'", yn(l));
        }
        if let Some(r) = d.register {
            let _ = write!(s, " register='{}'", yn(r));
        }
        s.push_str("/>");
        b.line(&s);
    }
    if let Some(d) = &n.dns {
        dns(&mut b, d);
    }
    if let Some(v) = &n.vlan {
        vlan(&mut b, v);
    }
    if let Some(bw) = &n.bandwidth {
        bandwidth(&mut b, bw);
    }
    if let Some(p) = n.isolated_port {
        b.line(&format!("<port isolated='{}'/>", yn(p)));
    }
    for ip in &n.ips {
        ip_def(&mut b, ip);
    }
    for r in &n.routes {
        let mut s = String::from("<route");
        if let Some(f) = &r.family {
            let _ = write!(s, " family='{}'", esc(f));
        }
        let _ = write!(s, " address='{}'", r.address);
        if let Some(m) = r.netmask {
            let _ = write!(s, " netmask='{m}'");
        }
        if let Some(p) = r.prefix {
            let _ = write!(s, " prefix='{p}'");
        }
        let _ = write!(s, " gateway='{}'", r.gateway);
        if let Some(m) = r.metric.filter(|m| *m > 0) {
            let _ = write!(s, " metric='{m}'");
        }
        s.push_str("/>");
        b.line(&s);
    }
    if let Some(vp) = &n.virtualport {
        virtualport(&mut b, vp);
    }
    for pg in &n.portgroups {
        portgroup(&mut b, pg);
    }
    if !n.dnsmasq_options.is_empty() {
        b.line("<dnsmasq:options>");
        b.push();
        for o in &n.dnsmasq_options {
            b.line(&format!("<dnsmasq:option value='{}'/>", esc(o)));
        }
        b.pop();
        b.line("</dnsmasq:options>");
    }
    b.pop();
    b.line("</network>");
    b.out
}

fn forward(b: &mut Buf, f: &Forward) {
    let mut s = String::from("<forward");
    // libvirt prints the first pool interface as dev, unless the pool is a PF's.
    let dev = if f.pf.is_none() {
        f.interfaces
            .first()
            .map(|i| i.dev.as_str())
            .or(f.dev.as_deref())
    } else {
        None
    };
    if let Some(d) = dev {
        let _ = write!(s, " dev='{}'", esc(d));
    }
    let _ = write!(s, " mode='{}'", f.mode);
    if f.mode == ForwardMode::Hostdev {
        let _ = write!(s, " managed='{}'", yn(f.managed.unwrap_or(false)));
    }
    let nat = f
        .nat
        .as_ref()
        .filter(|n| n.ipv6 == Some(true) || n.address.is_some() || n.port.is_some());
    let has_ifs = !f.interfaces.is_empty() || (dev.is_some() && f.interfaces.is_empty());
    let short =
        !has_ifs && f.pf.is_none() && f.addresses.is_empty() && nat.is_none() && f.driver.is_none();
    if short {
        s.push_str("/>");
        b.line(&s);
        return;
    }
    s.push('>');
    b.line(&s);
    b.push();
    if let Some(d) = &f.driver {
        let mut s = String::from("<driver");
        if let Some(n) = &d.name {
            let _ = write!(s, " name='{}'", esc(n));
        }
        if let Some(m) = &d.model {
            let _ = write!(s, " model='{}'", esc(m));
        }
        s.push_str("/>");
        b.line(&s);
    }
    if let Some(n) = nat.filter(|_| f.mode == ForwardMode::Nat) {
        let mut s = String::from("<nat");
        if n.ipv6 == Some(true) {
            s.push_str(" ipv6='yes'");
        }
        if n.address.is_none() && n.port.is_none() {
            s.push_str("/>");
            b.line(&s);
        } else {
            s.push('>');
            b.line(&s);
            b.push();
            if let Some((a, e)) = n.address {
                b.line(&format!("<address start='{a}' end='{e}'/>"));
            }
            if let Some((a, e)) = n.port {
                b.line(&format!("<port start='{a}' end='{e}'/>"));
            }
            b.pop();
            b.line("</nat>");
        }
    }
    if let Some(pf) = &f.pf {
        b.line(&format!("<pf dev='{}'/>", esc(pf)));
    }
    if f.interfaces.is_empty()
        && let Some(d) = dev
    {
        b.line(&format!("<interface dev='{}'/>", esc(d)));
    }
    for i in &f.interfaces {
        let mut s = format!("<interface dev='{}'", esc(&i.dev));
        if let Some(c) = i.connections.filter(|c| *c > 0) {
            let _ = write!(s, " connections='{c}'");
        }
        s.push_str("/>");
        b.line(&s);
    }
    for a in &f.addresses {
        b.line(&format!(
            "<address type='pci' domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>",
            a.domain, a.bus, a.slot, a.function
        ));
    }
    b.pop();
    b.line("</forward>");
}

fn dns(b: &mut Buf, d: &Dns) {
    let mut s = String::from("<dns");
    if let Some(e) = d.enable {
        let _ = write!(s, " enable='{}'", yn(e));
    }
    if let Some(f) = d.forward_plain_names {
        let _ = write!(s, " forwardPlainNames='{}'", yn(f));
    }
    if !d.has_content() {
        if d.enable.is_some() || d.forward_plain_names.is_some() {
            s.push_str("/>");
            b.line(&s);
        }
        return;
    }
    s.push('>');
    b.line(&s);
    b.push();
    for f in &d.forwarders {
        let mut s = String::from("<forwarder");
        if let Some(dom) = &f.domain {
            let _ = write!(s, " domain='{}'", esc(dom));
        }
        if let Some(a) = f.addr {
            let _ = write!(s, " addr='{a}'");
        }
        if let Some(p) = f.port.filter(|p| *p > 0) {
            let _ = write!(s, " port='{p}'");
        }
        s.push_str("/>");
        b.line(&s);
    }
    for t in &d.txts {
        b.line(&format!(
            "<txt name='{}' value='{}'/>",
            esc(&t.name),
            esc(&t.value)
        ));
    }
    for r in &d.srvs {
        let mut s = format!(
            "<srv service='{}' protocol='{}'",
            esc(&r.service),
            esc(&r.protocol)
        );
        if let Some(x) = &r.domain {
            let _ = write!(s, " domain='{}'", esc(x));
        }
        if let Some(x) = &r.target {
            let _ = write!(s, " target='{}'", esc(x));
        }
        // libvirt stores these as plain ints where 0 means "not given".
        if let Some(x) = r.port.filter(|x| *x > 0) {
            let _ = write!(s, " port='{x}'");
        }
        if let Some(x) = r.priority.filter(|x| *x > 0) {
            let _ = write!(s, " priority='{x}'");
        }
        if let Some(x) = r.weight.filter(|x| *x > 0) {
            let _ = write!(s, " weight='{x}'");
        }
        s.push_str("/>");
        b.line(&s);
    }
    for h in &d.hosts {
        match h.ip {
            Some(ip) => b.line(&format!("<host ip='{ip}'>")),
            None => b.line("<host>"),
        }
        b.push();
        for n in &h.hostnames {
            b.line(&format!("<hostname>{}</hostname>", esc(n)));
        }
        b.pop();
        b.line("</host>");
    }
    b.pop();
    b.line("</dns>");
}

fn vlan(b: &mut Buf, v: &Vlan) {
    let trunk = v.trunk == Some(true) || v.tags.len() > 1;
    b.line(if trunk {
        "<vlan trunk='yes'>"
    } else {
        "<vlan>"
    });
    b.push();
    for t in &v.tags {
        match t.native_mode {
            Some(m) => b.line(&format!("<tag id='{}' nativeMode='{}'/>", t.id, m.as_str())),
            None => b.line(&format!("<tag id='{}'/>", t.id)),
        }
    }
    b.pop();
    b.line("</vlan>");
}

fn bandwidth(b: &mut Buf, bw: &Bandwidth) {
    b.line("<bandwidth>");
    b.push();
    for (tag, r) in [("inbound", &bw.inbound), ("outbound", &bw.outbound)] {
        let Some(r) = r else { continue };
        let mut s = format!("<{tag}");
        for (name, v) in [
            ("average", r.average),
            ("peak", r.peak),
            ("floor", r.floor),
            ("burst", r.burst),
        ] {
            if let Some(v) = v.filter(|v| *v > 0) {
                let _ = write!(s, " {name}='{v}'");
            }
        }
        s.push_str("/>");
        b.line(&s);
    }
    b.pop();
    b.line("</bandwidth>");
}

fn lease_line(b: &mut Buf, l: &Lease) {
    if l.expiry == 0 {
        b.line("<lease expiry='0'/>");
    } else {
        let unit = l.unit.unwrap_or(LeaseUnit::Minutes);
        b.line(&format!(
            "<lease expiry='{}' unit='{}'/>",
            l.expiry,
            unit.as_str()
        ));
    }
}

fn ip_def(b: &mut Buf, ip: &IpDef) {
    let mut s = String::from("<ip");
    if let Some(f) = &ip.family {
        let _ = write!(s, " family='{}'", esc(f));
    }
    let _ = write!(s, " address='{}'", ip.address);
    if let Some(m) = ip.netmask {
        let _ = write!(s, " netmask='{m}'");
    }
    if let Some(p) = ip.prefix.filter(|p| *p > 0) {
        let _ = write!(s, " prefix='{p}'");
    }
    if let Some(l) = ip.local_ptr {
        let _ = write!(s, " localPtr='{}'", yn(l));
    }
    s.push('>');
    b.line(&s);
    b.push();
    if let Some(t) = &ip.tftp_root {
        b.line(&format!("<tftp root='{}'/>", esc(t)));
    }
    if let Some(d) = ip.dhcp.as_ref().filter(|d| !d.is_empty()) {
        b.line("<dhcp>");
        b.push();
        for r in &d.ranges {
            let head = format!("<range start='{}' end='{}'", r.start, r.end);
            match &r.lease {
                None => b.line(&format!("{head}/>")),
                Some(l) => {
                    b.line(&format!("{head}>"));
                    b.push();
                    lease_line(b, l);
                    b.pop();
                    b.line("</range>");
                }
            }
        }
        for h in &d.hosts {
            let mut s = String::from("<host");
            if let Some(m) = h.mac {
                let _ = write!(s, " mac='{m}'");
            }
            if let Some(x) = &h.id {
                let _ = write!(s, " id='{}'", esc(x));
            }
            if let Some(x) = &h.name {
                let _ = write!(s, " name='{}'", esc(x));
            }
            if let Some(x) = h.ip {
                let _ = write!(s, " ip='{x}'");
            }
            match &h.lease {
                None => b.line(&format!("{s}/>")),
                Some(l) => {
                    b.line(&format!("{s}>"));
                    b.push();
                    lease_line(b, l);
                    b.pop();
                    b.line("</host>");
                }
            }
        }
        if let Some(bp) = &d.bootp {
            let mut s = format!("<bootp file='{}'", esc(&bp.file));
            if let Some(x) = bp.server {
                let _ = write!(s, " server='{x}'");
            }
            s.push_str("/>");
            b.line(&s);
        }
        b.pop();
        b.line("</dhcp>");
    }
    b.pop();
    b.line("</ip>");
}

fn virtualport(b: &mut Buf, vp: &VirtualPort) {
    let t = vp.vp_type.as_deref();
    if !vp.has_parameters() {
        match t {
            Some(t) => b.line(&format!("<virtualport type='{}'/>", esc(t))),
            None => return,
        }
        return;
    }
    match t {
        Some(t) => b.line(&format!("<virtualport type='{}'>", esc(t))),
        None => b.line("<virtualport>"),
    }
    b.push();
    let mut s = String::from("<parameters");
    if let Some(x) = vp.managerid {
        let _ = write!(s, " managerid='{x}'");
    }
    if let Some(x) = vp.typeid {
        let _ = write!(s, " typeid='{x}'");
    }
    if let Some(x) = vp.typeidversion {
        let _ = write!(s, " typeidversion='{x}'");
    }
    if let Some(x) = vp.instanceid {
        let _ = write!(s, " instanceid='{}'", x.hyphenated());
    }
    if let Some(x) = vp.interfaceid {
        let _ = write!(s, " interfaceid='{}'", x.hyphenated());
    }
    if let Some(x) = &vp.profileid {
        let _ = write!(s, " profileid='{}'", esc(x));
    }
    s.push_str("/>");
    b.line(&s);
    b.pop();
    b.line("</virtualport>");
}

fn portgroup(b: &mut Buf, pg: &PortGroup) {
    let mut s = format!("<portgroup name='{}'", esc(&pg.name));
    if pg.is_default {
        s.push_str(" default='yes'");
    }
    if let Some(t) = pg.trust_guest_rx_filters {
        let _ = write!(s, " trustGuestRxFilters='{}'", yn(t));
    }
    let vp_shown = pg
        .virtualport
        .as_ref()
        .is_some_and(|v| v.vp_type.is_some() || v.has_parameters());
    if pg.vlan.is_none() && !vp_shown && pg.bandwidth.is_none() {
        s.push_str("/>");
        b.line(&s);
        return;
    }
    s.push('>');
    b.line(&s);
    b.push();
    if let Some(v) = &pg.vlan {
        vlan(b, v);
    }
    if let Some(vp) = &pg.virtualport {
        virtualport(b, vp);
    }
    if let Some(bw) = &pg.bandwidth {
        bandwidth(b, bw);
    }
    b.pop();
    b.line("</portgroup>");
}
