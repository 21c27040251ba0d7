"""Envs left open are closed at exit without EGL errors, also when both back-ends are mixed."""

import subprocess
import sys

import pytest

SCRIPT = """
import envs
made = [envs.make(name) for name in ("reach", "robosuite_lift", "push")]  # robosuite's display after ours
for env in made:
    env.reset(seed=0)
    env.step(env.action_space.sample())
print("made")
"""


@pytest.mark.robosuite
def test_unclosed_envs_exit_cleanly() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "made" in done.stdout
    assert "Exception ignored" not in done.stderr and "EGLError" not in done.stderr, done.stderr
