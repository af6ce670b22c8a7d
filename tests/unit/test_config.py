"""Settings: defaults, INI file, flags, and the errors an operator sees for bad values."""

from __future__ import annotations

import pytest

from yurthub import config, configfiles
from yurthub.errors import ConfigError


def write(tmp_path, text: str) -> str:
    p = tmp_path / "yurthub.conf"
    p.write_text(text)
    return str(p)


def test_defaults_follow_yurthub():
    cfg = config.load(None, {"node_name": "edge-1"})
    assert (cfg.bind_address, cfg.proxy_port, cfg.serve_port) == ("127.0.0.1", 10261, 10267)
    assert cfg.lb_mode == "rr"
    assert (cfg.heartbeat_interval_seconds, cfg.heartbeat_timeout_seconds,
            cfg.heartbeat_failed_retry, cfg.heartbeat_healthy_threshold) == (10, 2, 3, 2)
    assert cfg.threads == 256
    assert {"kubelet", "kube-proxy", "coredns", "flanneld"} <= cfg.effective_cache_agents


def test_flags_override_ini_which_overrides_defaults(tmp_path):
    path = write(tmp_path, "[yurthub]\nproxy_port = 20261\nlb_mode = priority\n")
    cfg = config.load(path, {"proxy_port": "30261"})
    assert cfg.proxy_port == 30261
    assert cfg.lb_mode == "priority"


def test_ini_accepts_dashed_keys_and_lists(tmp_path):
    path = write(tmp_path, "[yurthub]\nserver-addr = https://10.0.0.1:6443, 10.0.0.2:6443\n"
                           "cache_agents = calico,*\n")
    cfg = config.load(path)
    assert cfg.server_addr == ("https://10.0.0.1:6443", "https://10.0.0.2:6443")
    assert "*" in cfg.effective_cache_agents and "calico" in cfg.effective_cache_agents


@pytest.mark.parametrize("text, fragment", [
    ("[yurthub]\nprox_port = 1\n", "unknown key 'prox_port'"),
    ("[yurthub]\nproxy_port = 70000\n", "proxy_port = '70000': must be between 1 and 65535"),
    ("[yurthub]\nproxy_port = http\n", "proxy_port = 'http': not an integer"),
    ("[yurthub]\nlb_mode = random\n", "lb_mode = 'random': must be one of rr, priority"),
    ("[yurthub]\nserver_addr = ftp://x\n", "is not an http(s) URL"),
    ("[yurthub]\nbind_address = localhost\n", "not an IP address"),
    # pods get it as KUBERNETES_SERVICE_HOST and the kubernetes Service's clusterIP
    ("[yurthub]\nhub_serving_address = fe80::1%eth0\n", "with a zone pods cannot use"),
    ("[yurthub]\nhub_serving_address = 0.0.0.0\n", "an address pods can reach"),
    # the same link-local address is on every link: the kernel binds none without its zone
    ("[yurthub]\nbind_address = fe80::1\nallow_non_loopback_bind = true\n",
     "a link-local address needs its interface, as in fe80::1%eth0"),
    ("[yurthub]\ndisk_cache_path = relative/dir\n", "must be an absolute path"),
    ("[other]\nx = 1\n", "unknown section [other]"),
    ("proxy_port = 1\n", "not a valid INI file"),
    ("[yurthub]\nnode_name = Not_A_Name\n", "not a valid node name"),
    ("[yurthub]\nproxy_port = 10267\n", "proxy_port and serve_port are both 10267"),
    ("[yurthub]\npool_scope_resources = v1/services\n", "is not group/version/resource"),
    ("[yurthub]\npool_scope_resources = /v1/widgets\n", "'/v1/widgets' is not a built-in"),
])
def test_bad_ini_names_file_key_and_value(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert fragment in str(e.value)
    assert path in str(e.value) or "serve_port" in str(e.value)


@pytest.mark.parametrize("value, shown", [
    ("https://admin:s3cret@10.0.0.1:6443", "'https://(user info not shown)@10.0.0.1:6443'"),
    ("https://10.0.0.1:6443,admin:s3cret@10.0.0.2", "'(user info not shown)@10.0.0.2'"),
    ("https://10.0.0.1:6443/?token=s3cret", "'https://10.0.0.1:6443/?(query not shown)'"),
])
def test_a_refused_server_addr_keeps_its_credentials_out_of_the_message(tmp_path, value,
                                                                        shown):
    # The message goes to stderr, which is the service's journal.
    for source in ({"server_addr": value}, None):
        path = None if source else write(tmp_path, f"[yurthub]\nserver_addr = {value}\n")
        with pytest.raises(ConfigError) as e:
            config.load(path, source)
        assert "s3cret" not in str(e.value)
        assert f"{shown} must not carry a query, fragment or user info" in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(str(tmp_path / "nope.conf"))


def test_bad_flag_value_names_the_flag():
    with pytest.raises(ConfigError, match=r"--heartbeat-interval-seconds: .*'0'"):
        config.load(None, {"heartbeat_interval_seconds": "0"})


def test_pool_scope_resources_default_and_empty():
    assert config.load(None).pool_scope_resources == (
        "/v1/services", "discovery.k8s.io/v1/endpointslices")
    assert config.load(None, {"pool_scope_resources": ""}).pool_scope_resources == ()
    assert config.load(None, {"pool_scope_resources": "/v1/services,/v1/services"}
                       ).pool_scope_resources == ("/v1/services",)


def test_size_settings_accept_units():
    cfg = config.load(None, {"cache_tee_budget": "16Mi"})
    assert cfg.cache_tee_budget == 16 * 2**20


def test_node_name_defaults_to_host_name():
    assert config.load().node_name


def test_a_key_set_twice_under_both_spellings_is_refused(tmp_path):
    # was: the last one silently won, while the same spelling twice is refused
    path = write(tmp_path, "[yurthub]\nproxy-port = 20261\nproxy_port = 30261\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value) == (f"{path}: proxy_port is set twice in [yurthub] (as 'proxy-port' "
                            "and 'proxy_port')")


def test_check_files_reports_unreadable_credentials(tmp_path):
    cfg = config.load(None, {"ca_file": str(tmp_path / "missing.crt"),
                             "disk_cache_path": str(tmp_path / "cache")})
    with pytest.raises(ConfigError, match=r"ca_file = .*does not exist"):
        configfiles.check_files(cfg)


@pytest.mark.parametrize("name", ["token_file", "ca_file", "kubeconfig"])
def test_check_files_reports_a_directory_given_as_a_file(tmp_path, name):
    # A directory is readable, but serve would run without the credentials it names.
    cfg = config.load(None, {name: str(tmp_path), "disk_cache_path": str(tmp_path / "cache")})
    with pytest.raises(ConfigError, match=f"{name} = .*: is a directory, not a file"):
        configfiles.check_files(cfg)


def test_check_files_reports_cache_path_under_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    cfg = config.load(None, {"disk_cache_path": str(f / "cache")})
    with pytest.raises(ConfigError, match="is not a directory"):
        configfiles.check_files(cfg)


def test_default_ini_loads_back_to_the_defaults(tmp_path):
    text = config.default_ini()
    # Uncomment every key: the shipped file with all defaults spelled out must load unchanged.
    uncommented = "\n".join(line[1:] if line.startswith("#") and " = " in line else line
                            for line in text.splitlines())
    path = write(tmp_path, uncommented)
    assert config.load(path, {"node_name": "n"}) == config.load(None, {"node_name": "n"})
    for f in config.settings():
        assert f"#{f.name} =" in text


@pytest.mark.parametrize("address", ["0.0.0.0", "10.0.0.5", "::", "fd00::1", "169.254.2.1"])
def test_a_bind_address_beyond_loopback_is_refused_by_default(address):
    with pytest.raises(ConfigError) as e:
        config.load(None, {"node_name": "n", "bind_address": address})
    assert f"bind_address = {address!r} is not a loopback address" in str(e.value)
    assert "allow_non_loopback_bind" in str(e.value)


@pytest.mark.parametrize("address, plain", [
    ("0.0.0.0", "127.0.0.1"), ("10.0.0.5", "127.0.0.1"), ("::", "::1"), ("fd00::1", "::1"),
    ("127.0.0.1", "127.0.0.1"), ("127.0.0.53", "127.0.0.53"), ("::1", "::1"),
])
def test_accepted_non_loopback_addresses_never_reach_the_plain_ports(address, plain):
    cfg = config.load(None, {"node_name": "n", "bind_address": address,
                             "allow_non_loopback_bind": "true"})
    assert cfg.plain_bind_address == plain
    assert cfg.secure_bind_address == address


def test_the_plain_ports_listen_on_loopback_whatever_the_settings():
    from yurthub.service import _settings
    cfg = config.load(None, {"node_name": "n", "bind_address": "0.0.0.0",
                             "allow_non_loopback_bind": "true", "secure_proxy_port": "0"})
    assert _settings(cfg)["bind"] == [f"127.0.0.1:{cfg.proxy_port}",
                                      f"127.0.0.1:{cfg.serve_port}"]


def test_the_tls_port_listens_on_the_serving_address_and_a_non_loopback_bind_address():
    import socket

    from tests.fixtures import free_port
    from yurthub.service import _settings
    proxy, serve, tls = free_port(), free_port(), free_port()
    # 192.0.2.10 (TEST-NET-1) needs not exist: the TLS port binds with IP_FREEBIND
    cfg = config.load(None, {"node_name": "n", "bind_address": "192.0.2.10",
                             "allow_non_loopback_bind": "true", "proxy_port": str(proxy),
                             "serve_port": str(serve), "secure_proxy_port": str(tls),
                             "hub_serving_address": "127.0.0.1"})
    binds = _settings(cfg)["bind"]
    socks = [socket.socket(fileno=int(b.removeprefix("fd://"))) for b in binds]
    try:
        assert [s.getsockname() for s in socks] == [
            ("127.0.0.1", proxy), ("127.0.0.1", serve), ("127.0.0.1", tls), ("192.0.2.10", tls)]
    finally:
        for s in socks:
            s.close()
    wildcard = config.load(None, {"node_name": "n", "bind_address": "::",
                                  "allow_non_loopback_bind": "true"})
    assert wildcard.secure_addresses == ("::",)  # the serving address is one of them


def test_a_link_local_bind_address_with_its_zone_is_listened_on_that_link():
    # The settings took fe80::1%lo, then the start stopped with "cannot listen on
    # [fe80::1%lo]:...: Invalid argument": bind((host, port)) dropped the zone.
    import socket

    from tests.fixtures import free_port
    from yurthub.service import _settings
    tls = free_port()
    cfg = config.load(None, {"node_name": "n", "bind_address": "fe80::1%lo",
                             "allow_non_loopback_bind": "true", "proxy_port": str(free_port()),
                             "serve_port": str(free_port()), "secure_proxy_port": str(tls),
                             "hub_serving_address": "127.0.0.1"})
    socks = [socket.socket(fileno=int(b.removeprefix("fd://")))
             for b in _settings(cfg)["bind"]]
    try:
        assert socks[-1].getsockname() == ("fe80::1", tls, 0, socket.if_nametoindex("lo"))
    finally:
        for s in socks:
            s.close()


def test_an_ipv6_serving_address_the_node_has_not_yet_is_listened_on():
    # An IPv6 hub_serving_address (a dummy interface the operator adds, or adds later)
    # binds with IP_FREEBIND as an IPv4 one does; the start did not refuse it.
    import socket

    from tests.fixtures import free_port
    from yurthub.service import _settings
    tls = free_port()
    cfg = config.load(None, {"node_name": "n", "proxy_port": str(free_port()),
                             "serve_port": str(free_port()), "secure_proxy_port": str(tls),
                             "hub_serving_address": "2001:db8::10"})  # documentation prefix
    socks = [socket.socket(fileno=int(b.removeprefix("fd://")))
             for b in _settings(cfg)["bind"]]
    try:
        assert socks[-1].getsockname()[:2] == ("2001:db8::10", tls)
    finally:
        for s in socks:
            s.close()
    assert config.load(None, {"node_name": "n"}).secure_addresses == ("169.254.2.1",)


def test_quota_settings():
    cfg = config.load(None, {"node_name": "n", "cache_quota": "2Gi",
                             "cache_component_quota": "100Mi", "cache_max_collections": "50"})
    assert (cfg.cache_quota, cfg.cache_component_quota, cfg.cache_max_collections) == (
        2 << 30, 100 << 20, 50)
    with pytest.raises(ConfigError, match="at least 1Mi"):
        config.load(None, {"node_name": "n", "cache_quota": "1000"})


@pytest.mark.parametrize("cache, root, words", [
    ("/srv/hub", "/srv/hub", "the cache and the hub's identity cannot share a directory"),
    ("/srv/hub/", "/srv/hub", "the cache and the hub's identity cannot share a directory"),
    ("/srv/cache", "/srv/cache/id", "root_dir is inside the cache"),
    ("/srv/hub/pki/cache", "/srv/hub", "the cache is inside root_dir's pki"),
])
def test_a_cache_mixed_with_the_hubs_identity_is_refused_at_once(cache, root, words):
    # was: accepted by check-config; the hub then wrote its bootstrap files and pki/ there,
    # the cache refused the directory it no longer found empty, and the worker exited 3
    # (not 78), which systemd restarts forever
    with pytest.raises(ConfigError) as e:
        config.load(None, {"disk_cache_path": cache, "root_dir": root})
    assert str(e.value) == (f"command line: disk_cache_path = {cache.rstrip('/')!r} and "
                            f"root_dir = {root!r}: {words}")


@pytest.mark.parametrize("cache, root", [
    ("/var/lib/yurthub/cache", "/var/lib/yurthub"),   # the default layout
    ("/var/cache/yurthub", "/var/lib/yurthub"),
    ("/srv/hub-cache", "/srv/hub"),
])
def test_a_cache_beside_or_below_root_dir_is_accepted(cache, root):
    cfg = config.load(None, {"disk_cache_path": cache, "root_dir": root})
    assert (cfg.disk_cache_path, cfg.root_dir) == (cache, root)
