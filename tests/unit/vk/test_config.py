"""A VK community without a Callback API secret is a configuration error at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.vk import VkGroupSettings
from gateway.cli import main
from gateway.settings import SettingsError, load_settings

TOML = """
[[vk]]
group_id = 111
access_token = "t1"
confirmation_code = "c1"
secret = "s1"

[[vk]]
group_id = 222
access_token = "t2"
confirmation_code = "c2"
{secret_line}
"""


@pytest.mark.parametrize("secret_line", ["", 'secret = ""', 'secret = "   "'])
def test_settings_file_with_an_empty_vk_secret_fails_naming_the_community(
    tmp_path: Path, secret_line: str
) -> None:
    path = tmp_path / "crmhub.toml"
    path.write_text(TOML.format(secret_line=secret_line), encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    text = str(err.value)
    assert "vk.1" in text and "VK community 222" in text and "secret" in text
    assert "111" not in text


def test_environment_can_supply_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "crmhub.toml"
    path.write_text(TOML.format(secret_line=""), encoding="utf-8")
    settings = load_settings(path, environ={"CRMHUB_VK__1__SECRET": "from-env"})
    assert [g.secret for g in settings.vk] == ["s1", "from-env"]


def test_model_rejects_a_missing_secret() -> None:
    with pytest.raises(ValidationError, match="VK community 5: the Callback API secret"):
        VkGroupSettings(group_id=5, access_token="t", confirmation_code="c")
    assert VkGroupSettings(group_id=5, access_token="t", confirmation_code="c", secret="x")


def test_serve_refuses_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crmhub.toml"
    path.write_text(TOML.format(secret_line=""), encoding="utf-8")
    code = main(["--config", str(path), "serve", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "VK community 222" in err
