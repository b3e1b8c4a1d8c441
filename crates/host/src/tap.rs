//! TAP devices for guests (to come). The kernel refuses to create tun/tap over
//! rtnetlink, so this will use `TUNSETIFF`/`TUNSETPERSIST` on `/dev/net/tun`
//! and then [`crate::Netlink`] for master, MTU and up.
