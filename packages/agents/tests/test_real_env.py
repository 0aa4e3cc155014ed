"""``RealGymEnv``: terminations and time limits reach gymnasium as they should."""

import numpy as np

from wmkit.agents.real_env import RealGymEnv
from wmkit.agents.testing import SquareGoalEnv


class _EndsEarly(SquareGoalEnv):
    """Square world whose simulator ends episodes itself: a time limit at step 2 of seed 0,
    a termination at step 2 of any other seed."""

    def step(self, action):
        frame, reward, done = super().step(action)
        if self._t == 2:
            if self._seed == 0:
                self.truncated = True
            else:
                done = True
        return frame, reward, done

    def reset(self, seed):
        self._seed = seed
        return super().reset(seed)


def _run(env: RealGymEnv, seed: int) -> list[tuple[bool, bool]]:
    env.reset(seed=seed)
    flags = []
    while not (flags and any(flags[-1])):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        flags.append((terminated, truncated))
    return flags


def test_max_steps_truncates_and_never_terminates():
    env = RealGymEnv(SquareGoalEnv(16, continuous=True, max_steps=3))
    assert _run(env, 0) == [(False, False), (False, False), (False, True)]


def test_the_simulators_time_limit_truncates_and_its_done_terminates():
    env = RealGymEnv(_EndsEarly(16, continuous=True, max_steps=5))
    assert _run(env, 0) == [(False, False), (False, True)]
    assert _run(env, 1) == [(False, False), (True, False)]
