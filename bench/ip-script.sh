#!/usr/bin/env bash
# ip-script.sh up|down NAME NODES PODS PAUSE: the same topology as `minik up` builds
# (underlay namespace + bridge, node namespaces with eth0, cni0 and flannel.1, per remote
# node a neighbour, an FDB entry and a route, per pod a pause process in new net/UTS/IPC
# namespaces attached with a veth into cni0), written the way one writes it by hand: one
# `ip`/`bridge` command per step. The baseline for bench/up-down.sh. Pods are spread over
# the workers like minik spreads them.
set -euo pipefail
cmd=$1 name=$2 nodes=$3 pods=$4 pause=${5:-}
p="ipb-$name"
if [[ $cmd == down ]]; then
  for ns in $(ip netns list | awk '{print $1}' | grep "^$p\." || true); do
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid"; done
    ip netns del "$ns"
  done
  exit 0
fi
u="$p.underlay"
ip netns add "$u"
ip -n "$u" link set lo up
ip -n "$u" link add br0 type bridge
ip -n "$u" addr add 172.18.0.1/16 dev br0
ip -n "$u" link set br0 up
for ((i = 0; i < nodes; i++)); do
  n="$p.n$i"
  ip netns add "$n"
  ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$u" link add "$name-$i" type veth peer name eth0 netns "$n"
  ip -n "$u" link set "$name-$i" master br0 up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "172.18.0.$((i + 2))/16" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" link add cni0 type bridge
  ip -n "$n" addr add "10.244.$i.1/24" dev cni0
  ip -n "$n" link set cni0 mtu 1450 up
  ip -n "$n" link add flannel.1 address "02:6d:6b:00:$(printf %02x $i):01" type vxlan id 1 local "172.18.0.$((i + 2))" dev eth0 dstport 8472 nolearning
  ip -n "$n" addr add "10.244.$i.0/32" dev flannel.1
  ip -n "$n" link set flannel.1 up
done
for ((i = 0; i < nodes; i++)); do
  n="$p.n$i"
  for ((j = 0; j < nodes; j++)); do
    [[ $i == "$j" ]] && continue
    mac="02:6d:6b:00:$(printf %02x $j):01"
    ip -n "$n" neigh replace "10.244.$j.0" lladdr "$mac" dev flannel.1 nud permanent
    bridge -n "$n" fdb replace "$mac" dev flannel.1 dst "172.18.0.$((j + 2))" self permanent
    ip -n "$n" route replace "10.244.$j.0/24" via "10.244.$j.0" dev flannel.1 onlink
  done
done
workers=$((nodes > 1 ? nodes - 1 : 1))
for ((k = 0; k < pods; k++)); do
  node=$((nodes > 1 ? 1 + k % workers : 0))
  host=$((2 + k / workers))
  pod="$p.pod$k"
  ip netns add "$pod"
  ip netns exec "$pod" unshare --uts --ipc -- "$pause" </dev/null >/dev/null 2>&1 &
  ip -n "$p.n$node" link add "veth$k" type veth peer name eth0 netns "$pod"
  ip -n "$p.n$node" link set "veth$k" master cni0 mtu 1450 up
  ip -n "$pod" link set lo up
  ip -n "$pod" link set eth0 mtu 1450 up
  ip -n "$pod" addr add "10.244.$node.$host/24" dev eth0
  ip -n "$pod" route add default via "10.244.$node.1"
done
