//! nft script text: the [`Display`](fmt::Display) forms of a plan's rules
//! and elements, and the four scripts the daemon feeds to `nft -f -`, each one
//! atomic transaction.

use std::fmt::{self, Write as _};

use ipnet::IpNet;

use crate::model::{FwForward, FwNetwork, check_table};
use crate::plan::{
    Action, Chain, Dir, Element, Field, Group, Match, Plan, Rule, forward_delta, plan,
};
use crate::schema::{BASE_CHAINS, DEFAULT_TABLE, REJ4, REJ6, SETS, SetDef};

/// Renders scripts for one table name; a thin wrapper over the free functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
}

impl Default for Ruleset {
    fn default() -> Self {
        Ruleset {
            table: DEFAULT_TABLE.to_string(),
        }
    }
}

impl Ruleset {
    pub fn full(&self, nets: &[FwNetwork]) -> String {
        render_full(&self.table, nets)
    }
    pub fn add(&self, net: &FwNetwork) -> String {
        render_add(&self.table, net)
    }
    pub fn remove(&self, net: &FwNetwork) -> String {
        render_remove(&self.table, net)
    }
}

/// An `nft -f` script that atomically replaces the whole table with the
/// state for `nets` (creating it if missing). With no networks it just
/// deletes the table, so a host without kvnet networks carries no hooks and
/// loads no conntrack/NAT for kvnet.
///
/// # Panics
/// If `table` or a network fails [`validate_table`](crate::validate_table)/[`FwNetwork::validate`];
/// call [`validate_all`](crate::validate_all) first to also catch duplicate bridges and
/// overlapping NAT subnets, which nft would refuse.
pub fn render_full(table: &str, nets: &[FwNetwork]) -> String {
    render_table(table, nets, true)
}

/// [`render_full`] as two scripts to apply one after the other, for replacing a table
/// under live traffic: the first without the reject sets' elements, the second adding
/// them. In one transaction the kernel makes the new rules and the hash sets' elements
/// live before the concatenated-interval (pipapo) sets' ones (their new match data is
/// swapped in after the generation flips), so a guest's packet could meet its bridge in
/// rej4 before its subnet in src4 and be rejected. Split, the moment in between lets
/// such packets through (as while the table is missing), never rejects them.
pub fn render_rebuild(table: &str, nets: &[FwNetwork]) -> [String; 2] {
    let mut rejects = String::new();
    for set in [&REJ4, &REJ6] {
        let elems = elements_of(&nets.iter().map(plan).collect::<Vec<_>>(), set);
        if !elems.is_empty() {
            let _ = writeln!(
                rejects,
                "add element inet {table} {} {{ {} }}",
                set.name,
                elems.join(", ")
            );
        }
    }
    [render_table(table, nets, false), rejects]
}

/// The elements `plans` put in `set`, as nft writes them.
fn elements_of(plans: &[Plan], set: &SetDef) -> Vec<String> {
    plans
        .iter()
        .flat_map(|p| &p.groups)
        .filter(|g| g.set.name == set.name)
        .flat_map(|g| &g.elements)
        .map(Element::to_string)
        .collect()
}

fn render_table(table: &str, nets: &[FwNetwork], with_rejects: bool) -> String {
    check_table(table);
    let plans: Vec<Plan> = nets.iter().map(plan).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# kvnet firewall: replace table inet {table} ({} networks)",
        nets.len()
    );
    // Creating the table first makes the delete succeed when it is missing.
    let _ = writeln!(s, "table inet {table} {{}}");
    let _ = writeln!(s, "delete table inet {table}");
    if plans.is_empty() {
        return s;
    }
    let _ = writeln!(s, "table inet {table} {{");
    for set in SETS {
        let kind = if set.is_map() { "map" } else { "set" };
        let _ = writeln!(s, "\t{kind} {} {{", set.name);
        let _ = writeln!(s, "\t\ttype {}{}", set.ty, set.data_decl());
        if set.interval {
            let _ = writeln!(s, "\t\tflags interval");
        }
        if set.counted {
            let _ = writeln!(s, "\t\tcounter");
        }
        let reject = set.name == REJ4.name || set.name == REJ6.name;
        let elems = elements_of(&plans, set);
        if !elems.is_empty() && (with_rejects || !reject) {
            let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(",\n\t\t\t     "));
        }
        let _ = writeln!(s, "\t}}\n");
    }
    for base in &BASE_CHAINS {
        let _ = writeln!(s, "\tchain {} {{", base.name);
        let _ = writeln!(s, "\t\t{}", base.hook);
        for rule in base.rules {
            let _ = writeln!(s, "\t\t{rule}");
        }
        let _ = writeln!(s, "\t}}\n");
    }
    for p in &plans {
        if let Some(chain) = &p.chain {
            let _ = writeln!(s, "\t# {}", p.header);
            let _ = writeln!(s, "\tchain {} {{", chain.name);
            for rule in &chain.rules {
                let _ = writeln!(s, "\t\t{rule}");
            }
            let _ = writeln!(s, "\t}}\n");
        }
    }
    s.truncate(s.trim_end().len());
    s.push_str("\n}\n");
    s
}

/// Idempotent declarations of the table, the network's chain and the sets
/// (`add` of an identical object is a no-op). The chain comes before the
/// maps: nft 1.0.6 sends the elements of an interval map it creates along
/// with the map itself, so a jump target declared later is not found yet.
fn render_decls(s: &mut String, table: &str, p: &Plan) {
    let _ = writeln!(s, "add table inet {table}");
    if let Some(chain) = &p.chain {
        let _ = writeln!(s, "add chain inet {table} {}", chain.name);
    }
    for set in SETS {
        let kind = if set.is_map() { "map" } else { "set" };
        let _ = writeln!(
            s,
            "add {kind} inet {table} {} {{ {}; }}",
            set.name,
            set_decl(set)
        );
    }
}

fn add_chain(s: &mut String, table: &str, chain: &Chain, verb: &str) {
    let _ = writeln!(s, "{verb} chain inet {table} {}", chain.name);
    for rule in &chain.rules {
        let _ = writeln!(s, "add rule inet {table} {} {rule}", chain.name);
    }
}

fn add_group(s: &mut String, table: &str, g: &Group, verb: &str) {
    let _ = writeln!(
        s,
        "{verb} element inet {table} {} {{ {} }}",
        g.set.name,
        g.list()
    );
}

/// One atomic, idempotent transaction adding or replacing one network's
/// rules. Creates the table skeleton if needed (re-adding the fixed rules
/// of the base chains after flushing them) and adds the network's set
/// elements (and custom NAT chain): its size depends only on this network,
/// never on how many networks exist.
///
/// Elements the network no longer has are not found here: when a network's
/// subnets, services or mode change, render_remove the old definition first
/// (or use [`render_full`]).
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_add(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: add {}\n", p.header);
    render_decls(&mut s, table, &p);
    for base in &BASE_CHAINS {
        let _ = writeln!(
            s,
            "add chain inet {table} {} {{ {} }}",
            base.name, base.hook
        );
        let _ = writeln!(s, "flush chain inet {table} {}", base.name);
        for rule in base.rules {
            let _ = writeln!(s, "add rule inet {table} {} {rule}", base.name);
        }
    }
    if let Some(chain) = &p.chain {
        add_chain(&mut s, table, chain, "flush");
    }
    for g in &p.groups {
        add_group(&mut s, table, g, "add");
    }
    s
}

/// The fast path of a start: one atomic transaction made only of additions,
/// for a network that is not in a table whose skeleton (sets and base
/// chains, as [`render_add`] or [`render_full`] leave it) exists. For a
/// plain network these are set elements only, so the kernel has no chain to
/// validate, however many networks there are; a custom-NAT network also
/// creates its chain.
///
/// Why it exists: the kernel waits for an RCU grace period (15–30 ms here)
/// in every nftables transaction that deletes or replaces anything, a flush
/// included; [`render_add`] flushes to be idempotent, this script never does.
/// The `cross` element is created with `create`, which fails if the network
/// is already there, so a wrong assumption aborts the whole transaction and
/// changes nothing: the caller then falls back to [`render_add`].
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_add_new(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: add new {}\n", p.header);
    let (first, rest) = p.groups.split_first().expect("cross element");
    add_group(&mut s, table, first, "create");
    if let Some(chain) = &p.chain {
        add_chain(&mut s, table, chain, "create");
    }
    for g in rest {
        add_group(&mut s, table, g, "add");
    }
    s
}

/// One atomic, idempotent transaction removing exactly this network's set
/// elements and custom NAT chain. Each object is first added (a no-op if
/// present) so that deleting it cannot fail when it is already gone. Must be
/// given the definition that was applied (it names the elements). If the
/// table is missing this leaves an empty one with the sets but no hooks.
///
/// # Panics
/// If `table` or `net` fails validation.
pub fn render_remove(table: &str, net: &FwNetwork) -> String {
    check_table(table);
    let p = plan(net);
    let mut s = format!("# kvnet firewall: remove {}\n", p.header);
    render_decls(&mut s, table, &p);
    // Elements go first: a chain cannot be deleted while a map jumps to it.
    for g in &p.groups {
        add_group(&mut s, table, g, "add");
        let _ = writeln!(
            s,
            "delete element inet {table} {} {{ {} }}",
            g.set.name,
            g.keys()
        );
    }
    if let Some(chain) = &p.chain {
        let _ = writeln!(s, "flush chain inet {table} {}", chain.name);
        let _ = writeln!(s, "delete chain inet {table} {}", chain.name);
    }
    s
}

/// The script form of [`encode_forwards`](crate::encode_forwards): `delete element`
/// lines for what `bridge`'s forwards lose, then `add element` lines for what they
/// gain, in one transaction; empty when nothing changes. Like the batch it is not
/// idempotent (a missing element fails it): for tests, and for reading.
///
/// # Panics
/// If `table` fails validation.
pub fn render_forwards(table: &str, bridge: &str, old: &[FwForward], new: &[FwForward]) -> String {
    check_table(table);
    let (gone, added) = forward_delta(bridge, old, new);
    let mut s = String::new();
    for g in &gone {
        let _ = writeln!(
            s,
            "delete element inet {table} {} {{ {} }}",
            g.set.name,
            g.keys()
        );
    }
    for g in &added {
        add_group(&mut s, table, g, "add");
    }
    s
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Oifname(name) => write!(f, "oifname {}", quote(name)),
            Match::Addr {
                dir,
                negate,
                net,
                host,
            } => {
                let dir = match dir {
                    Dir::Saddr => "saddr",
                    Dir::Daddr => "daddr",
                };
                let op = if *negate { " !=" } else { "" };
                write!(f, "{} {dir}{op} ", family(net))?;
                if *host {
                    write!(f, "{}", net.addr())
                } else {
                    write!(f, "{net}")
                }
            }
            Match::L4proto(p) => write!(f, "meta l4proto {}", p.name()),
        }
    }
}

struct Ports(Option<(u16, u16)>);

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => Ok(()),
            Some((a, b)) if a == b => write!(f, ":{a}"),
            Some((a, b)) => write!(f, ":{a}-{b}"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Return => f.write_str("return"),
            Action::Masquerade { ports: None } => f.write_str("masquerade"),
            Action::Masquerade { ports } => write!(f, "masquerade to {}", Ports(*ports)),
            Action::Snat {
                addrs: (a, b),
                ports,
            } if a == b => {
                write!(f, "snat ip to {a}{}", Ports(*ports))
            }
            Action::Snat {
                addrs: (a, b),
                ports,
            } => {
                write!(f, "snat ip to {a}-{b}{}", Ports(*ports))
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "counter {}", self.action)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Ifname(name) => f.write_str(&quote(name)),
            Field::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Field::Net(n) => write!(f, "{n}"),
            Field::Proto(p) => f.write_str(p.name()),
            Field::Port(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.key.iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{field}")?;
        }
        if let Some(chain) = &self.jump {
            return write!(f, " : jump {chain}");
        }
        for (i, field) in self.data.iter().enumerate() {
            f.write_str(if i == 0 { " : " } else { " . " })?;
            write!(f, "{field}")?;
        }
        Ok(())
    }
}

impl Group {
    fn list(&self) -> String {
        let elems: Vec<String> = self.elements.iter().map(|e| e.to_string()).collect();
        elems.join(", ")
    }

    /// The keys alone, for `delete element`.
    fn keys(&self) -> String {
        let elems: Vec<String> = self
            .elements
            .iter()
            .map(|e| {
                Element {
                    key: e.key.clone(),
                    jump: None,
                    data: Vec::new(),
                }
                .to_string()
            })
            .collect();
        elems.join(", ")
    }
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// The one-line declaration of a set, as `add set` takes it.
fn set_decl(set: &SetDef) -> String {
    let flags = if set.interval { "; flags interval" } else { "" };
    let counter = if set.counted { "; counter" } else { "" };
    format!("type {}{}{flags}{counter}", set.ty, set.data_decl())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_net as net;

    #[test]
    #[should_panic(expected = "invalid network")]
    fn render_panics_on_injection_attempt() {
        render_add("kvnet", &net("x\" accept"));
    }

    #[test]
    fn plain_network_adds_only_elements() {
        let s = render_add_new("kvnet", &net("virbr0"));
        for line in s.lines().skip(1) {
            assert!(
                line.starts_with("add element ") || line.starts_with("create element "),
                "{line}"
            );
        }
        let mut custom = net("virbr0");
        custom.nat_ports = Some((2000, 3000));
        let s = render_add_new("kvnet", &custom);
        assert!(s.contains("create chain inet kvnet nat_virbr0\n"));
        assert!(s.contains("nat4_custom { 192.168.122.0/24 : jump nat_virbr0 }"));
        assert!(!s.contains("nat4 {"));
    }

    #[test]
    fn snat_single_address_and_single_port() {
        let mut n = net("virbr0");
        n.nat_addresses = Some((
            "203.0.113.5".parse().unwrap(),
            "203.0.113.5".parse().unwrap(),
        ));
        n.nat_ports = Some((4000, 4000));
        let s = render_add("kvnet", &n);
        assert!(s.contains("counter snat ip to 203.0.113.5:4000\n"));
        assert!(s.contains("counter snat ip to 203.0.113.5\n"));
    }

    #[test]
    fn empty_full_just_deletes_the_table() {
        assert_eq!(
            render_full("kvnet", &[]),
            "# kvnet firewall: replace table inet kvnet (0 networks)\n\
             table inet kvnet {}\ndelete table inet kvnet\n"
        );
    }
}
