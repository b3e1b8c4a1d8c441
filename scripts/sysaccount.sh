# Sourced by scripts/deps.sh and bench/dhcp.sh. Some packages' postinst scripts add a
# system group or user. Where /etc/passwd and /etc/group are bind mounts (containers),
# groupadd/useradd cannot replace those files and the install fails; the postinst scripts
# accept an account that already exists, so these add it first, in place if need be.

free_id() { # database: the highest free id below 1000 in group or passwd
  local id=999
  while getent "$1" "$id" >/dev/null; do id=$((id - 1)); done
  echo "$id"
}

ensure_group() { # name
  getent group "$1" >/dev/null && return 0
  groupadd -r "$1" 2>/dev/null && return 0
  echo "$1:x:$(free_id group):" >>/etc/group
}

ensure_user() { # name group home gecos
  getent passwd "$1" >/dev/null && return 0
  useradd -r -g "$2" -d "$3" -M -s /bin/false -c "$4" "$1" 2>/dev/null && return 0
  echo "$1:x:$(free_id passwd):$(getent group "$2" | cut -d: -f3):$4:$3:/bin/false" >>/etc/passwd
}
