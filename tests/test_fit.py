"""A population that cannot fit the machine is refused before anything starts, with the numbers and the fix."""
import pytest

from conftest import ROOT, run_cli
from rlpop.fit import check, estimate
from rlpop.run import load_experiment


def test_the_papers_population_fits_batched_and_not_per_member():
    exp = load_experiment(ROOT / "experiments" / "humanoid_fire.py")
    batched = estimate(exp, "ray", cpus=2)
    assert batched.processes == 1 and batched.total_mb < 12 * 1024, batched
    member = estimate(exp.with_overrides({"engine": "member"}), "ray", cpus=2)
    workers, actors = len(exp.build_strategy().layout()), exp.agent.hparams["num_actors"]
    assert workers >= 50 and actors >= 1  # the paper's population, each worker with its own actor processes
    assert member.processes == workers * (1 + actors) and member.total_mb > 40 * 1024, member
    with pytest.raises(ValueError, match=r"needs about \d+\.\d GB .* drop engine='member'"):
        check(exp.with_overrides({"engine": "member"}), "ray", cpus=2)


def test_cli_refuses_before_the_run_directory_exists(tmp_path):
    runs = tmp_path / "runs"
    res = run_cli("experiments/humanoid_fire.py", "--set", "engine=member", "--runs-dir", str(runs), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this run needs about") and "--no-fit-check" in err[0]
    assert not runs.exists()
