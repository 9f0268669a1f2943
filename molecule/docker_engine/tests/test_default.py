"""What a user of the docker_engine role relies on, checked inside the converged test host."""

import json

import pytest

BASE_IMAGE = "gpufleet/debian:bookworm"


def test_engine_is_running_and_enabled(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled


def test_compose_v2_plugin_answers(host):
    out = host.check_output("docker compose version --short")
    assert out.lstrip("v").split(".")[0] == "2"


def test_compose_binary_is_the_published_one(host):
    plugin = host.file("/usr/local/lib/docker/cli-plugins/docker-compose")
    published = host.check_output("cut -d' ' -f1 /srv/release/docker-compose-linux-*.sha256")
    assert plugin.mode == 0o755
    assert plugin.sha256sum == published


def test_daemon_json_keeps_existing_keys_and_gains_the_roles(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    # Written by another tool before the role ran: must survive.
    assert config["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert config["log-opts"]["labels"] == "service"
    # The role's log rotation, merged into the same object.
    assert config["log-driver"] == "json-file"
    assert config["log-opts"]["max-size"] == "20m"
    assert config["log-opts"]["max-file"] == "3"
    # Removed through docker_engine_daemon_options (debug: null).
    assert "debug" not in config
    # On by default: containers outlive an engine restart.
    assert config["live-restore"] is True


def test_running_daemon_uses_the_merged_configuration(host):
    # The handler restarted dockerd: the running engine reports the new settings.
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert "nvidia" in info["Runtimes"]
    assert info["Debug"] is False


def test_user_can_use_the_engine_without_sudo(host):
    assert "docker" in host.user("ops").groups
    host.run_expect([0], "runuser -u ops -- docker info --format '{{.ServerVersion}}'")


@pytest.fixture(scope="module")
def base_image(host):
    host.run_expect([0], "docker load -i /srv/gpufleet-images/debian-bookworm.tar")
    return BASE_IMAGE


def test_container_runs_inside_the_host(host, base_image):
    out = host.check_output(f"docker run --rm {base_image} cat /etc/debian_version")
    assert out.startswith("12.")


def test_container_logs_rotate_with_the_configured_limits(host, base_image):
    name = "gpufleet-logcheck"
    host.run(f"docker rm -f {name}")
    host.run_expect([0], f"docker run -d --name {name} {base_image} sleep 60")
    try:
        log_config = json.loads(host.check_output(f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {name}"))
        assert log_config["Type"] == "json-file"
        assert log_config["Config"]["max-size"] == "20m"
    finally:
        host.run(f"docker rm -f {name}")


def test_containers_keep_running_through_an_engine_restart(host, base_image):
    # live-restore: an inference server started before a daemon.json change keeps serving through the restart.
    name = "gpufleet-live-restore"
    state = f"docker inspect --format '{{{{.State.Running}}}} {{{{.State.Pid}}}} {{{{.State.StartedAt}}}}' {name}"
    host.run(f"docker rm -f {name}")
    host.run_expect([0], f"docker run -d --name {name} {base_image} sleep 600")
    try:
        before = host.check_output(state)
        assert before.startswith("true ")
        host.run_expect([0], "systemctl restart docker")
        assert json.loads(host.check_output("docker info --format '{{json .LiveRestoreEnabled}}'")) is True
        assert host.check_output(state) == before
    finally:
        host.run(f"docker rm -f {name}")


def test_interrupted_dpkg_run_was_finished_before_apt_ran(host):
    # prepare.yml left a dpkg journal entry (hostname half-configured), which makes apt refuse to run.
    assert host.check_output("ls -A /var/lib/dpkg/updates/") == ""
    assert host.check_output("dpkg-query -W -f='${Status}' hostname") == "install ok installed"
    host.run_expect([0], "apt-get check")
