"""The multi-host lab: hosts as containers with their own Docker Engine and sshd, plus a private registry.

`python -m lab up|down|status [-i INVENTORY]` (Makefile: `make lab-up`, `make lab-down`). The inventory
(default `inventory/lab`) names the hosts and their addresses (`ansible_host`) and carries the lab's
own variables: `lab_name` (prefix of every Docker object the lab creates), `lab_subnet` (the lab
bridge) and `container_registry` (`address:port` of the lab registry). See docs/lab.md.
"""
