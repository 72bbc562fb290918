"""Read a config drive the way cloud-init does and print what it understood, as JSON.

Not a test module: the config-drive tests run it as ``/usr/bin/python3 cloudinit_probe.py DIR
[--mac MAC=NAME ...]`` because Debian's cloud-init only imports under Debian's own Python. DIR
holds the drive's files (extracted from the ISO by the test). The probe uses cloud-init's public
pieces, unpatched:

* ``DataSourceConfigDrive.read_config_drive(DIR)`` — the reader on a plain directory;
* the full ``DataSourceConfigDrive`` datasource with ``DIR`` copied to its seed directory, a
  Debian distro and ``known_macs`` standing in for the guest's NICs: ``get_data()``, instance id,
  host name, SSH keys, availability zone, raw user data and vendor data, ``network_config``;
* ``network_state`` normalising the network config as the renderers see it;
* ``UserDataProcessor`` on the user data and the vendor data (gzip, MIME, lists of parts), and
  the cloud-config part handler that merges the vendor data's cloud-config parts.

Binary values are printed base64-encoded under keys ending in ``_b64``.
"""

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile


def b64(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).decode("ascii")


def plain(value):
    """`value` made JSON-serialisable (bytes → base64 text)."""
    if isinstance(value, bytes):
        return {"bytes_b64": b64(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def processed_parts(paths, blob):
    """The parts cloud-init's UserDataProcessor makes of `blob`: content type and payload."""
    from cloudinit import user_data

    if blob is None:
        return None
    message = user_data.UserDataProcessor(paths).process(blob)
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        payload = part.get_payload(decode=True)
        parts.append({"type": part.get_content_type(), "payload_b64": b64(payload)})
    return parts


def merged_cloud_config(paths, blob):
    """The vendor data's cloud-config parts merged by cloud-init's own part handler."""
    from cloudinit import handlers, user_data
    from cloudinit.handlers.cloud_config import CloudConfigPartHandler

    if blob is None:
        return None
    message = user_data.UserDataProcessor(paths).process(blob)
    handler = CloudConfigPartHandler(paths)
    handler.handle_part(None, handlers.CONTENT_START, None, None, None, None)
    count = 0
    for part in message.walk():
        if part.get_content_type() != "text/cloud-config":
            continue
        count += 1
        payload = part.get_payload(decode=True).decode("utf-8")
        handler.handle_part(None, "text/cloud-config", f"part-{count:03d}", payload, None, dict(part))
    return handler.cloud_buf


def normalised_network(config):
    """`config` as cloud-init's network_state normalises it for the renderers (prefixes, routes)."""
    from cloudinit.net import network_state

    if config is None:
        return None
    state = network_state.parse_net_config_data(config)
    interfaces = {}
    for interface in state.iter_interfaces():
        interfaces[interface["name"]] = {
            "mac_address": interface.get("mac_address"),
            "mtu": interface.get("mtu"),
            "subnets": [{key: subnet.get(key) for key in ("type", "address", "prefix", "routes")}
                        for subnet in interface.get("subnets", [])],
        }
    return {"interfaces": interfaces, "dns_nameservers": state.dns_nameservers}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("drive")
    parser.add_argument("--mac", action="append", default=[], help="MAC=NAME of a guest NIC")
    args = parser.parse_args()
    known_macs = dict(item.split("=", 1) for item in args.mac)

    from cloudinit import distros, helpers
    from cloudinit.sources import DataSourceConfigDrive
    from cloudinit.sources.helpers import openstack

    out = {}
    try:
        results = DataSourceConfigDrive.read_config_drive(args.drive)
    except (openstack.NonReadable, openstack.BrokenMetadata) as exc:
        out["read_error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))
        return 0
    out["read"] = {
        "metadata": plain(results["metadata"]),
        "userdata_b64": b64(results.get("userdata")),
        "vendordata": plain(results.get("vendordata")),
        "has_networkdata": "networkdata" in results,
        "networkdata": plain(results.get("networkdata")),
        "version": results.get("version"),
        "openstack_version": openstack.ConfigDriveReader(args.drive)._find_working_version(),
    }

    cloud_dir = tempfile.mkdtemp(prefix="cloudinit-probe-")
    try:
        paths = helpers.Paths({"cloud_dir": cloud_dir, "run_dir": os.path.join(cloud_dir, "run")})
        distro = distros.fetch("debian")("debian", {}, paths)
        shutil.copytree(args.drive, os.path.join(cloud_dir, "seed", "config_drive"))
        source = DataSourceConfigDrive.DataSourceConfigDrive({}, distro, paths)
        source.known_macs = known_macs
        found = source.get_data()
        hostname = source.get_hostname()
        try:
            network_config = source.network_config
            network_error = None
        except ValueError as exc:  # a MAC of the drive is not among known_macs
            network_config = None
            network_error = str(exc)
        out["datasource"] = {
            "found": found,
            "instance_id": source.get_instance_id(),
            "hostname": getattr(hostname, "hostname", hostname),
            "public_keys": source.get_public_ssh_keys(),
            "availability_zone": source.availability_zone,
            "userdata_raw_b64": b64(source.get_userdata_raw()),
            "vendordata_raw": plain(source.get_vendordata_raw()),
            "network_config": plain(network_config),
            "network_config_error": network_error,
            "network_state": plain(normalised_network(network_config)),
            "userdata_parts": processed_parts(paths, source.get_userdata_raw()),
            "vendordata_parts": processed_parts(paths, source.get_vendordata_raw()),
            "vendordata_cloud_config": plain(merged_cloud_config(paths, source.get_vendordata_raw())),
        }
    finally:
        shutil.rmtree(cloud_dir, ignore_errors=True)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
