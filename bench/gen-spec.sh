#!/usr/bin/env bash
# gen-spec.sh NAME NODES PODS [BACKEND] [CONTAINERS]: a cluster spec with NODES nodes
# (one control-plane, the rest workers) and PODS pods in total, spread over the workers,
# each with CONTAINERS busybox containers (default 1). $RESTART_BACKOFF sets the
# restart back-off (seconds, default 1).
set -euo pipefail
name=$1 nodes=$2 pods=$3 backend=${4:-vxlan} containers=${5:-1}
cat <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $name
nodes:
- role: control-plane
YAML
for ((i = 1; i < nodes; i++)); do echo "- role: worker"; done
cat <<YAML
---
apiVersion: minik.dev/v1alpha1
kind: MinikConfig
network: {backend: $backend}
restartBackoffSeconds: ${RESTART_BACKOFF:-1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench}
spec:
  replicas: $pods
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      containers:
YAML
for ((c = 0; c < containers; c++)); do
  echo "      - {name: c$c, image: busybox, command: [sleep, infinity]}"
done
