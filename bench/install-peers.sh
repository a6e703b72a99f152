#!/bin/sh
# Installs the load tool and the peer resolvers the DNS benchmark compares against, only when
# missing: dnsperf, dnsmasq, unbound, knot-resolver, pdns-recursor, bind9, dig.
# The bench runs every peer as a plain process with its own config on a loopback high port, so
# any system service a package starts is stopped and disabled again here.
set -eu
want=""
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || want="$want $2"; }
need dnsperf dnsperf
need dnsmasq dnsmasq-base
need unbound unbound
need kresd knot-resolver
need pdns_recursor pdns-recursor
need named bind9
need dig bind9-dnsutils
[ -z "$want" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "need root to install:$want (the bench skips missing peers)" >&2
        exit 0
    fi
else
    SUDO=""
fi
echo "installing:$want"
$SUDO apt-get update -qq
# policy-rc.d 101 keeps postinst scripts from starting services while we install.
rc=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$rc" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rc" >/dev/null
    $SUDO chmod +x "$rc"
    created=1
fi
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null || status=$?
[ -n "$created" ] && $SUDO rm -f "$rc"
if command -v systemctl >/dev/null 2>&1; then
    for unit in unbound named bind9 pdns-recursor kresd@1 dnsmasq; do
        $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi
exit "${status:-0}"
