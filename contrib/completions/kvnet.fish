# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kvnet_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_kvnet_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kvnet_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kvnet_using_subcommand
    set -l cmd (__fish_kvnet_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kvnet -n "__fish_kvnet_needs_command" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kvnet -n "__fish_kvnet_needs_command" -s V -l version -d 'Print version'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-define" -d 'Define (but don\'t start) a persistent network from an XML file'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-create" -d 'Create and start a transient network from an XML file'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-undefine" -d 'Remove a network\'s persistent definition (a running network becomes transient)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-start" -d 'Start a defined, inactive network'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-destroy" -d 'Stop a network now (a transient one disappears)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-autostart" -d 'Start a network when kvnetd starts at boot'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-list" -d 'List networks (active ones unless --all or --inactive)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-info" -d 'Basic facts about a network'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-dumpxml" -d 'A network\'s XML: live if active, else its definition'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-dhcp-leases" -d 'The DHCPv4 and DHCPv6 leases a network\'s DHCP servers handed out'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-edit" -d 'Edit a network\'s definition in $VISUAL/$EDITOR and redefine it'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-uuid" -d 'A network\'s UUID'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-name" -d 'A network\'s name from its UUID'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-update" -d 'Change part of a network (a DHCP host or range, a DNS record...)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "port-create" -d 'Create a persistent TAP for a guest on an active network; prints the qemu arguments that use it'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "port-list" -d 'List a network\'s guest ports'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "port-delete" -d 'Detach and unregister a guest port (a TAP port-create made is deleted)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "iface-bridge" -d 'Make a host bridge from a NIC: BRIDGE takes IFACE\'s MAC, MTU, addresses and routes, IFACE becomes its port; everything is rolled back if a step fails or the host loses its default route'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "iface-unbridge" -d 'Undo iface-bridge: move the addresses and routes back onto the bridge\'s NIC and delete the bridge'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-forward-add" -d 'Forward host ports to a guest of a NAT network, from outside, from the host and from the network\'s other guests. A guest given by name or MAC is followed when its address changes. Kept in the network\'s definition (kvnet metadata)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-forward-remove" -d 'Remove the forward of these host ports'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-forward-list" -d 'A network\'s port forwards and where each goes now'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "doctor" -d 'Check the host for what stops guest traffic (other firewalls\' drops, br_netfilter, forwarding, rp_filter, other DHCP/DNS servers, MTUs, kernel modules, and FRR\'s EVPN sessions and VNIs when the host is in a fabric), naming the culprit and the fix. Exits with 2 when a problem is found'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-event" -d 'Print kvnetd\'s events as they happen (virsh net-event): lifecycle, and kvnet\'s lease, port and forward events. Exits after the first unless --loop'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-stats" -d 'A network\'s DHCP and DNS counters, leases with the time they have left, and its ports\' traffic (what kvnetd --metrics gives a scraper)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "net-validate" -d 'Check a network XML file offline (no daemon needed)'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "fabric-config" -d 'Print this host\'s FRR configuration (frr.conf) for the EVPN fabric that networks spanning hosts use, from the fabric file alone (no daemon needed); on stderr, how to load it'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c kvnet -n "__fish_kvnet_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-define" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-define" -l validate -d 'Validate the XML (kvnet always does; kept for virsh compatibility)'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-define" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-create" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-create" -l validate
complete -c kvnet -n "__fish_kvnet_using_subcommand net-create" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-undefine" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-undefine" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-start" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-start" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-destroy" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-destroy" -l wait -d 'Also wait until the kernel has deleted the bridge and the rules (tens of milliseconds after traffic has stopped)'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-destroy" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-autostart" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-autostart" -l disable
complete -c kvnet -n "__fish_kvnet_using_subcommand net-autostart" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l all
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l inactive
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l autostart
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l no-autostart
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l persistent
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l transient
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l name -d 'Only names, one per line'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l uuid -d 'Only UUIDs, one per line'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l title -d 'Add a Title column'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-list" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-info" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-info" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-info" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dumpxml" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dumpxml" -l inactive -d 'The definition used at the next start'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dumpxml" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dumpxml" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dhcp-leases" -l mac -d 'Only the leases of this MAC address' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dhcp-leases" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dhcp-leases" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-dhcp-leases" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-edit" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-edit" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-uuid" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-uuid" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-uuid" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-name" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-name" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-name" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-update" -l parent-index -d 'Which <ip> element (0-based) for ip-dhcp-* sections' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-update" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-update" -l live -d 'Change the running network'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-update" -l config -d 'Change the persistent definition'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-update" -l current -d 'The running network if active, else the definition (the default)'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-update" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l ifname -d 'TAP name (default: the lowest free vnetN)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l mac -d 'Guest MAC address (default: a random unused 52:54:00:xx:xx:xx)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l owner -d 'User (name or uid) allowed to open the TAP, e.g. the one qemu runs as' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l group -d 'Group (name or gid) allowed to open the TAP' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l queues -d 'Queues of a multi-queue TAP' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l isolated -d 'Isolate the port from the network\'s other isolated ports (it still reaches the host and the uplink); default: the network\'s `<port isolated>`' -r -f -a "yes\t''
no\t''"
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l filter -d 'Traffic filter: `clean-traffic` lets the guest send only from its MAC and addresses, never as a DHCP server or router; default: the network\'s `<kvnet:filterref>`' -r -f -a "clean-traffic\t''
none\t''"
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l ip -d 'An address the guest may send from besides its DHCP leases and static hosts (repeat for more)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l portgroup -d 'Take the bandwidth of this `<portgroup>` of the network (default: its `default=\'yes\'` portgroup, if any)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l inbound -d 'Shape traffic to the guest: average, peak (kB/s), burst (kB), floor (kB/s, guaranteed under the network\'s inbound average), e.g. `1000,2000,64`' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l outbound -d 'Shape traffic from the guest: average, peak (kB/s), burst (kB)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand port-create" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand port-list" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand port-list" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand port-list" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand port-delete" -l network -d 'The port\'s network (default: whichever has it)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand port-delete" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand port-delete" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-bridge" -l delay -d 'Forward delay in seconds' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-bridge" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-bridge" -l no-stp -d 'Turn off STP on the bridge'
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-bridge" -l no-start -d 'Leave the bridge down (refused when IFACE has routes to move)'
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-bridge" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-unbridge" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand iface-unbridge" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-add" -l proto -d 'tcp or udp' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-add" -l port -d 'Host port or range (P or P-Q)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-add" -l address -d 'Only this host address (default: every address of the host)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-add" -l to -d 'The guest: NAME, MAC or ADDRESS, then optionally :PORT or :PORT-PORT (default: the host ports); an IPv6 address with ports as [ADDRESS]:PORT' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-add" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-add" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-remove" -l proto -d 'tcp or udp' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-remove" -l port -d 'Host port or range (P or P-Q)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-remove" -l address -d 'Only this host address (default: every address of the host)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-remove" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-remove" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-list" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-list" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-forward-list" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand doctor" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand doctor" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -l event -d 'Only these kinds: lifecycle, lease, port, forward (repeatable)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -l timeout -d 'Stop after this many seconds' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -l loop -d 'Keep printing events (default: exit after the first)'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -l timestamp -d 'Prefix each event with its local time'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -l json -d 'One JSON object a line'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-event" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-stats" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-stats" -l json -d 'Print JSON instead of text'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-stats" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-validate" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand net-validate" -l canonical -d 'Print the canonical XML, as libvirt formats it'
complete -c kvnet -n "__fish_kvnet_using_subcommand net-validate" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand fabric-config" -l fabric -d 'The fabric file' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand fabric-config" -l host -d 'The host to configure (default: the host whose VTEP is an address of this machine)' -r
complete -c kvnet -n "__fish_kvnet_using_subcommand fabric-config" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand fabric-config" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand completions" -l socket -d 'kvnetd API socket' -r -F
complete -c kvnet -n "__fish_kvnet_using_subcommand completions" -s h -l help -d 'Print help'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-define" -d 'Define (but don\'t start) a persistent network from an XML file'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-create" -d 'Create and start a transient network from an XML file'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-undefine" -d 'Remove a network\'s persistent definition (a running network becomes transient)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-start" -d 'Start a defined, inactive network'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-destroy" -d 'Stop a network now (a transient one disappears)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-autostart" -d 'Start a network when kvnetd starts at boot'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-list" -d 'List networks (active ones unless --all or --inactive)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-info" -d 'Basic facts about a network'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-dumpxml" -d 'A network\'s XML: live if active, else its definition'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-dhcp-leases" -d 'The DHCPv4 and DHCPv6 leases a network\'s DHCP servers handed out'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-edit" -d 'Edit a network\'s definition in $VISUAL/$EDITOR and redefine it'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-uuid" -d 'A network\'s UUID'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-name" -d 'A network\'s name from its UUID'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-update" -d 'Change part of a network (a DHCP host or range, a DNS record...)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "port-create" -d 'Create a persistent TAP for a guest on an active network; prints the qemu arguments that use it'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "port-list" -d 'List a network\'s guest ports'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "port-delete" -d 'Detach and unregister a guest port (a TAP port-create made is deleted)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "iface-bridge" -d 'Make a host bridge from a NIC: BRIDGE takes IFACE\'s MAC, MTU, addresses and routes, IFACE becomes its port; everything is rolled back if a step fails or the host loses its default route'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "iface-unbridge" -d 'Undo iface-bridge: move the addresses and routes back onto the bridge\'s NIC and delete the bridge'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-forward-add" -d 'Forward host ports to a guest of a NAT network, from outside, from the host and from the network\'s other guests. A guest given by name or MAC is followed when its address changes. Kept in the network\'s definition (kvnet metadata)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-forward-remove" -d 'Remove the forward of these host ports'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-forward-list" -d 'A network\'s port forwards and where each goes now'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "doctor" -d 'Check the host for what stops guest traffic (other firewalls\' drops, br_netfilter, forwarding, rp_filter, other DHCP/DNS servers, MTUs, kernel modules, and FRR\'s EVPN sessions and VNIs when the host is in a fabric), naming the culprit and the fix. Exits with 2 when a problem is found'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-event" -d 'Print kvnetd\'s events as they happen (virsh net-event): lifecycle, and kvnet\'s lease, port and forward events. Exits after the first unless --loop'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-stats" -d 'A network\'s DHCP and DNS counters, leases with the time they have left, and its ports\' traffic (what kvnetd --metrics gives a scraper)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "net-validate" -d 'Check a network XML file offline (no daemon needed)'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "fabric-config" -d 'Print this host\'s FRR configuration (frr.conf) for the EVPN fabric that networks spanning hosts use, from the fabric file alone (no daemon needed); on stderr, how to load it'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "completions" -d 'Print shell completions'
complete -c kvnet -n "__fish_kvnet_using_subcommand help; and not __fish_seen_subcommand_from net-define net-create net-undefine net-start net-destroy net-autostart net-list net-info net-dumpxml net-dhcp-leases net-edit net-uuid net-name net-update port-create port-list port-delete iface-bridge iface-unbridge net-forward-add net-forward-remove net-forward-list doctor net-event net-stats net-validate fabric-config completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
