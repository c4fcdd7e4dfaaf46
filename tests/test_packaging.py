"""A wheel built from the repo installs rlpop, rlpop.envs and rlpop.agents -- and nothing named bare envs/agents."""
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_contents(tmp_path):
    res = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                          str(ROOT)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (wheel,) = list(tmp_path.glob("rlpop-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("rlpop/__init__.py", "rlpop/run.py", "rlpop/envs/__init__.py", "rlpop/envs/registry.py",
                   "rlpop/envs/corridor.py", "rlpop/agents/__init__.py", "rlpop/agents/ppo.py",
                   "rlpop/strategies/pbt.py"):
        assert needed in names, needed
    tops = {n.split("/")[0] for n in names}
    assert "envs" not in tops and "agents" not in tops, sorted(tops)
    assert all(t == "rlpop" or t.startswith("rlpop-") for t in tops), sorted(tops)
