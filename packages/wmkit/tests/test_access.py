import socket

from wmkit.apps.play.access import is_loopback, page_url, split_host


def test_split_host_reads_names_addresses_and_ports():
    assert split_host("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert split_host("LocalHost") == ("localhost", None)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("[::ffff:127.0.0.1]:1") == ("127.0.0.1", 1)
    for bad in ["", "evil.example/@127.0.0.1", "a b:1", "127.0.0.1:port", "user@127.0.0.1"]:
        assert split_host(bad) is None


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org"]))


def test_page_url_carries_the_token():
    assert page_url("127.0.0.1", 8765) == "http://127.0.0.1:8765/"
    assert page_url("::1", 80) == "http://[::1]:80/"
    assert page_url("0.0.0.0", 1, "t") == f"http://{socket.gethostname()}:1/?token=t"
