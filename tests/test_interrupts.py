"""Ctrl-C during a step that must finish as a whole (a native call, a checkpoint) is held until it is done,
unless pressed twice; a signal the process ignores stays ignored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from qcompress.interrupts import interrupts_deferred


def test_one_interrupt_waits_for_the_body_then_raises(capsys):
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred("the work"):
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("body ran to its end")
    assert finished == ["body ran to its end"]
    assert "stopping once the work is done" in capsys.readouterr().err


def test_sigterm_is_deferred_like_ctrl_c():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred("the work"):
            os.kill(os.getpid(), signal.SIGTERM)
            finished.append(True)
    assert finished == [True]


def test_a_second_interrupt_stops_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred("the work"):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(True)
    assert reached == []


def test_handlers_are_restored_and_a_quiet_body_raises_nothing():
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with interrupts_deferred("the work"):
        pass
    assert {number: signal.getsignal(number) for number in before} == before


def test_outside_the_main_thread_the_body_just_runs():
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(_run_in_context()))
    thread.start()
    thread.join()
    assert outcome == ["ran"]


def _run_in_context() -> str:
    with interrupts_deferred("the work"):
        return "ran"


def test_a_signal_the_process_ignores_stays_ignored():
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred("the work"):
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, ignored)
