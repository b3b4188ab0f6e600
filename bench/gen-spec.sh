#!/usr/bin/env bash
# gen-spec.sh NAME NODES PODS [BACKEND]: a cluster spec with NODES nodes (one
# control-plane, the rest workers) and PODS pods in total, spread over the workers.
set -euo pipefail
name=$1 nodes=$2 pods=$3 backend=${4:-vxlan}
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
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
YAML
