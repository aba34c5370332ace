"""A node whose server secret cannot read the stored data refuses to start,
and says which setting to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete

from soundforge.config import Settings
from soundforge.db import Database, upgrade_database
from soundforge.db.accounts import create_user, get_lalalai_key, set_lalalai_key
from soundforge.db.models import InstallationSecret
from soundforge.db.secret_check import SecretMismatchError

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_secret_is_refused_naming_the_setting(tmp_path: Path) -> None:
    upgrade_database(Settings(data_dir=tmp_path, secret_key="the installation's secret"))
    upgrade_database(Settings(data_dir=tmp_path, secret_key="the installation's secret"))
    with pytest.raises(SecretMismatchError) as caught:
        upgrade_database(Settings(data_dir=tmp_path, secret_key="a node's own secret"))
    assert "SOUNDFORGE_SECRET_KEY" in caught.value.message
    assert caught.value.code == "secret_error"


def test_a_generated_secret_file_on_a_new_node_is_refused(tmp_path: Path) -> None:
    shared_db = f"sqlite:///{tmp_path / 'shared.db'}"
    upgrade_database(Settings(data_dir=tmp_path / "node1", database_url=shared_db))
    with pytest.raises(SecretMismatchError) as caught:  # node 2 generated its own file
        upgrade_database(Settings(data_dir=tmp_path / "node2", database_url=shared_db))
    assert "secret_key" in caught.value.message and "SOUNDFORGE_SECRET_KEY" in caught.value.message


def test_a_database_from_before_the_check_is_judged_by_its_stored_keys(tmp_path: Path) -> None:
    right = Settings(data_dir=tmp_path, secret_key="right")
    upgrade_database(right)
    db = Database(right)
    try:
        with db.transaction() as session:
            user = create_user(session, "a@example.com", "long enough password")
            session.flush()
            set_lalalai_key(right, user.settings, "key-123456")
            session.execute(delete(InstallationSecret))  # as before revision 0004
        with pytest.raises(SecretMismatchError):
            upgrade_database(Settings(data_dir=tmp_path, secret_key="wrong"), db)
        upgrade_database(right, db)  # the right one is accepted, and recorded
        with pytest.raises(SecretMismatchError):
            upgrade_database(Settings(data_dir=tmp_path, secret_key="wrong"), db)
        with db.session() as session:
            from soundforge.db.models import UserSettings
            row = session.query(UserSettings).one()
            assert get_lalalai_key(right, row) == "key-123456"
    finally:
        db.dispose()


@pytest.mark.parametrize("command", [["serve", "--no-worker", "--port", "1"], ["worker"]])
def test_the_commands_refuse_to_start_with_a_clear_message(
    tmp_path: Path, command: list[str]
) -> None:
    upgrade_database(Settings(data_dir=tmp_path, secret_key="the installation's secret"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDFORGE_")}
    env.update({"SOUNDFORGE_DATA_DIR": str(tmp_path), "SOUNDFORGE_SECRET_KEY": "another"})
    result = subprocess.run([sys.executable, "-m", "soundforge", *command], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "SOUNDFORGE_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
