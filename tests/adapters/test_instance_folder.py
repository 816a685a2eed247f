"""The instance folder (the SQLite file, generated keys, the anchor file) does not depend on the folder a
command runs in: a reader who runs `creditctl` from another folder reaches the database ./scripts/serve made,
and no stray ./instance appears there."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.bootstrap import load_settings

CHECKOUT = Path(__file__).resolve().parents[2]  # this test's own checkout


class TestInstanceFolder:
    def test_the_default_is_the_checkouts_instance_folder_whatever_the_working_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        settings = load_settings({})
        assert settings.instance_path == CHECKOUT / "instance"
        assert settings.database_url == f"sqlite:///{CHECKOUT / 'instance' / 'creditctl.db'}"
        assert settings.audit_anchor == f"file:{CHECKOUT / 'instance' / 'audit-anchors.jsonl'}"
        assert not (tmp_path / "instance").exists()

    def test_the_checkout_is_the_folder_that_holds_the_project(self) -> None:
        from adapters.bootstrap import PROJECT_FOLDER

        assert PROJECT_FOLDER == CHECKOUT
        assert (PROJECT_FOLDER / "pyproject.toml").is_file() and (PROJECT_FOLDER / "adapters").is_dir()

    def test_installed_outside_a_checkout_it_is_a_per_user_folder(self, tmp_path: Path) -> None:
        from adapters.bootstrap import default_instance_path

        site_packages = tmp_path / "site-packages"  # no pyproject.toml beside the packages
        (site_packages / "adapters").mkdir(parents=True)
        home = tmp_path / "home"
        assert default_instance_path({"HOME": str(home)}, site_packages) == home / ".local/share/creditctl"
        data = tmp_path / "data"
        assert default_instance_path({"XDG_DATA_HOME": str(data)}, site_packages) == data / "creditctl"

    def test_creditctl_instance_path_still_decides_relative_to_the_working_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        assert load_settings({"CREDITCTL_INSTANCE_PATH": "here"}).instance_path == tmp_path / "here"
        assert load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path / "x")}).instance_path == tmp_path / "x"
