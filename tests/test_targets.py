"""qcompress.targets: one answer to "run, artifact or model?" for every command."""

from __future__ import annotations

from qcompress.targets import ARTIFACT_MANIFEST, RUN_HEADER, target_kind


def test_a_run_an_artifact_and_anything_else(tmp_path):
    run, artifact, both, plain = (tmp_path / name for name in ("run", "artifact", "both", "plain"))
    for folder in (run, artifact, both, plain):
        folder.mkdir()
    (run / RUN_HEADER).write_text("{}")
    (artifact / ARTIFACT_MANIFEST).write_text("{}")
    (both / RUN_HEADER).write_text("{}")
    (both / ARTIFACT_MANIFEST).write_text("{}")
    (plain / "config.json").write_text("{}")
    assert [target_kind(path) for path in (run, artifact, both, plain)] == ["run", "artifact", "run", "model"]
    assert target_kind("smollm2-135m") == "model" and target_kind(str(tmp_path / "absent")) == "model"
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / RUN_HEADER).mkdir()  # a folder of that name is not a run header
    assert target_kind(tmp_path / "file") == "model"
