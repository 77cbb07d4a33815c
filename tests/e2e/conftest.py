"""Fixtures of the vsmtpd end-to-end tests.

`daemon` is one vsmtpd with the default test configuration, shared by the
tests of a module; `module_daemons` and `daemons` make daemons with other
settings, for a module or for one test. Every daemon runs from a directory
under one workspace that the daemon's unprivileged user can traverse, and is
stopped (SIGTERM, then SIGKILL past a deadline) when its scope ends.
"""
import os

import pytest

import peers
import vsmtpd_e2e as e2e


@pytest.fixture(scope="session")
def workspace():
    ws = e2e.Workspace()
    yield ws
    if not os.environ.get("VSMTPD_E2E_KEEP"):
        ws.remove()


class DaemonFactory:
    def __init__(self, workspace, name):
        self.workspace = workspace
        self.name = name
        self.made = []

    def __call__(self, settings=None, start=True, addresses=None, label="", rules=None):
        d = e2e.Daemon(self.workspace.new_dir(self.name + label), settings, addresses, rules)
        self.made.append(d)
        if start:
            d.start()
        return d

    def stop_all(self):
        e2e.close_all_clients()
        for d in self.made:
            d.stop()


@pytest.fixture
def sinks(workspace, request):
    """Make Postfix smtp-sinks (peers.SmtpSink arguments); all stopped at the end."""
    made = []

    def make(**kw):
        sink = peers.SmtpSink(workspace.new_dir(f"{request.node.name}-sink"), **kw)
        made.append(sink)
        return sink.start()
    yield make
    for sink in made:
        sink.stop()


@pytest.fixture(scope="module")
def module_daemons(workspace, request):
    factory = DaemonFactory(workspace, request.module.__name__)
    yield factory
    factory.stop_all()


@pytest.fixture
def daemons(workspace, request):
    factory = DaemonFactory(workspace, request.node.name)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def daemon(module_daemons):
    """A running vsmtpd with the default test settings, one per module."""
    return module_daemons()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    e2e.close_all_clients()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, show the log of every daemon that was running."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for d in e2e.running_daemons():
            text = d.log()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            report.sections.append((f"vsmtpd log {d.log_path}", text))
