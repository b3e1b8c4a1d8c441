//! `dhcp-option`, `dhcp-option-force` and `dhcp-boot` from libvirt's `<dnsmasq:options>`:
//! which of them a client gets, with dnsmasq's rules (dnsmasq(8), `--dhcp-option` and
//! "the tag system").

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, OptionCode, UnknownOption};
use kvnet_model::{DhcpValue, DnsmasqOption, Network};

/// One `dhcp-option[-force]`, its data ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraOption {
    pub code: u8,
    pub data: Vec<u8>,
    /// Sent even when the client's parameter request list (55) does not name it.
    pub force: bool,
    /// Only for clients with (true) or without (false) a `<host>` entry: `tag:known`.
    pub known: Option<bool>,
}

/// One `dhcp-boot`: the BOOTP `file`, `sname` and `siaddr` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRule {
    pub file: String,
    pub server_name: Option<String>,
    pub next_server: Ipv4Addr,
    pub known: Option<bool>,
}

/// Options dnsmasq sends by default, which an empty `dhcp-option=N` turns off: netmask,
/// router, DNS server, hostname, domain name, broadcast.
const DEFAULTED: [u8; 6] = [1, 3, 6, 12, 15, 28];

/// The `dhcp-option`s, `dhcp-boot`s and `log-dhcp` of `net`, for the server at
/// `server_ip` (which 0.0.0.0 in an address list stands for, as in dnsmasq).
pub(crate) fn from_network(
    net: &Network,
    server_ip: Ipv4Addr,
) -> (Vec<ExtraOption>, Vec<BootRule>, bool) {
    let (mut opts, mut boots, mut log) = (Vec::new(), Vec::new(), false);
    for o in net.dnsmasq() {
        match o {
            DnsmasqOption::DhcpOption(o) => {
                let data = match o.value {
                    DhcpValue::Bytes(b) => b,
                    DhcpValue::Addrs(a) => a
                        .iter()
                        .map(|a| if a.is_unspecified() { server_ip } else { *a })
                        .flat_map(|a| a.octets())
                        .collect(),
                };
                opts.push(ExtraOption {
                    code: o.code,
                    data,
                    force: o.force,
                    known: o.known,
                });
            }
            DnsmasqOption::DhcpBoot(b) => boots.push(BootRule {
                file: b.file,
                server_name: b.server_name,
                next_server: b.server_addr.unwrap_or(server_ip),
                known: b.known,
            }),
            DnsmasqOption::LogDhcp => log = true,
            _ => {}
        }
    }
    (opts, boots, log)
}

/// The rule that applies to a client: one whose tag matches wins over an untagged one
/// (dnsmasq prefers tagged options), and among equals the last given, as a later line
/// of dnsmasq's configuration overrides an earlier one.
fn pick<'a, T>(
    rules: impl Iterator<Item = &'a T>,
    tag: impl Fn(&T) -> Option<bool>,
    known: bool,
) -> Option<&'a T>
where
    T: 'a,
{
    let mut best: Option<(&T, bool)> = None;
    for r in rules {
        match tag(r) {
            Some(k) if k != known => continue,
            t => {
                let tagged = t.is_some();
                if best.is_none_or(|(_, b)| tagged || !b) {
                    best = Some((r, tagged));
                }
            }
        }
    }
    best.map(|(r, _)| r)
}

/// Apply the extra options to a reply's `opts`. An extra option replaces kvnet's own of
/// the same code (the router, the DNS server…) for every client it applies to; it is
/// sent when forced, when the client asked for it, or when the client sent no request
/// list at all (then dnsmasq sends everything). An empty value of a defaulted option
/// means none is sent.
pub(crate) fn apply(
    opts: &mut Vec<DhcpOption>,
    extras: &[ExtraOption],
    known: bool,
    prl: Option<&[u8]>,
) {
    let mut codes: Vec<u8> = extras.iter().map(|x| x.code).collect();
    codes.sort_unstable();
    codes.dedup();
    for code in codes {
        let Some(x) = pick(extras.iter().filter(|x| x.code == code), |x| x.known, known) else {
            continue;
        };
        opts.retain(|o| u8::from(OptionCode::from(o)) != code);
        let asked = x.force || prl.is_none_or(|p| p.contains(&code));
        if asked && !(x.data.is_empty() && DEFAULTED.contains(&code)) {
            opts.push(DhcpOption::Unknown(UnknownOption::new(
                code.into(),
                x.data.clone(),
            )));
        }
    }
}

/// The `dhcp-boot` that applies to a client, if any.
pub(crate) fn boot(rules: &[BootRule], known: bool) -> Option<&BootRule> {
    pick(rules.iter(), |b| b.known, known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(code: u8, data: &[u8], force: bool, known: Option<bool>) -> ExtraOption {
        ExtraOption {
            code,
            data: data.to_vec(),
            force,
            known,
        }
    }

    fn codes(opts: &[DhcpOption]) -> Vec<(u8, Vec<u8>)> {
        opts.iter()
            .map(|o| match o {
                DhcpOption::Unknown(u) => (u8::from(u.code()), u.data().to_vec()),
                o => (u8::from(OptionCode::from(o)), vec![]),
            })
            .collect()
    }

    fn defaults() -> Vec<DhcpOption> {
        vec![
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 1)]),
            DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 0, 0, 1)]),
        ]
    }

    #[test]
    fn asked_forced_or_no_request_list() {
        let extras = [x(42, &[10, 0, 0, 5], false, None), x(252, b"w", true, None)];
        // Asked for 42: both. Not asked: only the forced one. No list: both.
        let mut o = Vec::new();
        apply(&mut o, &extras, false, Some(&[1, 42]));
        assert_eq!(codes(&o), [(42, vec![10, 0, 0, 5]), (252, b"w".to_vec())]);
        let mut o = Vec::new();
        apply(&mut o, &extras, false, Some(&[1, 3]));
        assert_eq!(codes(&o), [(252, b"w".to_vec())]);
        let mut o = Vec::new();
        apply(&mut o, &extras, false, None);
        assert_eq!(codes(&o).len(), 2);
    }

    #[test]
    fn overrides_and_suppression_of_defaults() {
        // 3 with a value replaces the router; 6 empty sends no DNS server.
        let extras = [x(3, &[10, 0, 0, 254], false, None), x(6, &[], false, None)];
        let mut o = defaults();
        apply(&mut o, &extras, false, Some(&[1, 3, 6]));
        assert_eq!(codes(&o), [(1, vec![]), (3, vec![10, 0, 0, 254])]);
        // The override replaces kvnet's router even for a client that did not ask.
        let mut o = defaults();
        apply(&mut o, &extras, false, Some(&[1]));
        assert_eq!(codes(&o), [(1, vec![])]);
        // An empty value of an option without a default is sent empty... by dhcproto
        // not at all; it is at least not a default's replacement.
        let mut o = defaults();
        apply(&mut o, &[x(80, &[], true, None)], false, None);
        assert_eq!(codes(&o).len(), 4);
    }

    #[test]
    fn tags_known_and_precedence() {
        let extras = [
            x(42, &[1, 1, 1, 1], false, None),
            x(42, &[2, 2, 2, 2], false, Some(true)),
            x(42, &[3, 3, 3, 3], false, None),
            x(66, b"unknown", false, Some(false)),
        ];
        // A known client: the tagged 42 wins over both untagged ones; no 66.
        let mut o = Vec::new();
        apply(&mut o, &extras, true, None);
        assert_eq!(codes(&o), [(42, vec![2, 2, 2, 2])]);
        // An unknown client: the last untagged 42; and 66.
        let mut o = Vec::new();
        apply(&mut o, &extras, false, None);
        assert_eq!(
            codes(&o),
            [(42, vec![3, 3, 3, 3]), (66, b"unknown".to_vec())]
        );
        // A known client with only a !known rule for the code keeps kvnet's default.
        let mut o = defaults();
        apply(
            &mut o,
            &[x(3, &[9, 9, 9, 9], false, Some(false))],
            true,
            None,
        );
        assert_eq!(codes(&o).len(), 3);
        assert!(matches!(o[1], DhcpOption::Router(_)));
    }

    #[test]
    fn boot_rules() {
        let b = |file: &str, known| BootRule {
            file: file.into(),
            server_name: None,
            next_server: Ipv4Addr::new(10, 0, 0, 1),
            known,
        };
        let rules = [b("a", None), b("b", Some(true)), b("c", None)];
        assert_eq!(boot(&rules, true).unwrap().file, "b");
        assert_eq!(boot(&rules, false).unwrap().file, "c");
        assert!(boot(&[b("x", Some(false))], true).is_none());
        assert!(boot(&[], true).is_none());
    }

    #[test]
    fn translation_from_the_network() {
        let net = Network::from_xml(
            "<network><name>n</name><bridge name='br7'/>\
             <ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/></dhcp></ip>\
             <dnsmasq:options xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
             <dnsmasq:option value='dhcp-option=option:ntp-server,0.0.0.0,10.0.0.7'/>\
             <dnsmasq:option value='dhcp-option-force=tag:br7,tag:!known,252,&quot;http://wpad/&quot;'/>\
             <dnsmasq:option value='dhcp-boot=pxelinux.0,bootsrv'/>\
             <dnsmasq:option value='log-dhcp'/>\
             </dnsmasq:options></network>",
        )
        .unwrap();
        let (opts, boots, log) = from_network(&net, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            opts,
            [
                x(42, &[10, 0, 0, 1, 10, 0, 0, 7], false, None),
                x(252, b"http://wpad/", true, Some(false)),
            ]
        );
        assert_eq!(
            boots,
            [BootRule {
                file: "pxelinux.0".into(),
                server_name: Some("bootsrv".into()),
                next_server: Ipv4Addr::new(10, 0, 0, 1),
                known: None
            }]
        );
        assert!(log);
    }
}
