"""Copy the JavaScript the book serves itself from node_modules/ into the gitignored _vendor/.

Run by `make vendor` after `npm ci` (package.json + package-lock.json pin the versions). Only the
files a page needs are copied: the rendered book then typesets equations and shows widgets with no
network. Sphinx copies _vendor/ into _build/html/_static/ (`html_static_path: [_vendor]` in
_config.yml), where `mathjax_path` and `nb_ipywidgets_js` point.

    _vendor/mathjax/   tex-mml-chtml.js, its CHTML woff fonts, the TeX extensions it autoloads
    _vendor/widgets/   require.js and the ipywidgets html-manager (embed-amd.js + its icon fonts)
    _vendor/versions.json   what was copied from which package version (the make target)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "node_modules"
VENDOR = ROOT / "_vendor"

# destination folder in _vendor -> (npm package, folder inside the package, globs, license files)
ASSETS: dict[str, list[tuple[str, str, list[str], list[str]]]] = {
    "mathjax": [
        ("mathjax", "es5", [
            "tex-mml-chtml.js",
            "output/chtml/fonts/woff-v2/*.woff",
            "input/tex/extensions/*.js",
        ], ["LICENSE"]),
    ],
    "widgets": [
        ("requirejs", "", ["require.js"], []),  # MIT; the licence header is inside require.js
        # embed-amd.js finds its fonts next to itself; browsers pick woff2, then woff.
        ("@jupyter-widgets/html-manager", "dist", ["embed-amd.js", "*.woff2", "*.woff"], []),
    ],
}


def installed_version(package: str, locked: dict) -> str:
    """The version in node_modules, which must be the one package-lock.json pins."""
    want = locked["packages"][f"node_modules/{package}"]["version"]
    manifest = MODULES / package / "package.json"
    have = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    if have != want:
        sys.exit(f"vendor: {package} is {have or 'not installed'} in node_modules, the lockfile "
                 f"pins {want}; run `npm ci --ignore-scripts` (or `make vendor`).")
    return want


def main() -> int:
    locked = json.loads((ROOT / "package-lock.json").read_text())
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    record: dict[str, dict] = {}
    for dest, sources in ASSETS.items():
        for package, base, globs, licences in sources:
            version = installed_version(package, locked)
            src_root = MODULES / package / base
            files = [path for pattern in globs for path in sorted(src_root.glob(pattern))]
            missing = [pattern for pattern in globs if not any(src_root.glob(pattern))]
            if missing:
                sys.exit(f"vendor: {package}@{version} has no {missing} under {src_root}")
            for path in files:
                target = VENDOR / dest / path.relative_to(src_root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            for name in licences:
                shutil.copy2(MODULES / package / name, VENDOR / dest / f"{name}.{package}")
            record[package] = {"version": version, "to": f"_vendor/{dest}", "files": len(files)}
    total = sum(path.stat().st_size for path in VENDOR.rglob("*") if path.is_file())
    (VENDOR / "versions.json").write_text(json.dumps(record, indent=1) + "\n")
    for package, info in record.items():
        print(f"vendor: {package}@{info['version']}: {info['files']} files -> {info['to']}")
    print(f"vendor: {total / 2**20:.1f} MiB in _vendor/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
