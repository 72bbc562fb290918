"""The image-store layout of downloads (spec §9): paths, file names, scans, clean-up, capacity.

Paths are built only from integers, generated UUIDs and strictly sanitised names — never from a
user-supplied path component:

    template/tmpl/<account_id>/<template_id>/<uuid>.<ext>          templates
    template/tmpl/<account_id>/<template_id>/<sanitised name>.iso  ISOs
    template/tmpl/<account_id>/<template_id>/dnld<random>tmp_      the partial file
    template/tmpl/<account_id>/<template_id>/template.properties

The functions below the line do file-system work and are meant to run in a thread pool.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import uuid
from dataclasses import dataclass

from appliance.files import atomic_write
from ssvm.download import properties

TEMPLATE_ROOT = "template/tmpl"
TEMP_PREFIX, TEMP_SUFFIX = "dnld", "tmp_"
TEMP_NAME = re.compile(r"dnld[0-9a-f]+tmp_")
MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
FORMAT_OF_EXTENSION = {ext: fmt for fmt, ext in properties.EXTENSIONS.items()} | {"raw": "raw"}


def install_directory(account_id: int, template_id: int) -> str:
    return f"{TEMPLATE_ROOT}/{int(account_id)}/{int(template_id)}"


def sanitise(name: str, limit: int = MAX_NAME) -> str:
    """Only [A-Za-z0-9._-]; spaces (and anything else) become `_`; no leading dot or dash; bounded."""
    cleaned = _UNSAFE.sub("_", name.strip())
    cleaned = cleaned.lstrip(".-")
    return cleaned[:limit].rstrip(".")


def iso_file_name(name: str) -> str:
    base = sanitise(name)
    if base.lower().endswith(".iso"):
        base = base[:-4].rstrip(".")
    if not base:
        base = str(uuid.uuid4())
    return f"{base}.iso"


def template_file_name(image_format: str) -> str:
    return f"{uuid.uuid4()}.{properties.EXTENSIONS[image_format]}"


def file_name_for(image_format: str, name: str) -> str:
    return iso_file_name(name) if image_format == "iso" else template_file_name(image_format)


def temp_file_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


# -- file-system work (thread pool) ----------------------------------------------------------------


@dataclass(frozen=True)
class ScannedDirectory:
    directory: str  # relative, template/tmpl/<a>/<t>
    account_id: int
    template_id: int
    values: dict[str, str] | None  # the properties if valid
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.problems

    def image(self) -> dict[str, object]:
        """The JSON-able description of a valid directory."""
        assert self.values is not None
        values = self.values
        ext = properties.format_entries(values)[0]
        file_name = values[f"{ext}.filename"]
        size = values.get(f"{ext}.size", values.get("size", "0"))
        return {
            "id": self.template_id,
            "account_id": self.account_id,
            "install_path": f"{self.directory}/{file_name}",
            "format": FORMAT_OF_EXTENSION.get(ext, ext),
            "physical_size": int(size),
            "virtual_size": int(values["virtualsize"]),
            "unique_name": values["uniquename"],
        }


def _check_directory(root: str, relative: str, account_id: int, template_id: int) -> ScannedDirectory:
    path = os.path.join(root, relative)
    try:
        with open(os.path.join(path, properties.FILE_NAME), encoding="latin-1") as handle:
            values = properties.parse(handle.read(1 << 20))
    except FileNotFoundError:
        return ScannedDirectory(relative, account_id, template_id, None, ("template.properties is missing",))
    except OSError as exc:
        return ScannedDirectory(relative, account_id, template_id, None, (f"unreadable: {exc.strerror}",))
    found = properties.problems(values)
    if not found:
        ext = properties.format_entries(values)[0]
        try:
            info = os.lstat(os.path.join(path, values[f"{ext}.filename"]))
        except OSError:
            found.append("the image file is missing")
        else:
            if not stat.S_ISREG(info.st_mode):
                found.append("the image is not a regular file")
            elif f"{ext}.size" in values and str(info.st_size) != values[f"{ext}.size"]:
                found.append("the image file's size differs from the properties")
    return ScannedDirectory(relative, account_id, template_id, None if found else values, tuple(found))


def _numeric_entries(path: str) -> list[str]:
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((name for name in names if name.isdigit() and os.path.isdir(os.path.join(path, name))
                   and not os.path.islink(os.path.join(path, name))), key=int)


def scan(root: str) -> list[ScannedDirectory]:
    """Every template/tmpl/<a>/<t> directory with its validity."""
    found = []
    base = os.path.join(root, TEMPLATE_ROOT)
    for account in _numeric_entries(base):
        for template in _numeric_entries(os.path.join(base, account)):
            relative = install_directory(int(account), int(template))
            found.append(_check_directory(root, relative, int(account), int(template)))
    return found


def remove_directory(root: str, relative: str) -> bool:
    """Remove template/tmpl/<a>/<t> (and its account directory if it becomes empty)."""
    if not re.fullmatch(r"template/tmpl/\d+/\d+", relative):
        raise ValueError(f"not an install directory: {relative!r}")
    path = os.path.join(root, relative)
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return False
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass
    return True


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def discard_partial(root: str, relative: str, temp_name: str) -> None:
    """Remove a partial file, then the install and account directories if that left them empty."""
    path = os.path.join(root, relative)
    remove_file(os.path.join(path, temp_name))
    for directory in (path, os.path.dirname(path)):
        try:
            os.rmdir(directory)
        except OSError:
            break


def prepare_directory(root: str, relative: str) -> None:
    """Create the install directory; drop a previous `template.properties` and stale partial files."""
    path = os.path.join(root, relative)
    os.makedirs(path, mode=0o755, exist_ok=True)
    remove_file(os.path.join(path, properties.FILE_NAME))


def install(root: str, relative: str, temp_name: str, file_name: str, text: str) -> None:
    """Make the partial file the image (0644) and write `template.properties` atomically; remove
    any other file left in the directory (an older image, stale partial files)."""
    path = os.path.join(root, relative)
    os.chmod(os.path.join(path, temp_name), 0o644)
    os.replace(os.path.join(path, temp_name), os.path.join(path, file_name))
    atomic_write(os.path.join(path, properties.FILE_NAME), text.encode("latin-1"), mode=0o644)
    for name in os.listdir(path):
        if name not in (file_name, properties.FILE_NAME):
            entry = os.path.join(path, name)
            if os.path.isfile(entry) and not os.path.islink(entry):
                remove_file(entry)


def usage(root: str) -> int:
    """Bytes allocated under `root` (symbolic links not followed)."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
            else:
                total += info.st_blocks * 512
    return total


def capacity(root: str) -> dict[str, int]:
    fs = os.statvfs(root)
    return {"total": fs.f_blocks * fs.f_frsize, "free": fs.f_bavail * fs.f_frsize, "used_by_store": usage(root)}
