"""`machine_memory`: the machine's memory capped by the process's control groups."""

from superconverge._environment import machine_memory

GIB = 2**30


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _machine(tmp_path, own_group):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    _write(proc / "meminfo", f"MemTotal:       {16 * GIB // 1024} kB\nMemFree: 1 kB\n")
    _write(proc / "self" / "cgroup", own_group)
    return str(proc), cgroup


def test_without_limits_it_is_the_machines_total(tmp_path):
    proc, cgroup = _machine(tmp_path, "0::/\n")
    _write(cgroup / "memory.max", "max\n")
    assert machine_memory(proc, str(cgroup)) == 16 * GIB


def test_a_cgroup_v2_limit_on_a_parent_of_the_process_group_counts(tmp_path):
    # a Slurm job or systemd unit: the limit sits above the process's own group, not at the root
    proc, cgroup = _machine(tmp_path, "0::/user.slice/job.scope\n")
    _write(cgroup / "user.slice" / "memory.max", f"{4 * GIB}\n")
    _write(cgroup / "user.slice" / "job.scope" / "memory.max", "max\n")
    assert machine_memory(proc, str(cgroup)) == 4 * GIB


def test_a_cgroup_v1_limit_on_the_process_group_counts_and_no_limit_does_not(tmp_path):
    proc, cgroup = _machine(tmp_path, "9:name=systemd:/\n5:cpu,memory:/process_api/abc\n")
    _write(cgroup / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")  # no limit
    _write(cgroup / "memory" / "process_api" / "abc" / "memory.limit_in_bytes", f"{2 * GIB}\n")
    assert machine_memory(proc, str(cgroup)) == 2 * GIB


def test_nothing_readable_is_unknown(tmp_path):
    assert machine_memory(str(tmp_path / "none"), str(tmp_path / "none")) is None
