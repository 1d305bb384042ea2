"""What the client scripts share: checks that stop at the first failure, refusals expected as a
given hvac exception, and the closing line."""
import sys
from importlib.metadata import version

checks = 0


def check(condition, what):
    """Counts a check; exits non-zero, saying which, if it failed."""
    global checks
    if not condition:
        sys.exit(f"hvac check failed: {what}")
    checks += 1


def raises(kind, call, what):
    """Runs call, which must raise kind; returns the exception."""
    try:
        call()
    except kind as e:
        check(True, what)
        return e
    sys.exit(f"hvac check failed: {what} did not raise {kind.__name__}")


def done():
    """The closing line the test prints."""
    print(f"hvac {version('hvac')}: {checks} checks passed")
