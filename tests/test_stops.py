"""Stop requests reach the running job through its explicit registration (SLURM's USR2
watcher uses this path), and only while the job runs."""

from __future__ import annotations

import signal

from launcher import stops
from launcher.progress import Progress
from launcher.records import Records
from launcher.run_state import RunState
from launcher.stats import Stats


def _job(tmp_path) -> RunState:
    stats = Stats()
    return RunState(
        stats, Records(str(tmp_path)), Progress(stats, "off", 30.0, "test"), grace_s=5.0
    )


def test_a_request_stops_the_running_job_gracefully(tmp_path):
    job = _job(tmp_path)
    assert not stops.request(signal.SIGUSR2)  # nothing runs yet: nobody hears it
    with job:
        assert stops.request(signal.SIGUSR2)
        assert job.signal == signal.SIGUSR2 and job.state == "interrupted"
        assert 0 < job.time_left() <= 5.0
        stops.request(signal.SIGUSR2)  # a second request is not a second Ctrl-C
    assert not job.abort_reason
    assert not stops.request(signal.SIGUSR2)  # the ended job unregistered itself


def test_after_the_job_the_signal_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with _job(tmp_path):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
