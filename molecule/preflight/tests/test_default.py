"""preflight after converge, idempotence and check mode: it read the host and left it as it was."""

# Written by the system, not by Ansible tasks: journals, systemd's state, apt's caches.
NOISE = ("/var/log/", "/var/lib/systemd/", "/var/cache/", "/var/lib/apt/", "/var/lib/docker/")


def test_no_deployment_directory_was_created(host):
    assert not host.file("/opt/gpufleet").exists


def test_no_file_was_written_after_prepare(host):
    # Every converge play (failed checks included) ran after this marker; none may leave a file behind.
    written = host.check_output(
        "find / -xdev -type f -newer /srv/preflight-prepared -not -path '/proc/*' -print"
    ).splitlines()
    written = [path for path in written if not path.startswith(NOISE) and "/.ansible/" not in path]
    assert written == []


def test_reboot_marker_is_gone(host):
    assert not host.file("/var/run/reboot-required").exists
    assert not host.file("/var/run/reboot-required.pkgs").exists


def test_verified_model_record_is_untouched(host):
    assert host.run("sha256sum --check --status /srv/preflight-record.sha256").rc == 0


def test_port_holder_still_serves(host):
    assert host.service("preflight-port-holder").is_running
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18090/") == "200"


def test_own_stack_container_still_publishes_its_port(host):
    state = host.check_output("docker inspect --format '{{.State.Running}}' gpufleet-chat-small-1")
    assert state == "true"
    assert host.socket("tcp://127.0.0.1:18091").is_listening
