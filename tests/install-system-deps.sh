#!/bin/sh
# Installs the Debian packages the tests drive for real: dig (bind9-dnsutils), knotd (knot, the
# primary the zone-transfer tests pull from), kdig for DNS over TLS and HTTPS (knot-dnsutils),
# curl (DoH over HTTP/2), Chromium, the PostgreSQL server (the query-log tests run their own
# throwaway cluster with initdb/pg_ctl), dnsdist (the ISP recipe's load balancer, run
# unprivileged on a loopback port) and promtool (checks and unit-tests deploy/prometheus's alert
# rules), certutil (libnss3-tools: trusts the test school CA in Chromium's NSS database for the
# HTTPS block-page test). promtool is taken out of Debian's `prometheus` package into /usr/local/bin, so no
# Prometheus server gets installed (on a machine with systemd the package would start one).
# With arguments, installs just those packages. Does nothing for what is already present.
set -eu
promtool=""
if [ "$#" -gt 0 ]; then
    want="$*"
else
    want=""
    command -v dig >/dev/null 2>&1 || want="$want bind9-dnsutils"
    command -v kdig >/dev/null 2>&1 || want="$want knot-dnsutils"
    command -v curl >/dev/null 2>&1 || want="$want curl"
    command -v chromium >/dev/null 2>&1 || want="$want chromium"
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || want="$want postgresql"
    command -v promtool >/dev/null 2>&1 || promtool=yes
    command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || want="$want knot"
    command -v dnsdist >/dev/null 2>&1 || want="$want dnsdist"
    command -v certutil >/dev/null 2>&1 || want="$want libnss3-tools"
fi
[ -z "$want" ] && [ -z "$promtool" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "need root to install:$want${promtool:+ promtool} (tests that need them will be skipped)" >&2
        exit 0
    fi
else
    SUDO=""
fi
echo "installing:$want${promtool:+ promtool}"
$SUDO apt-get update -qq
if [ -n "$want" ]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
fi
if [ -n "$promtool" ]; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) \
        && dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"; then
        $SUDO install -m 0755 "$tmp/root/usr/bin/promtool" /usr/local/bin/promtool
    else
        echo "could not get promtool (Debian package prometheus); its tests will be skipped" >&2
    fi
    rm -rf "$tmp"
fi
