"""One owner per SQLite store file in the service, whatever ``store_log`` (issue 16 item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.monitor.errors import StoreError
from service.monitor.stores.sqlite_store import SQLiteStore, store_lock_path
from service.monitor.wiring import open_store
from service.settings import Settings

IN_USE = r"prediction store .*p\.db \(lock p\.db\.lock\) is in use .* own state_dir"


def test_an_exclusive_handle_refuses_another_until_it_closes(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    owner = SQLiteStore(db, exclusive=True)
    with pytest.raises(StoreError, match=IN_USE):
        SQLiteStore(db, exclusive=True)
    reader = SQLiteStore(db)  # a plain handle (tests, tools) may still read the file
    assert len(reader) == 0
    reader.close()
    owner.close()
    SQLiteStore(db, exclusive=True).close()
    assert store_lock_path(db).exists()


def test_a_store_that_cannot_open_releases_its_lock(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    db.mkdir()  # a directory where the database belongs
    with pytest.raises(StoreError, match="cannot open prediction store"):
        SQLiteStore(db, exclusive=True)
    db.rmdir()
    SQLiteStore(db, exclusive=True).close()


@pytest.mark.parametrize(("first_log", "second_log"), [(True, False), (False, True), (False, False), (True, True)])
def test_the_service_store_owns_its_file_whatever_store_log(tmp_path: Path, first_log: bool, second_log: bool) -> None:
    def settings(log: bool) -> Settings:
        return Settings(models_dir=tmp_path, state_dir=tmp_path / "state", store_log=log)

    first = open_store(settings(first_log))
    with pytest.raises(StoreError, match="is in use by another store handle or process"):
        open_store(settings(second_log))
    first.close()
    open_store(settings(second_log)).close()
