"""Issue 10 item 16: the call keeps MixMonitor's real file, read from the PBX's events
(recorded from the real Asterisk: ``g_inbound_recorded``), never a guess."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from connectors.asterisk import filter_expressions
from connectors.asterisk.config import DEFAULT_EVENTS
from connectors.asterisk.dry_run import derive_updates
from connectors.asterisk.normalize import to_event
from connectors.asterisk.tracking import CallTracker
from gateway.api.recordings import content_type, resolve_recording
from tests.support.ami_server import load_transcript
from tests.support.ami_truth import AMI_FIXTURES

G_FILE = "/tmp/callsrec/ast/var/spool/asterisk/monitor/1796293038.0.wav"
FREEPBX = (
    "/var/spool/asterisk/monitor/2026/12/03/"
    "in-74950000101-74951234567-20261203-101703-1795839552.3.wav"
)


def _ended(name: str, template: str | None = None) -> dict[str, Any]:
    data = (AMI_FIXTURES / name).read_bytes()
    ups = derive_updates(data, CallTracker(["from-pstn"], ["PJSIP/trunk-*"]))
    events = [to_event(u, "office", recording_url_template=template) for u in ups]
    assert events[-1].kind.value == "call_ended"
    return dict(events[-1].meta)


def test_mixmonitor_file_from_the_real_pbx() -> None:
    meta = _ended("g_inbound_recorded.ami", "https://pbx.example.ru/rec/{basename}")
    assert meta["outcome"] == "answered" and meta["answered_by"] == "101"
    assert meta["recording_file"] == G_FILE
    assert meta["recording_url"] == "https://pbx.example.ru/rec/1796293038.0.wav"


def test_narrow_ami_user_sees_only_that_a_recording_started() -> None:
    """``crmlite`` has no ``dialplan`` read class: only ``MixMonitorStart``, no file name.
    A template naming the file cannot be filled; one built from ids can."""
    meta = _ended("g_inbound_recorded.crmlite.ami", "https://pbx/rec/{basename}")
    assert meta["recording_file"] is None and meta["recording_url"] is None
    meta = _ended("g_inbound_recorded.crmlite.ami", "https://pbx/rec/{date}/{uniqueid}.wav")
    assert meta["recording_url"].endswith("/1796293038.0.wav")


@pytest.mark.parametrize(
    "name",
    ["a_inbound_answered.ami", "d_click2call_answered.ami", "c_inbound_queue_second_member.ami"],
)
def test_answered_call_without_mixmonitor_has_no_recording(name: str) -> None:
    meta = _ended(name, "https://pbx/rec/{linkedid}.wav")
    assert meta["outcome"] == "answered"
    assert meta["recording_url"] is None and meta["recording_file"] is None


def _with(extra: list[dict[str, str]], at_event: str = "DialBegin") -> list[CallUpdateLike]:
    """Recording ``a`` with ``extra`` messages on the client's leg just before ``at_event``."""
    script = [m for _, m in load_transcript(AMI_FIXTURES / "a_inbound_answered.ami")]
    i = next(k for k, m in enumerate(script) if m.get("Event") == at_event)
    leg = _first_leg(script)
    script[i:i] = [{**leg, **m} for m in extra]
    tracker = CallTracker(["from-pstn"], ["PJSIP/trunk-*"])
    out: list[Any] = []
    for n, m in enumerate(script):
        out.extend(tracker.handle(m, 1000.0 + n))
    out.extend(tracker.flush())
    return out


CallUpdateLike = Any


def _first_leg(script: list[dict[str, str]]) -> dict[str, str]:
    first = next(m for m in script if m.get("Event") == "Newchannel")
    return {k: first[k] for k in ("Channel", "Uniqueid", "Linkedid")}


def test_freepbx_naming_from_varset_and_from_newexten() -> None:
    template = "https://pbx/rec/{year}/{month}/{day}/{basename}?f={filename}"
    by_var = _with([{"Event": "VarSet", "Variable": "MIXMONITOR_FILENAME", "Value": FREEPBX}])
    by_app = _with(
        [
            {
                "Event": "Newexten",
                "Application": "MixMonitor",
                "AppData": f"{FREEPBX},abi(LOCAL_MIXMON_ID),",
            }
        ]
    )
    for ups in (by_var, by_app):
        meta = to_event(ups[-1], "office", recording_url_template=template).meta
        assert meta["recording_file"] == FREEPBX
        assert (
            meta["recording_url"]
            .split("?")[0]
            .endswith("/in-74950000101-74951234567-20261203-101703-1795839552.3.wav")
        )
        assert meta["recording_url"].endswith(f"?f={FREEPBX}")


def test_channelvars_and_other_applications() -> None:
    ups = _with(
        [
            {"Event": "Newexten", "Application": "Set", "AppData": "X=1"},
            {
                "Event": "Newstate",
                "ChannelStateDesc": "Ring",
                "ChanVariable": f"MIXMONITOR_FILENAME={FREEPBX}",
            },
        ]
    )
    assert to_event(ups[-1], "office").meta["recording_file"] == FREEPBX
    plain = _with([{"Event": "Newexten", "Application": "Set", "AppData": "X=1"}])
    assert to_event(plain[-1], "office").meta["recording_file"] is None


def test_missed_call_keeps_no_recording_even_if_mixmonitor_ran() -> None:
    script = [m for _, m in load_transcript(AMI_FIXTURES / "b_inbound_missed_noanswer.ami")]
    leg = _first_leg(script)
    script.insert(
        2, {**leg, "Event": "VarSet", "Variable": "MIXMONITOR_FILENAME", "Value": FREEPBX}
    )
    tracker = CallTracker(["from-pstn"], ["PJSIP/trunk-*"])
    ups = [u for n, m in enumerate(script) for u in tracker.handle(m, 1000.0 + n)]
    ups += tracker.flush()
    meta = to_event(ups[-1], "office", recording_url_template="https://x/{basename}").meta
    assert meta["outcome"] == "missed"
    assert meta["recording_file"] is None and meta["recording_url"] is None


def test_filter_lets_the_recording_events_through() -> None:
    exprs = filter_expressions(list(DEFAULT_EVENTS))
    assert "Variable: MIXMONITOR_FILENAME" in exprs and "Application: MixMonitor" in exprs
    assert "MixMonitorStart" in exprs[0]
    assert {"VarSet", "Newexten", "MixMonitorStart"} <= CallTracker().wanted


def test_resolve_recording_inside_the_directory_only(tmp_path: Path) -> None:
    root = tmp_path / "monitor"
    (root / "2026" / "12" / "03").mkdir(parents=True)
    wav = root / "2026" / "12" / "03" / "in-1.wav"
    wav.write_bytes(b"RIFF")
    (root / "flat.wav").write_bytes(b"RIFF")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"nope")
    os.symlink(secret, root / "link.wav")
    # the PBX's own absolute path, mapped onto the local directory by its tail
    assert resolve_recording(str(root), "/var/spool/asterisk/monitor/2026/12/03/in-1.wav") == wav
    assert resolve_recording(str(root), "/elsewhere/flat.wav") == root / "flat.wav"
    assert resolve_recording(str(root), "flat.wav") == root / "flat.wav"
    assert resolve_recording(str(root), str(wav)) == wav
    # traversal, links out of the directory, directories, nothing
    assert resolve_recording(str(root), "../secret.wav") is None
    assert resolve_recording(str(root), "/x/../../secret.wav") is None
    assert resolve_recording(str(root), "link.wav") is None
    assert resolve_recording(str(root), "2026/12") is None
    assert resolve_recording(str(root), "") is None
    assert resolve_recording(str(root), "missing.wav") is None


def test_content_types() -> None:
    assert content_type("a.wav") == "audio/wav" and content_type("b.WAV") == "audio/wav"
    assert content_type("c.mp3") == "audio/mpeg" and content_type("d.gsm") == "audio/x-gsm"
    assert content_type("e.unknown-ext") == "application/octet-stream"
