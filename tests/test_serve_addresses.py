"""`stepviz serve --host 0.0.0.0` prints the machine's addresses beside its name: a student's laptop on the LAN
may not resolve the name."""

from __future__ import annotations

import ipaddress
import types

from stepviz.tui import serve


def test_the_addresses_are_the_machines_own_and_not_loopback():
    for address in serve.machine_addresses():
        parsed = ipaddress.ip_address(address)
        assert not parsed.is_loopback and parsed.version == 4


def test_serving_beyond_this_machine_prints_a_link_per_address(monkeypatch, capsys):
    import stepviz.tui.serve_guard as guard

    class Server:
        def __init__(self, *args, **kwargs):
            pass

        def serve(self):
            pass

    monkeypatch.setattr(guard, "GuardedServer", Server)
    monkeypatch.setattr(serve, "machine_addresses", lambda ipv6=False: ["192.0.2.7", "198.51.100.3"])
    args = types.SimpleNamespace(host="0.0.0.0", port=8766)
    settings = types.SimpleNamespace(title="guidance")
    assert serve.serve_pages(args, settings, "stepviz tui", "TOKEN", 4, loopback=False) == 0
    out = capsys.readouterr().out
    assert "http://192.0.2.7:8766/?token=TOKEN" in out and "http://198.51.100.3:8766/?token=TOKEN" in out
