#!/usr/bin/env bash
# tscni on a real Kubernetes cluster: kind (1 control plane + 2 workers, no default CNI), the DaemonSet of
# conf/kubernetes/tscni.yaml in one mode, pods pinned to different nodes, connectivity checks.
#
# usage: e2e/kind/run.sh host-gw|vxlan|ptp
#   needs: Linux on x86-64 (the image carries an x86-64 executable), bash >= 4.4, docker (a working engine), kind,
#   kubectl, make; pulls kindest/node, debian:bookworm-slim, busybox and agnhost the first time. Checks these
#   first and says which is missing. Prints PASS/FAIL per check; exits 0 only if every check passed; on any
#   failure, `kind export logs` writes the cluster's logs to $TSCNI_KIND_LOGS (default: a temp dir, named).
#   TSCNI_KIND_KEEP=1 keeps the cluster for a look afterwards (kind delete cluster --name tscni-e2e).
#   TSCNI_KIND_NODE_IMAGE=kindest/node:vX.Y.Z picks the node image (default: kind's own).
#
# Modes: host-gw and vxlan are the bridge + fabric plugins as shipped (vxlan with directRouting off, so the
# tunnel carries everything even though kind's nodes share one docker network). ptp has no cross-node fabric of
# its own: pods are ptp (/32 routed, Calico-style) and the DaemonSet keeps host-gw routes between the nodes
# (the ConfigMap's ptp-fabric.conf), which works because kind's nodes are on one L2 segment.
#
# "Outside" is the gateway of kind's docker network (the Docker host's bridge address): it is outside the
# cluster, always there, and has no route back to the pod CIDRs, so a reply proves the masquerade.
set -euo pipefail

MODE=${1:-}
case "$MODE" in
  host-gw | vxlan | ptp) ;;
  *)
    echo "usage: $0 host-gw|vxlan|ptp" >&2
    exit 2
    ;;
esac

# prerequisites, before anything is built or created
missing=()
[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] || missing+=("Linux on x86-64 (this is $(uname -s) $(uname -m))")
((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4))) || missing+=("bash >= 4.4 (this is $BASH_VERSION)")
for tool in docker kind kubectl make; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if command -v docker >/dev/null && ! docker info >/dev/null 2>&1; then missing+=("a Docker engine that answers 'docker info'"); fi
if [ ${#missing[@]} -ne 0 ]; then
  printf 'kind e2e %s: missing prerequisite: %s\n' "$MODE" "${missing[@]}" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/e2e/kind"
CLUSTER=${TSCNI_KIND_CLUSTER:-tscni-e2e}
CTX="kind-$CLUSTER"
IMAGE=tscni:0.1.0
BUSYBOX=busybox:1.36
AGNHOST=registry.k8s.io/e2e-test-images/agnhost:2.47
TMP=$(mktemp -d)
FAILED=0
PASSED=0

k() { kubectl --context "$CTX" "$@"; }
say() { printf '%s kind %s: %s\n' "$(date +%T)" "$MODE" "$*"; }

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    local logs=${TSCNI_KIND_LOGS:-$(mktemp -d /tmp/tscni-kind-logs.XXXXXX)}
    kind export logs "$logs" --name "$CLUSTER" >/dev/null 2>&1 && say "cluster logs: $logs" || true
  fi
  if [ "${TSCNI_KIND_KEEP:-0}" = 1 ]; then
    say "cluster kept: kind delete cluster --name $CLUSTER"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

# check NAME COMMAND...: one PASS/FAIL line; the command's output is shown on failure
check() {
  local name=$1
  shift
  if "$@" >"$TMP/out" 2>&1; then
    echo "PASS $MODE: $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $MODE: $name"
    sed 's/^/    /' "$TMP/out"
    FAILED=$((FAILED + 1))
  fi
}

# retry N COMMAND...: the first tries may race a route or a conntrack entry still being made
retry() {
  local n=$1 i
  shift
  for ((i = 1; i <= n; i++)); do
    if "$@"; then return 0; fi
    sleep 2
  done
  return 1
}

# expect_eq WANT COMMAND...: the command's output (trimmed) must equal WANT
expect_eq() {
  local want=$1 got
  shift
  got=$("$@" | tr -d '\r' | sed 's/[[:space:]]*$//')
  [ "$got" = "$want" ] || {
    echo "want '$want', got '$got'"
    return 1
  }
}

# ---- build, cluster, install ----
say "building tscni"
make -C "$ROOT" build >/dev/null
mkdir "$TMP/image"
cp "$ROOT/build/bin/tscni" "$TMP/image/tscni"
say "building image $IMAGE"
docker build -q -t "$IMAGE" -f "$HERE/Dockerfile" "$TMP/image" >/dev/null

kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
say "creating cluster $CLUSTER"
node_image=()
[ -n "${TSCNI_KIND_NODE_IMAGE:-}" ] && node_image=(--image "$TSCNI_KIND_NODE_IMAGE")
# no --wait: without a CNI the nodes cannot become Ready
kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" "${node_image[@]}"
# through an archive: `kind load docker-image` fails with Docker's containerd image store
docker save "$IMAGE" -o "$TMP/image.tar"
kind load image-archive "$TMP/image.tar" --name "$CLUSTER"

CP="$CLUSTER-control-plane"
W1="$CLUSTER-worker"
W2="$CLUSTER-worker2"
NODES=("$CP" "$W1" "$W2")

say "installing tscni ($MODE)"
sed "s/^  mode: host-gw$/  mode: $MODE/" "$ROOT/conf/kubernetes/tscni.yaml" >"$TMP/tscni.yaml"
grep -q "^  mode: $MODE$" "$TMP/tscni.yaml" || {
  echo "could not set mode $MODE in the manifest" >&2
  exit 1
}
k apply -f "$TMP/tscni.yaml"
check "DaemonSet rolled out on every node" k -n tscni rollout status ds/tscni --timeout=240s
check "every node Ready (the runtime found our conflist)" k wait --for=condition=Ready node --all --timeout=240s

# ---- pods: a busybox client and an agnhost web server on every node ----
pods() {
  local node short
  for node in "${NODES[@]}"; do
    short=${node#"$CLUSTER"-}
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: bb-$short, labels: {e2e: tscni}}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 0
  containers: [{name: bb, image: $BUSYBOX, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-$short, labels: {e2e: tscni, app: web-$short}}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 0
  containers: [{name: web, image: $AGNHOST, args: [netexec, --http-port=8080]}]
EOF
  done
  # the service's backend is on worker2, its client on worker: the ClusterIP is DNATed on the client's node
  # and crosses the fabric (a backend on the client's own bridge would also need br_netfilter on the host)
  cat <<EOF
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web-worker2}
  ports: [{port: 80, targetPort: 8080}]
EOF
}
pods >"$TMP/pods.yaml"
k apply -f "$TMP/pods.yaml"
check "pods Running on all three nodes" k wait --for=condition=Ready pod -l e2e=tscni --timeout=300s

ip_of() { k get pod "$1" -o jsonpath='{.status.podIP}'; }
declare -A IP
for node in "${NODES[@]}"; do
  short=${node#"$CLUSTER"-}
  IP[bb-$short]=$(ip_of "bb-$short")
  IP[web-$short]=$(ip_of "web-$short")
done
say "pod IPs: $(for p in "${!IP[@]}"; do printf '%s=%s ' "$p" "${IP[$p]}"; done)"

# ---- checks ----
# the fabric: every node holds a tscni route (proto 252) to each other node's pod CIDR
for node in "${NODES[@]}"; do
  check "$node has fabric routes to the 2 other nodes" retry 15 expect_eq 2 bash -c "docker exec $node ip route show proto 252 | grep -c ."
done

# pod-to-pod across nodes, in a ring so every node sends and receives
ring=("control-plane worker" "worker worker2" "worker2 control-plane")
for pair in "${ring[@]}"; do
  read -r from to <<<"$pair"
  check "ping bb-$from -> web-$to (${IP[web-$to]}) across nodes" retry 5 k exec "bb-$from" -- ping -c 3 -W 2 "${IP[web-$to]}"
  # agnhost's /clientip answers the source address it sees: the client's own pod IP means no NAT between pods
  check "HTTP bb-$from -> web-$to sees the client's pod IP (no NAT)" retry 5 expect_eq "${IP[bb-$from]}" \
    bash -c "kubectl --context $CTX exec bb-$from -- wget -qO- -T 5 http://${IP[web-$to]}:8080/clientip | cut -d: -f1"
done
check "HTTP bb-worker -> web-worker (same node)" retry 5 expect_eq "web-worker" \
  k exec bb-worker -- wget -qO- -T 5 "http://${IP[web-worker]}:8080/hostname"

# pod-to-service: ClusterIP through kube-proxy, then by name (CoreDNS is itself a pod behind a ClusterIP, and
# needs the pod network before it can be Ready)
check "CoreDNS Ready" k -n kube-system wait --for=condition=Ready pod -l k8s-app=kube-dns --timeout=180s
SVC=$(k get svc web -o jsonpath='{.spec.clusterIP}')
check "service ClusterIP $SVC from bb-worker reaches web-worker2 (kube-proxy)" retry 10 expect_eq "web-worker2" \
  k exec bb-worker -- wget -qO- -T 5 "http://$SVC/hostname"
check "service by DNS name web.default.svc.cluster.local from bb-control-plane" retry 15 expect_eq "web-worker2" \
  k exec bb-control-plane -- wget -qO- -T 5 "http://web.default.svc.cluster.local/hostname"

# pod-to-outside: the docker network's gateway, masqueraded to the node's address
GW=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 -F . || true)
if [ -n "$GW" ]; then
  check "ping bb-worker2 -> $GW (kind network gateway, outside the cluster: masqueraded)" retry 5 k exec bb-worker2 -- ping -c 3 -W 2 "$GW"
else
  echo "FAIL $MODE: no IPv4 gateway on docker network 'kind'"
  FAILED=$((FAILED + 1))
fi

# MTU: the pods get the fabric's MTU (vxlan: underlay - 50)
UNDERLAY_MTU=$(docker exec "$W1" cat /sys/class/net/eth0/mtu)
WANT_MTU=$UNDERLAY_MTU
[ "$MODE" = vxlan ] && WANT_MTU=$((UNDERLAY_MTU - 50))
check "pod eth0 MTU is $WANT_MTU (underlay $UNDERLAY_MTU)" expect_eq "$WANT_MTU" k exec bb-worker -- cat /sys/class/net/eth0/mtu

# hostPort through the chained portmap plugin: a pod's port 8080 published as the node's 18080
cat <<EOF | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: web-hostport, labels: {e2e: tscni}}
spec:
  nodeSelector: {kubernetes.io/hostname: $W1}
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 0
  containers: [{name: web, image: $AGNHOST, args: [netexec, --http-port=8080], ports: [{containerPort: 8080, hostPort: 18080}]}]
EOF
k wait --for=condition=Ready pod/web-hostport --timeout=120s >/dev/null || true
W1_IP=$(k get node "$W1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
check "hostPort: bb-worker2 -> $W1_IP:18080 reaches web-hostport (portmap)" retry 10 expect_eq "web-hostport" \
  k exec bb-worker2 -- wget -qO- -T 5 "http://$W1_IP:18080/hostname"

# the DaemonSet restarting (an upgrade) leaves running pods connected and new pods wired
k -n tscni rollout restart ds/tscni >/dev/null
check "DaemonSet restarted on every node" k -n tscni rollout status ds/tscni --timeout=240s
check "after the restart: ping bb-control-plane -> web-worker2" retry 5 k exec bb-control-plane -- ping -c 3 -W 2 "${IP[web-worker2]}"

# a node leaving: deleting worker2's Node object removes its route everywhere; its kubelet re-registering
# (restart) brings it back with whatever pod CIDR it is given
CIDR2=$(k get node "$W2" -o jsonpath='{.spec.podCIDR}')
k delete node "$W2" --wait=true >/dev/null
check "node $W2 deleted: $W1 drops its route to $CIDR2" retry 15 bash -c "! docker exec $W1 ip route show proto 252 | grep -q '^$CIDR2 '"
docker exec "$W2" systemctl restart kubelet
check "node $W2 re-registered: $W1 routes to its pod CIDR again" retry 30 bash -c \
  "c=\$(kubectl --context $CTX get node $W2 -o jsonpath='{.spec.podCIDR}'); [ -n \"\$c\" ] && docker exec $W1 ip route show proto 252 | grep -q \"^\$c \""
# and $W2's own conf follows its new pod CIDR: rendered again (the watcher exits on the change and `tscni k8s run`
# renders on restart, or the DaemonSet pod is recreated); the fabric conf names podCIDR in every mode and is
# written in the same step as the conflist
check "node $W2's rendered conf names its current pod CIDR" retry 30 bash -c \
  "c=\$(kubectl --context $CTX get node $W2 -o jsonpath='{.spec.podCIDR}'); docker exec $W2 grep -q \"\\\"podCIDR\\\": \\\"\$c\\\"\" /etc/cni/tscni-fabric.json"
# a pod started on the re-registered node gets an address of its new CIDR and reaches the others (the old
# gateway was taken off cni0: without that every ADD there failed)
k delete pod bb-worker2 --wait=true >/dev/null 2>&1 || true
pods | awk -v RS='---' '/name: bb-worker2,/ {print "---" $0}' | k apply -f - >/dev/null
check "a new pod on re-registered $W2 is Running" k wait --for=condition=Ready pod/bb-worker2 --timeout=180s
check "the new pod on $W2 is in its new pod CIDR and pings web-control-plane" retry 10 k exec bb-worker2 -- ping -c 3 -W 2 "${IP[web-control-plane]}"


if [ "$FAILED" -ne 0 ]; then
  say "DaemonSet logs:"
  k -n tscni logs -l app=tscni --all-containers --prefix --tail=50 || true
fi
echo "kind e2e $MODE: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
