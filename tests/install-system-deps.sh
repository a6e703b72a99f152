#!/bin/sh
# Installs the Debian packages the tests drive for real: dig (bind9-dnsutils), Chromium, the
# PostgreSQL server (the query-log tests run their own throwaway cluster with initdb/pg_ctl) and
# dnsdist (the ISP recipe's load balancer, run unprivileged on a loopback port).
# With arguments, installs just those packages. Does nothing for what is already present.
set -eu
if [ "$#" -gt 0 ]; then
    want="$*"
else
    want=""
    command -v dig >/dev/null 2>&1 || want="$want bind9-dnsutils"
    command -v chromium >/dev/null 2>&1 || want="$want chromium"
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || want="$want postgresql"
    command -v dnsdist >/dev/null 2>&1 || want="$want dnsdist"
fi
[ -z "$want" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "need root to install:$want (tests that need them will be skipped)" >&2
        exit 0
    fi
else
    SUDO=""
fi
echo "installing:$want"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
