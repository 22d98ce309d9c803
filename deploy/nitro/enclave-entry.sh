#!/bin/sh
# Inside the enclave: the enclave process serves a Unix socket; socat bridges vsock port 5000 to it. The enclave
# has no other network: vsock to its parent instance is its only channel.
set -eu
SOCK=/run/se-enclave.sock
socat VSOCK-LISTEN:5000,fork,reuseaddr UNIX-CONNECT:"$SOCK" &
# glibc zeroes every freed malloc block (OpenSSL's BIGNUMs, Node buffers): see ENCLAVE_ENV in host/enclave-process.ts.
export MALLOC_PERTURB_=256
exec node --single-threaded-gc /se/bin/enclave.js --socket "$SOCK" --mode nitro --policy /se/policy.json
