#!/bin/sh
# `make install` / `make uninstall`: safe-resolver as its systemd units run it.
#   program  PREFIX (/opt/safe-resolver): a virtual environment with this checkout installed
#   config   SYSCONFDIR (/etc/safe-resolver): config.yaml, policy.yaml (never overwritten)
#   units    UNITDIR (/etc/systemd/system), state /var/lib/safe-resolver, user safe-resolver
# DESTDIR=/some/root puts the files under that root only: no user, no systemctl, no root needed.
# Running it again upgrades the program and units and keeps the configuration and state.
set -eu

action=${1:-install}
PYTHON=${PYTHON:-python3}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/safe-resolver}
SYSCONFDIR=${SYSCONFDIR:-/etc/safe-resolver}
UNITDIR=${UNITDIR:-/etc/systemd/system}
POLICY_EXAMPLE=${POLICY_EXAMPLE:-policy/school.yaml}
MYPYC=${MYPYC:-1} # 1: the query path's modules compiled with mypyc (0: pure Python, builds faster)
STATEDIR=/var/lib/safe-resolver # the units' StateDirectory=safe-resolver: fixed by systemd
ACCOUNT=safe-resolver
UNITS="safe-resolver.service safe-resolver-lists.service safe-resolver-lists.timer"
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$DESTDIR

say() { echo "safe-resolver $action: $*"; }
die() { echo "safe-resolver $action: $*" >&2; exit 1; }

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "writes to $PREFIX, $SYSCONFDIR and $UNITDIR and adds a system user: run it as root, or give DESTDIR=/some/root for the files only"
fi
systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# Copies $1 to $2 with the install paths put in, unless $2 exists (an operator's file).
install_config() {
    if [ -e "$2" ]; then
        say "kept $2"
        return
    fi
    sed -e "s|\.\./var/lists|$STATEDIR/lists|" \
        -e "s|^overlay: \.\./var/.*|overlay: $STATEDIR/overlay.yaml|" \
        -e "s|/etc/safe-resolver|$SYSCONFDIR|g" "$1" >"$2.new"
    chmod 0644 "$2.new"
    mv "$2.new" "$2"
    say "installed $2"
}

install_program() {
    real=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    case $real in /home/* | /root/* | /tmp/* | /var/tmp/*)
        die "$PYTHON is $real, hidden from the service (ProtectHome=, PrivateTmp=): give PYTHON=/usr/bin/python3" ;;
    esac
    venv=$ROOT$PREFIX
    if [ ! -x "$venv/bin/python" ]; then
        "$PYTHON" -m venv "$venv"
    fi
    # Build from a copy: an in-tree build leaves build/ behind, and stale modules in it.
    tree=$(mktemp -d)
    trap 'rm -rf "$tree"' EXIT
    tar -C "$SRC" --exclude=./.venv --exclude=./build --exclude=./var --exclude=./.git \
        --exclude=__pycache__ -cf - . | tar -C "$tree" -xf -
    pip="$venv/bin/python -m pip --quiet --disable-pip-version-check"
    if [ "$MYPYC" = 1 ]; then
        # mypyc builds the compiled modules from the same source (setup.py), then leaves: the
        # service needs only what it built. A failed compile warns and installs the .py files.
        $pip install "mypy>=1.10" "setuptools>=68" wheel
        SAFE_RESOLVER_MYPYC=1 $pip install --no-build-isolation "$tree"
        $pip uninstall -y mypy
    else
        $pip install "$tree"
    fi
    built=$("$venv/bin/safe-resolver" version | sed -n 's/^datapath: //p')
    if [ -n "$ROOT" ]; then
        # A venv records its own path: make it the one it will have once copied out of DESTDIR.
        grep -rlI --null -F "$venv" "$venv/bin" "$venv/pyvenv.cfg" |
            xargs -0 -r sed -i "s|$venv|$PREFIX|g"
    fi
    install -d "$venv/share/doc/safe-resolver"
    install -m 0644 "$SRC/README.md" "$venv/share/doc/safe-resolver/README.md"
    install -m 0644 "$SRC/systemd/README.md" "$venv/share/doc/safe-resolver/systemd.md"
    say "installed $PREFIX/bin/safe-resolver ($built)"
}

install_files() {
    install -d -m 0755 "$ROOT$SYSCONFDIR" "$ROOT$UNITDIR"
    install_config "$SRC/systemd/config.yaml" "$ROOT$SYSCONFDIR/config.yaml"
    install_config "$SRC/$POLICY_EXAMPLE" "$ROOT$SYSCONFDIR/policy.yaml"
    install_config "$SRC/policy/mandated.example.rpz" "$ROOT$SYSCONFDIR/mandated.example.rpz"
    for unit in $UNITS; do
        sed -e "s|/opt/safe-resolver|$PREFIX|g" -e "s|/etc/safe-resolver|$SYSCONFDIR|g" \
            "$SRC/systemd/$unit" >"$ROOT$UNITDIR/$unit.new"
        chmod 0644 "$ROOT$UNITDIR/$unit.new"
        mv "$ROOT$UNITDIR/$unit.new" "$ROOT$UNITDIR/$unit"
    done
    say "installed $UNITS in $UNITDIR"
    install -d -m 0750 "$ROOT$STATEDIR" "$ROOT$STATEDIR/lists"
}

install_account() {
    if [ -n "$ROOT" ]; then
        say "DESTDIR=$ROOT: files only; not adding user $ACCOUNT, not running systemctl"
        return
    fi
    if ! getent passwd "$ACCOUNT" >/dev/null; then
        if getent group "$ACCOUNT" >/dev/null; then group="--gid $ACCOUNT"; else group="--user-group"; fi
        # shellcheck disable=SC2086
        useradd --system $group --home-dir "$STATEDIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "safe-resolver DNS filter" "$ACCOUNT"
        say "added system user $ACCOUNT"
    fi
    chown -R "$ACCOUNT:$ACCOUNT" "$STATEDIR"
    if systemd_running; then
        systemctl daemon-reload
    else
        say "systemd is not running here: no daemon-reload"
    fi
}

uninstall() {
    # The configuration, the state (lists, query log) and the user stay: they are the operator's.
    if systemd_running; then
        systemctl disable --now safe-resolver-lists.timer safe-resolver.service || true
    fi
    for unit in $UNITS; do rm -f "$ROOT$UNITDIR/$unit"; done
    if systemd_running; then systemctl daemon-reload; fi
    case $PREFIX in /?*) rm -rf "$ROOT$PREFIX" ;; *) die "PREFIX=$PREFIX is not a directory to remove" ;; esac
    say "removed $PREFIX and the units; kept $SYSCONFDIR, $STATEDIR and user $ACCOUNT"
}

case $action in
install)
    install_program
    install_files
    install_account
    say "next: edit $SYSCONFDIR/config.yaml (upstreams, blockpage.address) and policy.yaml, then"
    say "  $PREFIX/bin/safe-resolver check $SYSCONFDIR/policy.yaml"
    say "  systemctl enable --now safe-resolver.service safe-resolver-lists.timer"
    ;;
uninstall) uninstall ;;
*) die "usage: install.sh [install|uninstall]" ;;
esac
