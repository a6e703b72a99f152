"""A real resolver whose block page serves HTTPS from a school CA made by `safe-resolver ca init`,
for the end-to-end and browser tests of the HTTPS block page."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.resolver_proc import REPO, ResolverFactory, ResolverProc, free_port

BLOCKED = "blocked.example"  # on the profile's deny list
SERVICE = "www.tiktok.com"  # blocked as the service TikTok
MANDATED = "banned.example"  # on the mandated list (RPZ CNAME .)
ALLOWED = "fine.example"  # not blocked: no certificate is minted for it

POLICY = f"""\
version: 1
clients: {{default: pupils}}
profiles:
  pupils:
    display: {{vi: Lớp 10A1, en: Class 10A1}}
    age: unrestricted
    deny: [{BLOCKED}]
    block_services: [tiktok]
    block_mode: blockpage
mandated:
  block_mode: blockpage
  sources: [{{id: authority, path: mandated.rpz, format: rpz}}]
overlay: overlay.yaml
"""
RPZ = f"""\
$TTL 300
@ IN SOA localhost. hostmaster.example.invalid. 1 3600 600 86400 300
  IN NS localhost.
{MANDATED} CNAME .
"""


@dataclass
class HttpsBlockPage:
    rp: ResolverProc
    http: int  # plain-HTTP block page port
    https: int  # HTTPS block page port
    admin: int
    ca_cert: Path  # the school CA's certificate (PEM)
    requests_db: Path


def start(resolver_proc: ResolverFactory, upstream: str, directory: Path) -> HttpsBlockPage:
    """`ca init` through the command line, then the resolver with `blockpage.ca` set."""
    ca_dir = directory / "school-ca"
    subprocess.run(
        [sys.executable, "-m", "resolver", "ca", "init", "--dir", str(ca_dir),
         "--name", "THCS Nguyễn Du"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    (directory / "mandated.rpz").write_text(RPZ)
    policy = directory / "policy.yaml"
    policy.write_text(POLICY)
    http, https, admin = free_port(), free_port(), free_port()
    db = directory / "requests.sqlite"
    rp = resolver_proc(
        [upstream],
        policy=str(policy),
        blockpage={"listen": [f"127.0.0.1:{http}"], "https_listen": [f"127.0.0.1:{https}"],
                   "ca": str(ca_dir), "requests_db": str(db)},
        admin={"listen": [f"127.0.0.1:{admin}"]},
        organisation={"name": "THCS Nguyễn Du", "contact": "0234 3822 123"},
    )  # fmt: skip
    return HttpsBlockPage(rp, http, https, admin, ca_dir / "ca.crt", db)
