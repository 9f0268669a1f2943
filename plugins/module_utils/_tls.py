# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The TLS front of a service (its ``tls`` key): what the inventory may say, where the files are, the
certificate's names and the nginx lines that make the proxy speak HTTPS.

A service's ``tls`` is either ``{self_signed: true}`` (a certificate the inference_stack role makes on the host,
optionally for more ``names``) or ``{cert: <path>, key: <path>}`` on the host (``ca``: the file that verifies
``cert``, for the verify role). The proxy (nginx) publishes the service's port with that certificate.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.gpufleet.inference.plugins.module_utils import _validate


TLS_KEYS = ("self_signed", "cert", "key", "ca", "names")
# Where the proxy finds the certificate and its key inside its container.
CERT_IN_PROXY = "/etc/gpufleet/tls/server.crt"
KEY_IN_PROXY = "/etc/gpufleet/tls/server.key"
# Names every self-signed certificate carries: the verify role probes services on the host itself.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-*")


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _name_ok(name):
    if not isinstance(name, str) or not name:
        return False
    return _is_ip(name) or (set(name.lower()) <= NAME_CHARS and not name.startswith(("-", ".")) and len(name) <= 253)


def tls_errors(service, where):
    """What is wrong with ``service['tls']``; ``where`` names the entry (``gpufleet_services[0] (chat)``)."""
    tls = service.get("tls")
    if tls is None:
        return []
    if not isinstance(tls, dict):
        return [f"{where}.tls must be a dict: {{self_signed: true}} or {{cert: <path>, key: <path>}} on the host "
                f"{_validate.got(tls)}"]
    errors = _validate.unknown_keys(tls, TLS_KEYS, f"{where}.tls")
    self_signed = tls.get("self_signed", False)
    if not isinstance(self_signed, bool):
        errors.append(f"{where}.tls.self_signed must be true or false {_validate.got(self_signed)}")
    for key in ("cert", "key", "ca"):
        if key in tls and _validate.absolute_path_error(tls[key]):
            errors.append(f"{where}.tls.{key} {_validate.absolute_path_error(tls[key])}")
    if self_signed is True:
        errors += [f"{where}.tls.{key} is set with self_signed: true; give either a certificate or self_signed"
                   for key in ("cert", "key", "ca") if key in tls]
        names = tls.get("names", [])
        if not isinstance(names, list) or not all(_name_ok(name) for name in names):
            errors.append(f"{where}.tls.names must be a list of host names or IP addresses for the certificate "
                          f"{_validate.got(names)}")
    else:
        missing = [key for key in ("cert", "key") if key not in tls]
        if missing:
            errors.append(f"{where}.tls needs {' and '.join(missing)} (paths on the host) or self_signed: true")
        if "names" in tls:
            errors.append(f"{where}.tls.names is for self_signed: true; a certificate of your own carries its names")
    if service.get("proxy") is False:
        errors.append(f"{where}: tls is served by the proxy, and proxy is false")
    return errors


def tls_files(service, tls_dir):
    """The host's files of a service's TLS front: ``cert``, ``key``, ``ca`` (what verifies ``cert``; empty for
    the system's CA store) and ``self_signed``; an empty dict for a service without ``tls``."""
    tls = service.get("tls")
    if not isinstance(tls, dict):
        return {}
    if tls.get("self_signed"):
        cert = f"{tls_dir.rstrip('/')}/{service['name']}.crt"
        return {"cert": cert, "key": f"{tls_dir.rstrip('/')}/{service['name']}.key", "ca": cert, "self_signed": True}
    return {"cert": tls["cert"], "key": tls["key"], "ca": tls.get("ca", ""), "self_signed": False}


def subject_names(service, host_names=()):
    """The subjectAltName entries (``DNS:x``, ``IP:y``) of a service's self-signed certificate: the names the
    service is reached by (``tls.names``, the host's ``host_names``, its bind address) and the host's loopback."""
    bind = str(service.get("bind_address", "127.0.0.1")).strip("[]")
    wanted = list((service.get("tls") or {}).get("names") or []) + [n for n in host_names if n]
    if bind not in ("0.0.0.0", "::"):
        wanted.append(bind)
    entries = []
    for name in wanted + list(LOCAL_NAMES):
        entry = f"IP:{ipaddress.ip_address(name)}" if _is_ip(name) else f"DNS:{name.lower()}"
        if _name_ok(name) and entry not in entries:
            entries.append(entry)
    return entries


def nginx_lines():
    """The lines of the proxy's ``server`` block that make it speak HTTPS only."""
    return [
        f"        ssl_certificate {CERT_IN_PROXY};",
        f"        ssl_certificate_key {KEY_IN_PROXY};",
        "        ssl_protocols TLSv1.2 TLSv1.3;",
        "        ssl_prefer_server_ciphers off;",
        "        ssl_session_cache shared:gpufleet:1m;",
        "        ssl_session_timeout 1h;",
        "        ssl_session_tickets off;",
        # A client that speaks plain HTTP to the HTTPS port gets nginx's 400 "plain HTTP request was sent to
        # HTTPS port", which says what is wrong.
    ]
