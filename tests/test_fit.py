"""A population that cannot fit the machine is refused before anything starts, with the numbers and the fix."""
import pytest

from conftest import ROOT, run_cli
from rlpop.fit import check, estimate
from rlpop.run import load_experiment


#: the paper's population with 16384-unit layers: about 13 GB of weights and Adam moments per member, 50 members
HUGE = {"agent.hparams.hidden": "(16384, 16384)"}


def test_the_papers_population_fits_and_a_much_larger_one_is_refused_with_the_fix():
    exp = load_experiment(ROOT / "experiments" / "humanoid_fire.py")
    batched = estimate(exp, "ray", cpus=2)
    assert batched.processes == 1 and batched.total_mb < 12 * 1024, batched
    workers = len(exp.build_strategy().layout())
    assert workers >= 50  # the paper's population, in one shard process
    huge = exp.with_overrides(HUGE)
    plan = estimate(huge, "ray", cpus=2)
    assert plan.processes == 1 and plan.total_mb > workers * 12 * 1024, plan
    with pytest.raises(ValueError, match=r"needs about \d+\.\d GB .* shrink the population"):
        check(huge, "ray", cpus=2)


def test_cli_refuses_before_the_run_directory_exists(tmp_path):
    runs = tmp_path / "runs"
    res = run_cli("experiments/humanoid_fire.py", "--set", f"agent.hparams.hidden={HUGE['agent.hparams.hidden']}",
                  "--runs-dir", str(runs), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this run needs about") and "--no-fit-check" in err[0]
    assert not runs.exists()
