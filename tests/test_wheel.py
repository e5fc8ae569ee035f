"""The wheel carries everything an installed cropcredit needs (issue #16 item 5).

Builds the wheel from a copy of the source tree in a temp dir (the checkout stays clean), then
checks its file list and that the data lookups of an unpacked wheel find the files inside it.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What the build reads: the metadata files and the folders that become packages.
SOURCES = ("pyproject.toml", "README.md", "data", "flows", "geo", "vision", "scoring")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    proc = subprocess.run(
        [*cmd, "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0 and "No module named pip" in proc.stderr:
        pytest.skip("pip is not installed in this interpreter; cannot build the wheel")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = dist.glob("cropcredit-*.whl")
    return whl


def _names(whl: Path) -> set[str]:
    with zipfile.ZipFile(whl) as zf:
        return set(zf.namelist())


def test_wheel_carries_data_templates_and_static(wheel: Path) -> None:
    names = _names(wheel)
    expected = {
        "cropcredit_data/models/segmenter.pt",
        "cropcredit_data/models/pd_model.json",
        "cropcredit_data/models/pd_model.meta.json",
        "cropcredit_data/models/SEGMENTER_CARD.md",
        "cropcredit_data/models/PD_MODEL_CARD.md",
        "flows/static/leaflet/leaflet.js",
        "flows/static/leaflet/leaflet.css",
        "flows/static/leaflet/images/marker-icon.png",
    }
    expected |= {f"cropcredit_data/{p.name}" for p in (REPO / "data").glob("*.csv")}
    for sub in ("templates", "static"):
        expected |= {
            f"flows/review/{sub}/{p.name}" for p in (REPO / "flows" / "review" / sub).iterdir()
        }
    assert len(expected) > 15
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"


def test_wheel_lists_every_package_of_the_tree(wheel: Path) -> None:
    """pyproject lists the packages by hand (for cropcredit_data): a new one must be added."""
    names = _names(wheel)
    packages = [
        init.parent.relative_to(REPO).as_posix()
        for top in ("flows", "geo", "vision", "scoring")
        for init in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    ]
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_unpacked_wheel_finds_its_own_data(wheel: Path, tmp_path: Path) -> None:
    """Outside the checkout, the tables and models come from the wheel's cropcredit_data."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = (
        "import geo, geo.paths as p\n"
        "from scoring.tables import DEFAULT_PATH, load_economics\n"
        "from scoring.pd_model import SHIPPED_PATH, load_shipped_pd\n"
        "from geo.synth.phenology import CALENDAR_PATH\n"
        "from geo.calendar import load_stage_calendar\n"
        "print(geo.__file__)\n"
        "print(p.shipped_dir())\n"
        "assert DEFAULT_PATH.is_file() and SHIPPED_PATH.is_file() and CALENDAR_PATH.is_file()\n"
        "assert (p.shipped_dir() / 'models' / 'segmenter.pt').is_file()\n"
        "load_economics(); load_shipped_pd(); load_stage_calendar()\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CROPCREDIT_DATA"}
    env["PYTHONPATH"] = str(site)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    geo_file, shipped, ok = proc.stdout.split()[-3:]
    assert Path(geo_file).is_relative_to(site)
    assert Path(shipped) == site / "cropcredit_data"
    assert ok == "ok"


@pytest.mark.slow
def test_installed_wheel_runs_a_stage_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """pip installs the wheel into a fresh venv; from a folder outside the checkout,
    ``cropcredit generate`` and a pre-sowing stage run on what the wheel carries (~1 min).

    The venv gets its dependencies from this interpreter's site-packages through a ``.pth``
    line (the ``.pth`` files there, the checkout's editable install among them, are not
    processed), so only the wheel is new.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    venv_site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (venv_site / "zz_shared_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index"]
    proc = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CROPCREDIT_DATA")} | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str) -> str:
        proc = subprocess.run(
            [str(venv / "bin" / "cropcredit"), *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        return proc.stdout

    where = subprocess.run(
        [str(py), "-c", "import geo, geo.paths as p; print(geo.__file__, p.shipped_dir())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(w).is_relative_to(venv) for w in where), where
    run("generate", "--out", "archive", "--size-px", "160", "--seed", "3")
    out = run(
        "season", "--source", "local", "--archive", "archive", "--out", "season",
        "--stage", "pre_sowing", "--run-id", "wheel",
    )  # fmt: skip
    assert "pre_sowing" in out
    limits = work / "season" / "limits.csv"
    assert limits.is_file() and len(limits.read_text().splitlines()) > 1
    assert (work / "season" / "report" / "static" / "leaflet" / "leaflet.js").is_file()
