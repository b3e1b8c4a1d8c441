//! kvnet: the virsh net-* verbs against kvnetd (the code is in the library).

#![forbid(unsafe_code)]

fn main() {
    kvnet_cli::main()
}
