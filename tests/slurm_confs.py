"""The configuration files of the test Slurm cluster (:mod:`tests.slurm_cluster` starts it)."""

from __future__ import annotations

import socket
from pathlib import Path

CLUSTER = "protstruct"
PARTITION = "debug"
NODE = "protstruct-node"


def write_confs(root: Path, ports: dict[str, int], cpus: int, mem_mb: int, db_pass: str) -> Path:
    """slurm.conf, slurmdbd.conf and cgroup.conf of the test cluster under ``root``; → slurm.conf."""
    munge_socket = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName={CLUSTER}
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={root}/plugstack.conf
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
ReturnToService=2
KillWait=30
InactiveLimit=0
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStoragePass={munge_socket}
JobCompType=jobcomp/none
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={NODE} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")
    (root / "plugstack.conf").write_text("")
    dbd = root / "slurmdbd.conf"  # slurmdbd reads it from SLURM_CONF's folder; must be 0600
    dbd.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports["slurmdbd"]}
SlurmUser=root
PidFile={root}/run/slurmdbd.pid
LogFile={root}/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=slurm
StoragePass={db_pass}
StorageLoc=slurm_acct_db
""")
    dbd.chmod(0o600)
    return conf
