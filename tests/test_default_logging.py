"""A script or notebook that configured no logging sees the library's decisions once; one that
did (``logging.basicConfig``) sees them through its own handler, not twice."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    if sys.argv[1] == "configured":
        logging.basicConfig(level=logging.WARNING, format="ROOT %(message)s")
    import superconverge
    log = logging.getLogger("superconverge.tuning.recipe")
    log.info("tune: lr_bounds = 0.1")
    log.debug("not shown")
    if sys.argv[1] == "silenced":
        logging.getLogger("superconverge").setLevel(logging.WARNING)
        log.info("tune: weight_decay = 0.1")
    """
)


def run(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
    )
    return done.stderr


def test_an_unconfigured_script_sees_the_decisions_on_stderr():
    assert run("plain").splitlines() == ["tune: lr_bounds = 0.1"]


def test_a_configured_script_sees_them_once_through_its_own_handler():
    assert run("configured").splitlines() == ["ROOT tune: lr_bounds = 0.1"]


def test_the_library_logger_can_be_silenced():
    assert run("silenced").splitlines() == ["tune: lr_bounds = 0.1"]
