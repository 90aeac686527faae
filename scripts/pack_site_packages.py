"""The Dockerfile's build stage: bytecode for every module, pure Python in one zip.

Usage: python pack_site_packages.py SITE_PACKAGES

Packages with compiled extensions (cryptography, rfc3161-client, PyNaCl, ...) stay on disk
with their bytecode in ``__pycache__``: extensions cannot load from a zip. Every other
top-level package and module, with its ``.dist-info``, moves into ``site-packages.zip``
beside the directory, source and (legacy-layout) bytecode, deflated; a ``.pth`` file puts the
zip on ``sys.path`` after the directory. Python's own embeddable distribution ships its
standard library the same way. Tracebacks keep their source lines; the image loses 6 MB.

certifi stays on disk: requests reads its CA bundle by path, which a zip would extract to
a temporary file on every start.
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import sys
import zipfile
from pathlib import Path

ON_DISK = {"certifi"}  # distribution names
NATIVE_SUFFIXES = (".so", ".pyd")


def distributions(site: Path) -> dict[str, tuple[set[Path], bool]]:
    """Per installed distribution: its top-level entries (dist-info included) and whether it
    carries a compiled extension, from its RECORD."""
    found = {}
    for info in site.glob("*.dist-info"):
        files = [line.split(",", 1)[0] for line in (info / "RECORD").read_text().splitlines()]
        tops = {site / f.split("/", 1)[0] for f in files if f and not f.startswith("..")}
        tops.discard(site / "__pycache__")
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower()
        found[name] = (tops | {info}, any(f.endswith(NATIVE_SUFFIXES) for f in files))
    return found


def main(site: Path) -> None:
    archive = site.parent / "site-packages.zip"
    packed = sorted(entry for name, (tops, is_native) in distributions(site).items()
                    if not is_native and name not in ON_DISK for entry in tops
                    if entry.exists())
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for entry in packed:
            for path in sorted([entry] if entry.is_file() else entry.rglob("*")):
                if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                    continue
                name = str(path.relative_to(site))
                if path.suffix == ".py":
                    # Legacy layout (foo.pyc beside foo.py) is what zipimport reads; unchecked
                    # hashes, as nothing in the zip ever changes.
                    zf.writestr(name + "c", _bytecode(path, archive / name))
                zf.write(path, name)
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    (site / "zz-site-packages-zip.pth").write_text(f"{archive}\n")
    compileall.compile_dir(site, quiet=1, workers=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def _bytecode(path: Path, shown_as: Path) -> bytes:
    target = path.with_name(path.name + ".tmp-pyc")
    py_compile.compile(str(path), cfile=str(target), dfile=str(shown_as), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    data = target.read_bytes()
    target.unlink()
    return data


if __name__ == "__main__":
    main(Path(sys.argv[1]))
