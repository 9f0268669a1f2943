"""Who the engines run as, who may read their keys, and the TLS front of a service bound beyond loopback."""

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.filter.stack import (
    ENGINE_USER,
    inference_compose,
    inference_docker_run,
    inference_key_owners,
    inference_proxy_config,
    inference_services_errors,
    inference_tls_files,
    inference_tls_names,
)

MODELS = [{"name": "gemma"}, {"name": "glm-awq"}]
SETTINGS = {"images": {"llamacpp": "llama:x", "vllm": "vllm:x"}, "models": MODELS, "models_dir": "/opt/gpufleet/models",
            "secrets_dir": "/opt/gpufleet/stack/secrets", "model_files": {"chat": "gemma.gguf", "lanes/a": "gemma.gguf"}}
CHAT = {"name": "chat", "model": "gemma", "port": 8080}
VLLM = {"name": "awq", "engine": "vllm", "model": "glm-awq", "port": 8000}
LANES = {"name": "lanes", "port": 8090, "lanes": [{"name": "a", "model": "gemma"}]}
SELF_SIGNED = dict(CHAT, bind_address="0.0.0.0", tls={"self_signed": True})
OWN_CERT = dict(CHAT, bind_address="10.0.0.5",
                tls={"cert": "/etc/ssl/llm.crt", "key": "/etc/ssl/private/llm.key", "ca": "/etc/ssl/corp-ca.pem"})


def render(*services, **settings):
    return inference_compose(list(services), dict(SETTINGS, **settings))["services"]


def test_llamacpp_engines_run_as_the_default_unprivileged_user():
    services = render(CHAT, LANES)
    assert services["chat"]["user"] == services["lanes"]["user"] == ENGINE_USER == "65532:65532"
    assert not ENGINE_USER.startswith("0:")


def test_user_of_a_service_or_of_the_role_wins():
    services = render(CHAT, dict(LANES, user="2000:2000"), engine_user="1500:1600")
    assert services["chat"]["user"] == "1500:1600"
    assert services["lanes"]["user"] == "2000:2000"


def test_vllm_runs_as_root():
    # vLLM's torch needs an account for the uid it runs as, and its caches live under /root.
    assert "user" not in render(VLLM)["awq"]


def test_key_file_belongs_to_the_engine_user_alone():
    owners = inference_key_owners([CHAT, dict(LANES, user="2000:2001"), VLLM,
                                   dict(CHAT, name="open", port=8081, api_key_required=False)], "65532:65532")
    assert owners == {
        "chat": {"owner": "65532", "group": "65532", "mode": "0400"},
        "lanes": {"owner": "2000", "group": "2001", "mode": "0400"},
        "awq": {"owner": "0", "group": "0", "mode": "0400"},
    }


def test_docker_run_lines_carry_the_user():
    script = inference_docker_run([CHAT, VLLM], SETTINGS)
    # The llama.cpp engine's line only: vLLM runs as root.
    assert script.count("--user 65532:65532") == 1
    assert script.index("--name gpufleet-chat-1") < script.index("--user 65532:65532") < script.index("--name gpufleet-awq-1")


@pytest.mark.parametrize("change, message", [
    ({"user": "llama"}, "gpufleet_services[0] (chat).user must be a numeric uid:gid such as 65532:65532 (got 'llama')"),
    ({"user": 65532}, "gpufleet_services[0] (chat).user must be a numeric uid:gid"),
    ({"engine": "vllm", "user": "1000:1000"}, "gpufleet_services[0] (chat).user is a llama.cpp setting"),
    ({"tls": True}, "gpufleet_services[0] (chat).tls must be a dict"),
    ({"tls": {"cert": "llm.crt", "key": "/k"}}, "gpufleet_services[0] (chat).tls.cert must be an absolute path"),
    ({"tls": {"cert": "/c"}}, "gpufleet_services[0] (chat).tls needs key (paths on the host) or self_signed: true"),
    ({"tls": {"self_signed": True, "key": "/k"}}, "gpufleet_services[0] (chat).tls.key is set with self_signed: true"),
    ({"tls": {"self_signed": "yes"}}, "gpufleet_services[0] (chat).tls.self_signed must be true or false"),
    ({"tls": {"self_signed": True, "names": "llm"}}, "gpufleet_services[0] (chat).tls.names must be a list"),
    ({"tls": {"self_signed": True, "names": ["a b"]}}, "gpufleet_services[0] (chat).tls.names must be a list"),
    ({"tls": {"cert": "/c", "key": "/k", "names": ["llm"]}}, "gpufleet_services[0] (chat).tls.names is for self_signed"),
    ({"tls": {"self_signed": True, "cert_file": "/c"}},
     "gpufleet_services[0] (chat).tls: unknown key 'cert_file' (did you mean 'cert'?)"),
    ({"tls": {"self_signed": True}, "proxy": False}, "gpufleet_services[0] (chat): tls is served by the proxy"),
])
def test_bad_user_and_tls_are_named(change, message):
    errors = inference_services_errors([dict(CHAT, **change)], MODELS)
    assert any(message in error for error in errors), errors


def test_good_tls_passes():
    assert inference_services_errors([SELF_SIGNED, dict(OWN_CERT, name="own", port=8443)], MODELS) == []


def test_tls_front_publishes_the_port_with_the_certificate():
    services = render(OWN_CERT, tls_checksums={"chat": "0123456789abcdef0123"})
    engine, proxy = services["chat"], services["chat-proxy"]
    assert "ports" not in engine
    assert proxy["ports"] == ["10.0.0.5:8080:8080"]
    assert proxy["volumes"][1:] == ["/etc/ssl/llm.crt:/etc/gpufleet/tls/server.crt:ro",
                                    "/etc/ssl/private/llm.key:/etc/gpufleet/tls/server.key:ro"]
    assert proxy["labels"]["org.gpufleet.tls"] == "certificate"
    # A renewed certificate changes the service, so Compose recreates the proxy.
    assert proxy["labels"]["org.gpufleet.tls-checksum"] == "0123456789abcdef"


def test_self_signed_certificate_lives_beside_the_secrets():
    proxy = render(SELF_SIGNED)["chat-proxy"]
    assert "/opt/gpufleet/stack/tls/chat.crt:/etc/gpufleet/tls/server.crt:ro" in proxy["volumes"]
    assert "/opt/gpufleet/stack/tls/chat.key:/etc/gpufleet/tls/server.key:ro" in proxy["volumes"]
    assert proxy["labels"]["org.gpufleet.tls"] == "self-signed"


def test_proxy_speaks_https_only_behind_a_tls_front():
    conf = inference_proxy_config(SELF_SIGNED, "k" * 32)
    assert "listen 8080 ssl;" in conf
    assert "listen 8080;" not in conf
    assert "ssl_certificate /etc/gpufleet/tls/server.crt;" in conf
    assert "ssl_certificate_key /etc/gpufleet/tls/server.key;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    # The key is still checked on every route (and on the 404 of the others).
    assert conf.count("if ($gpufleet_authorized = 0)") == conf.count("proxy_pass") + 1
    plain = inference_proxy_config(dict(CHAT, proxy=True), "k" * 32)
    assert "listen 8080;" in plain and "ssl" not in plain


def test_tls_files():
    assert inference_tls_files(SELF_SIGNED, "/opt/gpufleet/stack/tls") == {
        "cert": "/opt/gpufleet/stack/tls/chat.crt", "key": "/opt/gpufleet/stack/tls/chat.key",
        "ca": "/opt/gpufleet/stack/tls/chat.crt", "self_signed": True}
    assert inference_tls_files(CHAT, "/t") == {}
    assert inference_tls_files(OWN_CERT, "/t") == {
        "cert": "/etc/ssl/llm.crt", "key": "/etc/ssl/private/llm.key", "ca": "/etc/ssl/corp-ca.pem", "self_signed": False}


def test_self_signed_names_cover_the_host_and_loopback():
    service = dict(SELF_SIGNED, bind_address="192.168.1.20", tls={"self_signed": True, "names": ["LLM.lan", "10.1.1.1"]})
    names = inference_tls_names(service, ["gpu-01", "gpu-01.example.internal", "", "gpu-01"])
    assert names == ["DNS:llm.lan", "IP:10.1.1.1", "DNS:gpu-01", "DNS:gpu-01.example.internal", "IP:192.168.1.20",
                     "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    # Bound to every address: the host's names and loopback, not 0.0.0.0.
    assert "IP:0.0.0.0" not in inference_tls_names(SELF_SIGNED, ["gpu-01"])
