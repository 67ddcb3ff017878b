"""Pure parts of confinement and teardown: the sandbox's command line, records read defensively, capped logs."""

from __future__ import annotations

import json
from pathlib import Path

from grader.faults import failed_migration
from grader.pipeline import copy_capped
from grader.processes import _read_owner, _read_records
from grader.runtime import _files_then_dns
from grader.sandbox import Confinement, SandboxMode, python_paths


def test_a_bwrap_command_hides_tmp_and_the_grader_and_shows_only_what_the_command_needs(tmp_path: Path):
    state = Path("/etc")  # any folder outside /tmp: the grader's state folder, say
    confinement = Confinement(SandboxMode("bwrap", "test", "/usr/bin/bwrap"), app_uid=61234,
                              hidden=(state, tmp_path / "not-there", tmp_path))
    run = Path("/tmp/nexus-labs-runs/run-x")
    command = confinement.wrap(["python", "-m", "gunicorn"], cwd=run / "app",
                               readable=(run / "app", run / "overlay"), writable=(run / "home",))
    text = " ".join(command)
    assert command[:5] == ["/usr/bin/bwrap", "--ro-bind", "/", "/", "--dev"]
    assert "--perms 1777 --tmpfs /tmp" in text
    assert f"--ro-bind {run / 'app'} {run / 'app'}" in text and f"--bind {run / 'home'} {run / 'home'}" in text
    assert "--perms 0755 --dir /tmp/nexus-labs-runs --perms 0755 --dir /tmp/nexus-labs-runs/run-x" in text
    assert "--unshare-pid" in command and "--die-with-parent" in command and "--new-session" in command
    assert [Path(part).name if part.startswith("/") else part for part in command[command.index("--") + 1:]] == [
        "setpriv", "--reuid=61234", "--regid=61234", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
        "--no-new-privs", "env", "-u", "PWD", "python", "-m", "gunicorn"]
    assert f"--perms 0755 --tmpfs {state}" in text  # the grader's state: an empty folder to the command
    assert "not-there" not in text and f"--tmpfs {tmp_path} " not in text  # already under /tmp's mask
    for path in python_paths():  # the interpreter stays visible even where a mask covers it
        assert path.is_dir()


def test_a_bwrap_command_sees_the_run_s_own_hosts_file_as_etc_hosts():
    hosts = Path("/tmp/nexus-labs-runs/run-x/hosts")
    confinement = Confinement(SandboxMode("bwrap", "test", "/usr/bin/bwrap"), app_uid=None, hosts=hosts)
    command = confinement.wrap(["python"], cwd=Path("/"), readable=(), writable=())
    assert f"--ro-bind {hosts} /etc/hosts --chdir" in " ".join(command)
    assert "/etc/hosts" not in " ".join(Confinement(SandboxMode("bwrap", "test", "/usr/bin/bwrap"), app_uid=None)
                                        .wrap(["python"], cwd=Path("/"), readable=(), writable=()))


def test_a_bwrap_command_as_root_sees_the_run_s_own_resolv_conf_and_nsswitch_conf():
    run = Path("/tmp/nexus-labs-runs/run-x")
    confinement = Confinement(SandboxMode("bwrap", "test", "/usr/bin/bwrap"), app_uid=61001, hosts=run / "hosts",
                              resolv=run / "resolv.conf", nsswitch=run / "nsswitch.conf")
    command = " ".join(confinement.wrap(["python"], cwd=Path("/"), readable=(), writable=()))
    assert (f"--ro-bind {run}/hosts /etc/hosts --ro-bind {run}/resolv.conf /etc/resolv.conf "
            f"--ro-bind {run}/nsswitch.conf /etc/nsswitch.conf --chdir") in command


def test_the_run_s_nsswitch_conf_asks_the_hosts_file_then_dns_and_keeps_the_rest():
    machine = "passwd: files systemd\nhosts:   files myhostname mdns4_minimal [NOTFOUND=return] dns\nnetworks: files\n"
    assert _files_then_dns(machine) == "passwd: files systemd\nnetworks: files\nhosts:          files dns\n"


def test_without_bwrap_the_command_is_unchanged_and_the_user_mode_switches_uid():
    user = Confinement(SandboxMode("user", "test"), app_uid=61000)
    assert user.wrap(["python"], cwd=Path("/"), readable=(), writable=()) == ["python"]
    assert user.popen_kwargs() == {"user": 61000, "group": 61000, "extra_groups": []}
    assert Confinement(SandboxMode("none", "test"), app_uid=None).popen_kwargs() == {}


def test_malformed_process_and_owner_records_are_skipped_not_trusted(tmp_path: Path):
    records = tmp_path / "processes.jsonl"
    records.write_text("\n".join([
        json.dumps({"name": "server", "pid": 4242, "start": "123"}),
        "not json", json.dumps({"pid": "4242"}), json.dumps({"pid": 1, "start": "1"}), json.dumps([1, 2]),
        json.dumps({"pid": 77}), "",
    ]))
    assert _read_records(records) == [{"name": "server", "pid": 4242, "start": "123"}]
    assert _read_records(tmp_path / "missing.jsonl") == []
    run = tmp_path / "run-x"
    (run / ".grader").mkdir(parents=True)
    (run / ".grader" / "owner.json").write_text(json.dumps({"pid": "1", "start": 3}))
    assert _read_owner(run) is None
    (run / ".grader" / "owner.json").write_text(json.dumps({"pid": 12, "start": 3, "app_uid": True}))
    assert _read_owner(run) == {"pid": 12, "start": None, "app_uid": None}


def test_a_log_past_the_cap_keeps_its_head_and_tail_and_says_what_was_cut(tmp_path: Path):
    source, target = tmp_path / "server.log", tmp_path / "kept.log"
    source.write_bytes(b"H" * 1000 + b"M" * 10_000 + b"T" * 3000)
    copy_capped(source, target, cap=4000)
    kept = target.read_bytes()
    assert kept.startswith(b"H" * 1000) and kept.endswith(b"T" * 3000) and b"M" not in kept
    assert b"[... 10,000 bytes cut here by the grader: the log was 14,000 bytes" in kept
    source.write_bytes(b"short")
    copy_capped(source, target, cap=4000)
    assert target.read_bytes() == b"short"


def test_the_failed_migration_is_named_from_migrates_log(tmp_path: Path):
    log = tmp_path / "migrate.log"
    log.write_text("Operations to perform:\n  Applying store.0001_initial... OK\n  Applying store.0002_stock..."
                   "Traceback (most recent call last):\n")
    assert failed_migration(log) == "store.0002_stock"
    log.write_text("  Applying store.0001_initial... OK\n")
    assert failed_migration(log) is None
