#!/bin/sh
# Installs the load tool and the peer resolvers the DNS benchmark compares against, only when
# missing: dnsperf, dnsmasq, unbound, knot-resolver (+ lua-cqueues), pdns-recursor, bind9, dig,
# knot (knotd, the zone-transfer benchmark's primary),
# and dnsdist (the ISP benchmark's load balancer).
# The bench runs every peer as a plain process with its own config on a loopback high port, so
# no system service may be left running or enabled: a policy-rc.d that answers 101 keeps the
# postinst scripts from starting them, units are disabled when systemd runs, and any daemon
# that still appeared during the install is stopped by its process id.
set -eu
want=""
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || want="$want $2"; }
need dnsperf dnsperf
need dnsmasq dnsmasq-base
need unbound unbound
need unbound-control unbound
need kresd knot-resolver
need pdns_recursor pdns-recursor
need rec_control pdns-recursor
need named bind9
need dig bind9-dnsutils
need knotd knot  # the primary of the zone-transfer benchmark
need dnsdist dnsdist
# kresd needs lua-cqueues to watch (and reload) an RPZ file; it is only a Recommends.
dpkg -s lua-cqueues >/dev/null 2>&1 || want="$want lua-cqueues"
[ -z "$want" ] && { echo "peers already installed"; exit 0; }
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "need root to install:$want (the bench reports missing peers as not run)" >&2
        exit 0
    fi
else
    SUDO=""
fi
want=$(printf '%s\n' $want | sort -u | tr '\n' ' ')
echo "installing: $want"
daemons="unbound named kresd pdns_recursor pdns_server dnsmasq knotd dnsdist"
pids() { for d in $daemons; do pgrep -x "$d" || true; done; }
before=$(pids)
$SUDO apt-get update -qq
# policy-rc.d 101 keeps postinst scripts from starting services while we install.
rc=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$rc" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rc" >/dev/null
    $SUDO chmod +x "$rc"
    created=1
fi
status=0
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 $want >/dev/null || status=$?
[ -n "$created" ] && $SUDO rm -f "$rc"
units="unbound unbound-resolvconf named bind9 pdns-recursor kresd.target kresd@1 kres-cache-gc dnsmasq knot dnsdist"
if [ -d /run/systemd/system ]; then
    for unit in $units; do
        $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
elif command -v systemctl >/dev/null 2>&1; then
    # systemctl without a running systemd (containers): disable only edits the symlinks.
    for unit in $units; do
        $SUDO systemctl disable "$unit" >/dev/null 2>&1 || true
    done
fi
# Whatever daemon started anyway (not running before the install): stop it by its pid.
after=$(pids)
for pid in $after; do
    case " $(echo $before) " in *" $pid "*) continue ;; esac
    echo "stopping $(cat /proc/"$pid"/comm 2>/dev/null) (pid $pid) started by its package"
    $SUDO kill "$pid" 2>/dev/null || true
done
exit "$status"
