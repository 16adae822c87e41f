"""The fixtures reach a real PostgreSQL, sync and async."""

from nxdata import AsyncDatabase, Database


def test_sync_database_answers(db: Database) -> None:
    assert db.fetch_value("select 1 + 1") == 2


async def test_async_database_answers(adb: AsyncDatabase) -> None:
    assert await adb.fetch_value("select 40 + 2") == 42
