"""The started heap goes out of the garbage collector's full collections."""

import gc

import pytest

from opora_shared import service


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_freeze_heap_moves_what_is_alive_to_the_permanent_generation(unfrozen):
    kept = [{"n": n} for n in range(1000)]
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    service.freeze_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(kept[0] is o for o in gc.get_objects())  # no longer in any generation


def test_every_service_main_freezes_once_started(monkeypatch, unfrozen):
    hooks = []

    class App:
        def after_startup(self, hook):
            hooks.append(hook)

        async def run(self):
            for hook in hooks:
                hook()

    class Settings:
        log_level, metrics_host, metrics_port = "INFO", "127.0.0.1", 0

    def create_app(settings, *, registry):
        assert isinstance(settings, Settings)
        assert registry is not None
        return App()

    monkeypatch.setattr(service, "serve_metrics", lambda *_: None)
    monkeypatch.setattr(service, "setup_logging", lambda *_, **__: None)
    gc.unfreeze()
    service.main("x", Settings, create_app)
    assert hooks == [service.freeze_heap]
    assert gc.get_freeze_count() > 0
