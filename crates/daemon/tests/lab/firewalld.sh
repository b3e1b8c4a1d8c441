# firewalld with a private system bus, in the network namespace it is run in.
# usage: ip netns exec NS sh firewalld.sh DIR
# The bus listens on DIR/bus (DBUS_SYSTEM_BUS_ADDRESS=unix:path=DIR/bus reaches it
# from anywhere); firewalld's configuration is a copy of /etc/firewalld in DIR/etc,
# bind-mounted over /etc/firewalld in a mount namespace of its own, with a tmpfs on
# /run (its /run/firewalld and iptables' lock): nothing of the machine's is touched. The bus daemon's pid is in
# DIR/dbus.pid; this process becomes firewalld.
set -e
dir=$1
mkdir -p "$dir/etc"
cp -a /etc/firewalld/. "$dir/etc/"
sed -e "s|<listen>.*</listen>|<listen>unix:path=$dir/bus</listen>|" \
    -e '/<user>/d' -e '/<pidfile>/d' \
    -e 's|<includedir>system.d</includedir>|<includedir>/usr/share/dbus-1/system.d</includedir>|' \
    -e 's|<include ignore_missing="yes">system-local.conf</include>||' \
    /usr/share/dbus-1/system.conf > "$dir/bus.conf"
exec unshare --mount --propagation private sh -c "
  set -e
  mount --bind '$dir/etc' /etc/firewalld
  mount -t tmpfs kvnet-test /run
  mkdir /run/firewalld
  dbus-daemon --config-file='$dir/bus.conf' --fork --nopidfile --print-pid > '$dir/dbus.pid'
  export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/bus
  exec firewalld --nofork --nopid --log-target console
"
