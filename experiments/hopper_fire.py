"""FIRE PBT over PPO on Hopper-v5: 16 workers = two sub-populations of 6 members + 4 evaluators.

Same env, PPO settings, search space (experiments/hopper_pbt.py: lr, clip, GAE lambda, epochs, minibatch
size) and budget per worker (1,024,000 actor steps) as hopper_pbt.py and hopper_rs.py. The FIRE
intervals keep the paper's ratios to the budget (section 4.2: ready / evaluator checks every 1/100 of it,
max_eval_steps 1/10, P2's min_steps_before_eval 1/6, rounded to whole 2048-step PPO rollouts), so Q is
measured every ready interval (10,240 steps, 5 rollouts; hopper_pbt.py: every 20,480). hopper_pbt.py's own
ready interval is 1/10 of the budget; benchmarks/reproduce_rl.py runs all three methods with the same ready
interval (--set).

The scaled study (benchmarks/reproduce_rl.py --budget 25600; 16 workers, 25,600 steps per worker, ready = one
512-step rollout, 10 ready intervals of max_eval_steps, P2 evaluated from ~1/6 of the budget; epochs and
minibatch sizes narrowed for every method, see that script) runs, per method and seed, e.g.:

    rlpop run experiments/hopper_fire.py --set total_steps=25600 --set eval_steps=512 \
        --set agent.hparams.rollout_steps=512 --set strategy.ready_steps=512 --set strategy.max_eval_steps=5120 \
        --set "strategy.min_steps_before_eval=(4608,)" --set space.epochs.hi=6 --set "space.epochs.bounds=(1, 10)" \
        --set "space.minibatch_size.values=(128, 256, 512)"
"""
from pathlib import Path

from rlpop.experiment import FIRE, Experiment
from rlpop.run import load_experiment

pbt = load_experiment(Path(__file__).with_name("hopper_pbt.py"))

experiment = Experiment(
    name="hopper_fire",
    env=pbt.env,
    agent=pbt.agent,
    space=pbt.space,
    strategy=FIRE(subpops=2, subpop_size=6, evaluators=4, ready_steps=10_240, max_eval_steps=102_400,
                  min_steps_before_eval=(172_032,), p_stat=0.01),
    total_steps=pbt.total_steps,
    eval_steps=10_240,
)
