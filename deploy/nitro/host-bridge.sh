#!/bin/sh
# On the parent instance: exposes the enclave's vsock port as a local Unix socket for the host
# (SE_ENCLAVE_SOCKET=/run/se/enclave.sock, SE_ENCLAVE_SPAWN=false).
#   deploy/nitro/host-bridge.sh <enclave-cid> [socket]
set -eu
CID="${1:?usage: host-bridge.sh <enclave-cid> [socket]}"
SOCK="${2:-/run/se/enclave.sock}"
mkdir -p "$(dirname "$SOCK")"
rm -f "$SOCK"
exec socat UNIX-LISTEN:"$SOCK",fork,mode=600 VSOCK-CONNECT:"$CID":5000
