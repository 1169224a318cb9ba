# The demo's estate, shared by scripts/demo and bench/kill-trials (sourced after scripts/env.sh,
# with the lab up, OS_CLIENT_CONFIG_FILE and LAB set, and osm() defined).
#   estate_seed DATA     src seeded (dst and src emptied of an earlier run's demo-*), a fresh
#                        data dir with the conversion key and the vars file; sets vars=(…)
#   estate_hosts DATA    the conversion hosts' sshds up and the hosts deployed
#   estate_down          conversion hosts deleted, their sshds stopped, src emptied
estate() { /usr/bin/python3 scripts/demo-estate.py "$@"; }

estate_seed() {
  local data=$1
  estate clean src
  estate clean dst
  rm -rf "$data"
  mkdir -p "$data/conversion"
  chmod 700 "$data" "$data/conversion"
  ssh-keygen -q -t ed25519 -N "" -f "$data/conversion/ssh.key" -C os-migrate-demo </dev/null
  {
    echo "os_migrate_data_dir: $data"
    echo "os_migrate_conversion_flavor_name: m1.tiny"
    echo "os_migrate_conversion_image_name: $LAB-image"
    echo "os_migrate_src_conversion_external_network_name: public"
    echo "os_migrate_dst_conversion_external_network_name: public"
  } >"$data/os-migrate-vars.yml"
  vars=(--vars "$data/os-migrate-vars.yml" --src-cloud "$LAB-src" --dst-cloud "$LAB-dst")
  estate_data=$data
  estate seed "$data/conversion/ssh.key.pub"
}

estate_hosts() {
  local data=$1
  lab/conversion-hosts up "$OSMLAB_STATE/demo-conversion-hosts" "$data/conversion/ssh.key.pub" >>"$data/os-migrate-vars.yml"
  osm conversion-hosts deploy "${vars[@]}"
}

estate_down() {
  local rc=0
  if [ -n "${estate_data:-}" ]; then osm conversion-hosts delete "${vars[@]}" --purge-keys || rc=1; fi
  lab/conversion-hosts down "$OSMLAB_STATE/demo-conversion-hosts" || true
  estate clean src || true
  return $rc
}
